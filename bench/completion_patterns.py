"""Edit patterns for the completion benchmark, and the editor model that replays them.

A pattern is a script of editor actions on real files (bench/completion_corpus.py):
open a file, put the cursor somewhere, type one character (then ask for a
completion, as an editor does after every keystroke), delete a line, wait, accept
the completion shown. Every server under test is driven by an `Editor`: it keeps
its own copy of each document, applies each action to it, and tells its server
what changed (LSP `didChange`, or nothing for llama-server whose client sends the
text with every request). Per-server copies matter for "typing through a shown
completion": each server's user types what *that* server showed.

Patterns (sites are picked by a seeded RNG among lines of the right shape, never
by content):

- `tail`: the file's tail is blanked from a line near the end; it is re-typed.
- `fim`: a new line inside an indented block (a function body), with the real
  code after the cursor (FIM suffix): Enter, then the original line re-typed.
- `jump`: two files open; type a little in one, jump to the other, and back.
- `retype`: a line's text is deleted, then typed again.
- `through`: after a few characters, type the characters the last completion showed.
- `accept`: type until a completion shows, read it for 0.5 s (`--read-s`), accept it; the request
  right after accepting is the measured one (a prefetched completion is ready at once).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.completion_corpus import CorpusFile

__all__ = [
    "ACCEPT_READ_S",
    "PATTERNS",
    "Accept",
    "Answer",
    "Close",
    "DeleteLine",
    "Editor",
    "Focus",
    "Idle",
    "Open",
    "Sample",
    "Step",
    "Type",
    "TypeShown",
    "build_script",
]


# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Open:
    doc: str
    text: str
    language: str


@dataclass(frozen=True)
class Focus:
    """Make `doc` the active editor with the cursor at (line, character); -1: end of line."""

    doc: str
    line: int
    character: int


@dataclass(frozen=True)
class Type:
    """One keystroke inserting `text` at the cursor, then a completion request."""

    text: str


@dataclass(frozen=True)
class TypeShown:
    """One keystroke: the next character of the completion on screen (else `fallback`)."""

    fallback: str


@dataclass(frozen=True)
class DeleteLine:
    """Delete the active line's text after its indentation; the cursor stays there."""


@dataclass(frozen=True)
class Accept:
    """Accept the completion on screen (Tab), then a completion request (measured)."""


@dataclass(frozen=True)
class Idle:
    seconds: float


@dataclass(frozen=True)
class Close:
    doc: str


Step = Open | Focus | Type | TypeShown | DeleteLine | Accept | Idle | Close


# ---------------------------------------------------------------------------- the editor


@dataclass
class Answer:
    """What one completion request gave: the text shown and how long the client waited."""

    text: str
    latency_ms: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    file: str
    pattern: str
    kind: str  # "type" or "accept"
    latency_ms: float
    text: str
    info: dict[str, Any]


