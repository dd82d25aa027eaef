"""What every post-processing filter shares: the cursor's context and a few text helpers.

Each filter lives in a module of its own (as in Tabby's agent) and imports only
this one, so a filter can be read, tested and replaced on its own. A filter is a
plain function `(text, ctx) -> kept text`: filters never add text, they only
cut, and "" drops the completion.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BLOCK_CLOSE_RE",
    "BLOCK_OPEN_RE",
    "CLOSERS",
    "OPENERS",
    "PAIR",
    "QUOTES",
    "Filter",
    "FilterContext",
    "current_line_before",
    "indent_width",
    "text_right_of_cursor",
    "wants_multiline",
]


@dataclass(frozen=True)
class FilterContext:
    """The document around the cursor: `prefix` is everything before it, `suffix` after."""

    prefix: str
    suffix: str = ""
    multiline: bool = True
    #: the user is typing through a shown multi-line completion: the characters typed
    #: into its first line make the cursor's line look like a one-line context, but the
    #: rest of the block is still what they see and may accept
    continues_block: bool = False
    #: the cursor's line is finished (code left of the cursor, nothing right of it) and the
    #: model's one-line answer started with a newline: the answer is the line after it
    next_line: bool = False
    language: str | None = None
    #: the texts of the model vocabulary's special tokens: the only texts `strip_special_tokens`
    #: cuts at (the engine fills it from `LlamaVocab.special_texts`; empty: nothing is special)
    special_texts: tuple[str, ...] = ()


Filter = Callable[[str, FilterContext], str]

CLOSERS = ")]}"
OPENERS = "([{"
PAIR = {")": "(", "]": "[", "}": "{"}
QUOTES = "\"'`"

#: a line that opens a block: `def f():`, `if (x) {`, `foo(`, `x => `, `do`, `then`, `begin`
BLOCK_OPEN_RE = re.compile(r"(?:[:{(\[]|=>|\bdo|\bthen|\bbegin)\s*(?:#.*|//.*)?$")
#: a line that closes one: `}`, `)`, `]`, `end`, `fi`, `done`, `esac`
BLOCK_CLOSE_RE = re.compile(r"^\s*(?:[)\]}]|end\b|fi\b|done\b|esac\b)")


def indent_width(line: str) -> int:
    """Width of a line's leading whitespace (a tab counts as 4 columns)."""
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4
        else:
            break
    return width


def current_line_before(prefix: str) -> str:
    """The cursor's line up to the cursor."""
    return prefix.rsplit("\n", 1)[-1]


def text_right_of_cursor(suffix: str) -> str:
    """The rest of the cursor's line (what the editor shows right of the caret)."""
    return suffix.split("\n", 1)[0]


def _only_closers(text: str) -> bool:
    return all(ch in CLOSERS or ch in QUOTES or ch in ";:,. \t" for ch in text)


def wants_multiline(prefix: str, suffix: str) -> bool:
    """Multi-line only where the context calls for it (Continue's and Tabby's rule).

    Nothing but closers may stand right of the cursor, and the text left of it
    on its line must be blank (a new line: the user may want a whole block) or
    end with a block opener (`def f():`, `if (x) {`, `foo(`). In the middle of
    a statement the user is finishing one line, so one line is what they get.
    """
    if not _only_closers(text_right_of_cursor(suffix)):
        return False
    before = current_line_before(prefix).rstrip()
    return not before.strip() or bool(BLOCK_OPEN_RE.search(before))
