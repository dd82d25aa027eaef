"""Post-processing of raw model completions: stop where a human would.

A code model keeps writing past the point a user wants ghost text to end, and
sometimes repeats what is already on screen. Each rule here is a named filter
in a registry (after Tabby's agent), so the engine, the tests and a user's
settings can name them: a filter takes the completion text and the context
around the cursor and returns the text to keep ("" drops the completion).

Filters never add text; they only cut. They run in `DEFAULT_FILTERS` order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FILTERS",
    "FILTERS",
    "FilterContext",
    "postprocess",
    "register_filter",
    "text_right_of_cursor",
    "wants_multiline",
]


@dataclass(frozen=True)
class FilterContext:
    """The document around the cursor: `prefix` is everything before it, `suffix` after."""

    prefix: str
    suffix: str = ""
    multiline: bool = True
    language: str | None = None
    #: extra special-token texts to strip (the model's own, from its FIM template)
    special_texts: tuple[str, ...] = ()


Filter = Callable[[str, FilterContext], str]
FILTERS: dict[str, Filter] = {}


def register_filter(name: str) -> Callable[[Filter], Filter]:
    """Decorator: add a filter to the registry under `name`."""

    def deco(fn: Filter) -> Filter:
        FILTERS[name] = fn
        return fn

    return deco


_CLOSERS = ")]}"
_OPENERS = "([{"
_PAIR = {")": "(", "]": "[", "}": "{"}
_QUOTES = "\"'`"


def _indent(line: str) -> int:
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


def _current_line_before(prefix: str) -> str:
    return prefix.rsplit("\n", 1)[-1]


def text_right_of_cursor(suffix: str) -> str:
    """The rest of the cursor's line (what the editor shows right of the caret)."""
    return suffix.split("\n", 1)[0]


def _only_closers(text: str) -> bool:
    return all(ch in _CLOSERS or ch in _QUOTES or ch in ";:,. \t" for ch in text)


def wants_multiline(prefix: str, suffix: str) -> bool:
    """Multi-line only where the context calls for it (Continue's and Tabby's rule).

    Nothing but closers may stand right of the cursor, and the text left of it
    on its line must be blank (a new line: the user may want a whole block) or
    end with a block opener (`def f():`, `if (x) {`, `foo(`). In the middle of
    a statement the user is finishing one line, so one line is what they get.
    """
    if not _only_closers(text_right_of_cursor(suffix)):
        return False
    before = _current_line_before(prefix).rstrip()
    return not before.strip() or bool(_BLOCK_OPEN_RE.search(before))


# --------------------------------------------------------------------------- filters

# Generic special-token shapes: <|x|>, <｜x｜> (DeepSeek), <fim_x>, <file_sep>, </s>
_SPECIAL_RE = re.compile(
    r"<\|[A-Za-z0-9_.:\-]{1,40}\|>"
    r"|<｜[^｜>\s]{1,40}｜>"
    r"|<(?:fim_(?:prefix|suffix|middle|pad)|file_sep|repo_name|filename|gh_stars|jupyter_\w+|empty_output)>"
    r"|</s>|<s>"
    r"|<(?:PRE|SUF|MID|EOT)>"
)


@register_filter("strip_special_tokens")
def strip_special_tokens(text: str, ctx: FilterContext) -> str:
    """Cut at the first special token (`<|endoftext|>`, `<|file_sep|>`, …): never shown."""
    cut = len(text)
    match = _SPECIAL_RE.search(text)
    if match:
        cut = match.start()
    for special in ctx.special_texts:
        pos = text.find(special)
        if 0 <= pos < cut:
            cut = pos
    return text[:cut]


@register_filter("single_line_if_text_right")
def single_line_if_text_right(text: str, ctx: FilterContext) -> str:
    """Keep only the first line when multi-line is off or the context does not call for it.

    (Text right of the cursor, or a statement being finished: see `wants_multiline`.)
    """
    if ctx.multiline and wants_multiline(ctx.prefix, ctx.suffix):
        return text
    return text.split("\n", 1)[0]


_BLOCK_OPEN_RE = re.compile(r"(?:[:{(\[]|=>|\bdo|\bthen|\bbegin)\s*(?:#.*|//.*)?$")
_BLOCK_CLOSE_RE = re.compile(r"^\s*(?:[)\]}]|end\b|fi\b|done\b|esac\b)")


@register_filter("limit_scope_by_indentation")
def limit_scope_by_indentation(text: str, ctx: FilterContext) -> str:
    """Multi-line: stop at the end of the block the cursor is in (Tabby's limitScopeByIndentation).

    The reference is the cursor line's indentation. A later line indented less
    ends the scope. If the cursor line opens a block (`def f():`, `if x {`), a
    line back at the reference indentation ends it too — a closing bracket there
    is kept as the block's last line.
    """
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    cursor_line = _current_line_before(ctx.prefix) + lines[0]
    if cursor_line.strip():
        ref = _indent(cursor_line)
        opened = bool(_BLOCK_OPEN_RE.search(cursor_line.rstrip()))
    else:
        # A blank cursor line: the scope is the indentation the cursor sits at.
        ref = _indent(cursor_line) if cursor_line else _indent(_current_line_before(ctx.prefix))
        opened = False
    kept = [lines[0]]
    seen_content = bool(lines[0].strip())
    for line in lines[1:]:
        if not line.strip():
            if ref == 0 and not opened and seen_content:
                break  # top level: one paragraph (one statement or definition) at a time
            kept.append(line)
            continue
        ind = _indent(line)
        if ind < ref:
            break
        if ind == ref and opened:
            if _BLOCK_CLOSE_RE.match(line):
                kept.append(line)
            break
        kept.append(line)
        seen_content = True
    else:
        return text
    while len(kept) > 1 and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def _find_repetition(lines: list[str], history: list[str]) -> int | None:
    """Index of the first line that starts a repeat of the 1-3 lines just before it."""
    seq = history + lines
    base = len(history)
    for i in range(base, len(seq)):
        if not seq[i].strip():
            continue
        for period in (1, 2, 3):
            if i - period < 0 or i + period > len(seq):
                continue
            window = seq[i : i + period]
            if window == seq[i - period : i] and any(s.strip() for s in window):
                # Only count it when the repeated group lies (at least partly) in the completion.
                return max(i, base)
    return None