class Editor(ABC):
    """One server's user: the documents, the cursor, the completion on screen."""

    name = "editor"

    def __init__(self) -> None:
        self.docs: dict[str, list[str]] = {}
        self.languages: dict[str, str] = {}
        self.dirty: set[str] = set()
        self.active = ""
        self.line = self.character = 0
        self.shown = ""

    # -- what a concrete editor tells its server
    @abstractmethod
    def did_open(self, doc: str, text: str, language: str) -> None: ...

    @abstractmethod
    def did_change(
        self, doc: str, start: tuple[int, int], end: tuple[int, int], text: str
    ) -> None: ...

    @abstractmethod
    def complete(self) -> Answer: ...

    def did_focus(self, previous: str, doc: str) -> None:  # noqa: B027 - optional hook
        pass

    def did_accept(self) -> None:  # noqa: B027 - optional hook
        pass

    def did_close(self, doc: str) -> None:  # noqa: B027 - optional hook
        pass

    def idle(self, seconds: float) -> None:  # noqa: B027 - optional hook
        """Called when the user pauses (the runner sleeps once for all editors)."""

    # -- the model
    @property
    def lines(self) -> list[str]:
        return self.docs[self.active]

    def prefix_suffix(self) -> tuple[str, str]:
        lines, row, col = self.lines, self.line, self.character
        prefix = "\n".join([*lines[:row], lines[row][:col]])
        suffix = "\n".join([lines[row][col:], *lines[row + 1 :]])
        return prefix, suffix

    def _insert(self, text: str) -> None:
        lines, row, col = self.lines, self.line, self.character
        line = lines[row]
        new = (line[:col] + text + line[col:]).split("\n")
        lines[row : row + 1] = new
        self.did_change(self.active, (row, col), (row, col), text)
        if len(new) == 1:
            self.character = col + len(text)
        else:
            self.line = row + len(new) - 1
            self.character = len(new[-1]) - (len(line) - col)
        self.dirty.add(self.active)

    def apply(self, step: Step, file: str, pattern: str) -> Sample | None:
        """Apply one action; a keystroke or an accept returns its measured request."""
        if isinstance(step, Open):
            self.docs[step.doc] = step.text.split("\n")
            self.languages[step.doc] = step.language
            self.did_open(step.doc, step.text, step.language)
            return None
        if isinstance(step, Focus):
            previous, self.active = self.active, step.doc
            self.line, self.shown = step.line, ""
            self.character = len(self.lines[step.line]) if step.character < 0 else step.character
            self.did_focus(previous, step.doc)
            return None
        if isinstance(step, Close):
            self.did_close(step.doc)
            self.docs.pop(step.doc, None)
            return None
        if isinstance(step, Idle):
            self.idle(step.seconds)
            return None
        if isinstance(step, DeleteLine):
            line = self.lines[self.line]
            indent = len(line) - len(line.lstrip())
            self.lines[self.line] = line[:indent]
            self.did_change(self.active, (self.line, indent), (self.line, len(line)), "")
            self.character, self.shown = indent, ""
            self.dirty.add(self.active)
            return None
        kind = "type"
        if isinstance(step, Type):
            on_screen, typed = self.shown, step.text
            self._insert(typed)
        elif isinstance(step, TypeShown):
            on_screen = self.shown
            typed = on_screen[0] if on_screen else step.fallback
            self._insert(typed)
        else:  # Accept
            kind, on_screen, typed = "accept", "", self.shown
            if typed:
                self._insert(typed)
                self.did_accept()
        answer = self.complete()
        rest = on_screen[len(typed) :] if on_screen.startswith(typed) else ""
        # the editor keeps showing the rest of a completion the user types through
        self.shown = answer.text or rest
        return Sample(file, pattern, kind, answer.latency_ms, answer.text, answer.info)


# ---------------------------------------------------------------------------- sites


