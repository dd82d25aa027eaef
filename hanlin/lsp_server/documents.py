"""Open documents, kept in sync with the editor, with LSP (UTF-16) positions.

Why our own store instead of pygls' workspace: a completion request needs
"text before / after a position" for documents of several megabytes, hundreds
of times a minute. pygls re-splits the whole text into lines on every edit;
here a document keeps a lazily rebuilt index of line starts, so a position
lookup is a binary search plus a walk over one line.

LSP positions count UTF-16 code units (unless the client negotiated another
encoding): a character outside the Basic Multilingual Plane (most emoji)
counts two, everything else one. CJK text is in the BMP and counts one per
character, but three bytes in UTF-8, so byte-based code gets it wrong too.

Out-of-range positions:
- for *edits* we follow the spec (a character past the end of a line means
  the end of the line; a line past the end means the end of the document),
- for *queries* (`offset_at(..., strict=True)`) we return None so the
  completion handler answers "no item" instead of guessing.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = [
    "ENCODINGS",
    "Document",
    "DocumentStore",
    "utf16_column_to_index",
    "utf16_len",
]

_LINE_BREAKS = ("\r\n", "\r", "\n")


#: position encodings a client may negotiate (LSP 3.17 `positionEncodings`)
ENCODINGS = ("utf-16", "utf-8", "utf-32")


def _width(ch: str, encoding: str) -> int:
    code = ord(ch)
    if encoding == "utf-16":
        return 2 if code > 0xFFFF else 1
    if encoding == "utf-8":
        return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    return 1


def utf16_len(text: str, encoding: str = "utf-16") -> int:
    """Length of `text` in code units of `encoding` (UTF-16 unless negotiated otherwise)."""
    if encoding == "utf-32" or text.isascii():
        return len(text)
    if encoding == "utf-8":
        return len(text.encode("utf-8", errors="surrogatepass"))
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def utf16_column_to_index(line: str, column: int, encoding: str = "utf-16") -> int | None:
    """The str index in `line` of code-unit column `column`, or None if past the end.

    A column that falls inside a character (the middle of a surrogate pair,
    or of a UTF-8 sequence) is rounded down to the start of that character.
    """
    if column < 0:
        return None
    if encoding == "utf-32" or line.isascii():
        return column if column <= len(line) else None
    units = 0
    for index, ch in enumerate(line):
        if units >= column:
            return index
        width = _width(ch, encoding)
        if units + width > column:
            return index  # inside a character
        units += width
    return len(line) if units >= column else None


def _line_starts(text: str) -> list[int]:
    """Offsets where each line starts (\\n, \\r\\n and lone \\r all end a line)."""
    starts = [0]
    if "\r" not in text:
        find = text.find
        pos = find("\n")
        while pos != -1:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        return starts
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            starts.append(i + 1)
        elif ch == "\r":
            if i + 1 < n and text[i + 1] == "\n":
                i += 1
            starts.append(i + 1)
        i += 1
    return starts


@dataclass
class Document:
    """One open text document: its text, version and language."""

    uri: str
    text: str
    version: int = 0
    language_id: str = ""
    #: the negotiated position encoding
    encoding: str = "utf-16"
    _starts: list[int] | None = field(default=None, repr=False)

    # -- line index -------------------------------------------------------
    @property
    def line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = _line_starts(self.text)
        return self._starts

    @property
    def line_count(self) -> int:
        return len(self.line_starts)

    def line_text(self, line: int) -> str:
        """Text of one line without its line break."""
        starts = self.line_starts
        start = starts[line]
        end = starts[line + 1] if line + 1 < len(starts) else len(self.text)
        segment = self.text[start:end]
        for brk in _LINE_BREAKS:
            if segment.endswith(brk):
                return segment[: -len(brk)]
        return segment

    # -- positions ----------------------------------------------------------
    def offset_at(self, line: int, character: int, *, strict: bool = False) -> int | None:
        """str offset of an LSP position (UTF-16 `character`).

        strict=True: None for a line or character beyond the document.
        strict=False (edits): clamp as the LSP specification says.
        """
        starts = self.line_starts
        if line < 0 or character < 0:
            return None if strict else 0
        if line >= len(starts):
            return None if strict else len(self.text)
        text = self.line_text(line)
        index = utf16_column_to_index(text, character, self.encoding)
        if index is None:
            if strict:
                return None
            index = len(text)
        return starts[line] + index

    def position_at(self, offset: int) -> tuple[int, int]:
        """LSP (line, UTF-16 character) of a str offset (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.line_starts, offset) - 1
        start = self.line_starts[line]
        return line, utf16_len(self.text[start:offset], self.encoding)

    # -- edits --------------------------------------------------------------
    def replace_all(self, text: str) -> None:
        self.text = text
        self._starts = None

    def apply_edit(self, start: tuple[int, int], end: tuple[int, int], new_text: str) -> None:
        """Replace the text between two LSP positions (each (line, character))."""
        a = self.offset_at(*start)
        b = self.offset_at(*end)
        assert a is not None and b is not None  # non-strict lookups always answer
        if b < a:
            a, b = b, a
        old_starts = self._starts
        self.text = self.text[:a] + new_text + self.text[b:]
        self._starts = _patch_line_starts(old_starts, a, b, new_text, self.text)


def _patch_line_starts(
    starts: list[int] | None, a: int, b: int, new_text: str, text: str
) -> list[int] | None:
    """Update a line index after replacing text[a:b] by `new_text`.

    Typing edits one line at a time; rebuilding the index of a 5 MB file per
    keystroke would dominate. \\r is rare enough to rebuild lazily instead.
    """
    if starts is None or "\r" in new_text or "\r" in text[max(0, a - 1) : a + len(new_text) + 1]:
        return None
    delta = len(new_text) - (b - a)
    first = bisect.bisect_right(starts, a)  # starts[first:] lie after a
    last = bisect.bisect_right(starts, b)  # starts[last:] lie after the removed text
    inserted = []
    pos = new_text.find("\n")
    while pos != -1:
        inserted.append(a + pos + 1)
        pos = new_text.find("\n", pos + 1)
    tail = [s + delta for s in starts[last:]] if delta else starts[last:]
    return starts[:first] + inserted + tail


class DocumentStore:
    """The documents the editor has open, by URI."""

    def __init__(self, encoding: str = "utf-16") -> None:
        self._docs: dict[str, Document] = {}
        self.encoding = encoding if encoding in ENCODINGS else "utf-16"

    def open(self, uri: str, text: str, version: int = 0, language_id: str = "") -> Document:
        doc = Document(
            uri=uri, text=text, version=version, language_id=language_id, encoding=self.encoding
        )
        self._docs[uri] = doc
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def __contains__(self, uri: object) -> bool:
        return uri in self._docs

    def __len__(self) -> int:
        return len(self._docs)

    def all(self) -> list[Document]:
        return list(self._docs.values())