@register_filter("remove_repetitive_lines")
def remove_repetitive_lines(text: str, ctx: FilterContext) -> str:
    """Cut where the completion starts repeating the line(s) just before (a looping model)."""
    lines = text.split("\n")
    prefix_lines = ctx.prefix.split("\n")
    # The cursor line joins the first completion line; only complete prefix lines count as history.
    history = prefix_lines[-4:-1] if len(prefix_lines) > 1 else []
    first = prefix_lines[-1] + lines[0]
    idx = _find_repetition([first, *lines[1:]], history)
    if idx is None:
        return text
    cut = idx - len(history)
    if cut <= 0:
        return ""
    return "\n".join(lines[:cut])


@register_filter("drop_suffix_repeat")
def drop_suffix_repeat(text: str, ctx: FilterContext) -> str:
    """Drop a completion that repeats the text after the cursor; cut trailing lines the suffix has.

    (llama.vscode discards a suggestion equal to the next lines; Tabby's
    removeDuplicateSuffixLines trims completion lines that the document already
    has right after the cursor.)
    """
    stripped = text.strip()
    if not stripped:
        return text
    after = ctx.suffix.lstrip()
    if after.startswith(stripped):
        return ""
    # The lines below the cursor line (the rest of the cursor line is handled further down).
    suffix_lines = [s.strip() for s in ctx.suffix.split("\n")[1:] if s.strip()]
    lines = text.split("\n")
    first_suffix = suffix_lines[0] if suffix_lines else None
    for k in range(1, len(lines)):
        line = lines[k].strip()
        if line and line == first_suffix and len(line) > 1:
            return "\n".join(lines[:k]).rstrip("\n")
    # Single line whose tail is exactly what is right of the cursor (e.g. `x):` before `):`).
    right = text_right_of_cursor(ctx.suffix).strip()
    if right and len(lines) == 1 and len(right) > 1 and text.rstrip().endswith(right):
        return text.rstrip()[: -len(right)]
    return text


def _trailing_unmatched_closers(line: str) -> list[int]:
    """Indices of the closers at the end of `line` that close nothing opened in `line`."""
    stack: list[str] = []
    unmatched: set[int] = set()
    in_quote: str | None = None
    for i, ch in enumerate(line):
        if in_quote:
            if ch == in_quote:
                in_quote = None
        elif ch in _QUOTES:
            in_quote = ch
        elif ch in _OPENERS:
            stack.append(ch)
        elif ch in _CLOSERS:
            if stack and stack[-1] == _PAIR[ch]:
                stack.pop()
            else:
                unmatched.add(i)
    tail: list[int] = []
    j = len(line.rstrip()) - 1
    while j >= 0 and (line[j] in " \t" or j in unmatched):
        if j in unmatched:
            tail.append(j)
        j -= 1
    return tail[::-1]


@register_filter("drop_duplicate_closing")
def drop_duplicate_closing(text: str, ctx: FilterContext) -> str:
    """Remove closing brackets the editor already inserted right of the cursor.

    With `print(|)` on screen, a completion `x)` would show `print(x))`: the
    completion's unmatched trailing closers that the text right of the cursor
    starts with are cut. An auto-paired closing quote is handled the same way.
    """
    right = "".join(text_right_of_cursor(ctx.suffix).split())
    if not right or right[0] not in _CLOSERS + _QUOTES:
        return text
    lines = text.split("\n")
    last = lines[-1]
    tail = _trailing_unmatched_closers(last)
    run = "".join(last[i] for i in tail)
    k = min(len(run), len(right))
    while k and run[len(run) - k :] != right[:k]:
        k -= 1
    if k:
        drop = set(tail[len(tail) - k :])
        lines[-1] = "".join(ch for i, ch in enumerate(last) if i not in drop).rstrip()
        return "\n".join(lines)
    body = last.rstrip()
    if right[0] in _QUOTES and body.endswith(right[0]) and body.count(right[0]) % 2 == 1:
        lines[-1] = body[:-1]
        return "\n".join(lines)
    return text


@register_filter("trim_trailing_whitespace")
def trim_trailing_whitespace(text: str, ctx: FilterContext) -> str:
    """Strip trailing spaces on every line and trailing blank lines; whitespace-only becomes ""."""
    lines = [line.rstrip() for line in text.split("\n")]
    out = "\n".join(lines).rstrip("\n")
    return out if out.strip() else ""


DEFAULT_FILTERS: tuple[str, ...] = (
    "strip_special_tokens",
    "single_line_if_text_right",
    "limit_scope_by_indentation",
    "remove_repetitive_lines",
    "drop_suffix_repeat",
    "drop_duplicate_closing",
    "trim_trailing_whitespace",
)


def postprocess(text: str, ctx: FilterContext, names: Sequence[str] = DEFAULT_FILTERS) -> str:
    """Run the named filters in order; stop early once the completion is dropped."""
    for name in names:
        try:
            fn = FILTERS[name]
        except KeyError:
            raise KeyError(
                f"unknown post-processing filter {name!r}; known: {', '.join(FILTERS)}"
            ) from None
        text = fn(text, ctx)
        if not text:
            return ""
    return text