#: a user opens a file and looks at it before typing
OPEN_IDLE_S = 1.0


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _inner_sites(lines: Sequence[str]) -> list[int]:
    """Lines inside an indented block with more code after them (FIM sites)."""
    n = len(lines)
    return [
        i
        for i in range(max(2, n // 10), min(n - 2, n * 9 // 10))
        if _indent(lines[i])
        and len(lines[i].strip()) >= 8
        and lines[i + 1].strip()
        and _indent(lines[i + 1])
        and lines[i - 1].strip()
    ]


def _keys_for(lines: Sequence[str], start: int, budget: int) -> list[str]:
    """Keystrokes re-typing lines[start:] from their indentation: chars, Enter+auto-indent."""
    keys: list[str] = []
    i = start
    while len(keys) < budget and i < len(lines):
        keys += list(lines[i].strip())
        i += 1
        if i < len(lines):
            keys.append("\n" + _indent(lines[i]))
    return keys[:budget]


def _pick_sites(lines: Sequence[str], rng: random.Random, n: int) -> list[int]:
    """`n` FIM sites (fewer with a small keystroke budget: each new site is a cold prompt)."""
    sites = _inner_sites(lines)
    if not sites:
        raise SystemExit("corpus file has no indented block to type into")
    return sorted(rng.sample(sites, min(n, len(sites))))


def _open_at_line_end(doc: str, lines: list[str], site: int, language: str) -> list[Step]:
    """The file without line `site`, cursor at the end of the line above, then Enter."""
    text = "\n".join([*lines[:site], *lines[site + 1 :]])
    above = lines[site - 1]
    return [
        Open(doc, text, language),
        Focus(doc, site - 1, len(above)),
        Idle(OPEN_IDLE_S),
        Type("\n" + _indent(lines[site])),
    ]


def _tail(files: Sequence[CorpusFile], k: int, rng: random.Random, budget: int) -> list[Step]:
    f = files[k]
    lines = f.text().split("\n")
    n = len(lines)
    start = next(
        (i for i in range(max(1, n - 60), n) if len(lines[i].strip()) >= 8), max(1, n - 20)
    )
    doc = f"tail/{f.label}"
    text = "\n".join([*lines[:start], _indent(lines[start])])
    return [
        Open(doc, text, f.language),
        Focus(doc, start, len(_indent(lines[start]))),
        Idle(OPEN_IDLE_S),
        *[Type(c) for c in _keys_for(lines, start, budget)],
        Close(doc),
    ]


def _fim(files: Sequence[CorpusFile], k: int, rng: random.Random, budget: int) -> list[Step]:
    f = files[k]
    lines = f.text().split("\n")
    sites = _pick_sites(lines, rng, 2 if budget >= 8 else 1)
    steps: list[Step] = []
    per_site = max(1, budget // len(sites))
    for j, site in enumerate(sites):
        doc = f"fim{j}/{f.label}"
        steps += _open_at_line_end(doc, lines, site, f.language)
        steps += [Type(c) for c in list(lines[site].strip())[: per_site - 1]]
        steps.append(Close(doc))
    return steps


def _jump(files: Sequence[CorpusFile], k: int, rng: random.Random, budget: int) -> list[Step]:
    a, b = files[k], files[(k + 1) % len(files)]
    la, lb = a.text().split("\n"), b.text().split("\n")
    (sa,), (sb,) = _pick_sites(la, rng, 1), _pick_sites(lb, rng, 1)
    da, db = f"jump/{a.label}", f"jump/{b.label}"
    steps: list[Step] = [Open(da, a.text(), a.language), Open(db, b.text(), b.language)]
    steps.append(Idle(OPEN_IDLE_S))
    per_visit = max(2, budget // 4)
    for visit in range(4):
        doc, lines, site = (da, la, sa) if visit % 2 == 0 else (db, lb, sb)
        # a new line above the site; the second visit goes on below the line typed on the first
        steps.append(Focus(doc, site - 1 + visit // 2, -1))
        steps.append(Type("\n" + _indent(lines[site])))
        steps += [Type(c) for c in lines[site].strip()[: per_visit - 1]]
    steps += [Close(da), Close(db)]
    return steps


def _retype(files: Sequence[CorpusFile], k: int, rng: random.Random, budget: int) -> list[Step]:
    f = files[k]
    lines = f.text().split("\n")
    sites = _pick_sites(lines, rng, 2 if budget >= 8 else 1)
    doc = f"retype/{f.label}"
    steps: list[Step] = [Open(doc, f.text(), f.language), Idle(OPEN_IDLE_S)]
    per_site = max(1, budget // len(sites))
    for site in sites:
        steps += [Focus(doc, site, len(lines[site])), DeleteLine()]
        steps += [Type(c) for c in lines[site].strip()[:per_site]]
    steps.append(Close(doc))
    return steps


def _through(files: Sequence[CorpusFile], k: int, rng: random.Random, budget: int) -> list[Step]:
    f = files[k]
    lines = f.text().split("\n")
    sites = _pick_sites(lines, rng, 2 if budget >= 8 else 1)
    steps: list[Step] = []
    per_site = max(3, budget // len(sites))
    for j, site in enumerate(sites):
        doc = f"through{j}/{f.label}"
        steps += _open_at_line_end(doc, lines, site, f.language)
        keys = _keys_for(lines, site, per_site)
        steps += [Type(c) for c in keys[:2]]
        steps += [TypeShown(c if len(c) == 1 else c[0]) for c in keys[2 : per_site - 1]]
        steps.append(Close(doc))
    return steps


#: seconds a user reads a shown completion before accepting it (`--read-s`)
ACCEPT_READ_S = 0.5


def _accept(
    files: Sequence[CorpusFile],
    k: int,
    rng: random.Random,
    budget: int,
    read_s: float = ACCEPT_READ_S,
) -> list[Step]:
    f = files[k]
    lines = f.text().split("\n")
    sites = _pick_sites(lines, rng, max(1, budget // 5))
    steps: list[Step] = []
    for j, site in enumerate(sites):
        doc = f"accept{j}/{f.label}"
        steps += _open_at_line_end(doc, lines, site, f.language)
        steps += [Type(c) for c in lines[site].strip()[:3]]
        steps += [Idle(read_s), Accept()]
        steps.append(Close(doc))
    return steps


PATTERNS: dict[str, Callable[[Sequence[CorpusFile], int, random.Random, int], list[Step]]] = {
    "tail": _tail,
    "fim": _fim,
    "jump": _jump,
    "retype": _retype,
    "through": _through,
    "accept": _accept,
}


def build_script(
    files: Sequence[CorpusFile],
    pattern: str,
    k: int,
    *,
    seed: int,
    max_keystrokes: int,
    read_s: float = ACCEPT_READ_S,
) -> list[Step]:
    """The actions of `pattern` on file `k` of `files` (the same for every server);
    `read_s`: how long `accept` reads a shown completion before accepting it."""
    rng = random.Random(f"{seed}:{pattern}:{k}")
    if pattern == "accept":
        return _accept(files, k, rng, max_keystrokes, read_s)
    return PATTERNS[pattern](files, k, rng, max_keystrokes)
