"""UTF-16 positions and incremental edits of hanlin.lsp_server.documents."""

from __future__ import annotations

import random

import pytest

from hanlin.lsp_server.documents import Document, DocumentStore, utf16_column_to_index, utf16_len


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("😀") == 2
    assert utf16_len("中文") == 2
    assert utf16_len("a😀b中") == 5
    assert utf16_len("😀é中", "utf-8") == 4 + 2 + 3
    assert utf16_len("😀é中", "utf-32") == 3


@pytest.mark.parametrize(
    ("line", "column", "index"),
    [
        ("hello", 0, 0),
        ("hello", 5, 5),
        ("hello", 6, None),
        ("😀x", 2, 1),  # after the emoji's two code units
        ("😀x", 3, 2),
        ("😀x", 1, 0),  # inside the surrogate pair: start of the emoji
        ("中文x", 2, 2),
        ("中文x", 4, None),
        ("", 0, 0),
        ("", 1, None),
    ],
)
def test_column_to_index(line: str, column: int, index: int | None) -> None:
    assert utf16_column_to_index(line, column) == index


def test_offset_at_emoji_and_cjk_lines() -> None:
    doc = Document("file:///x.py", "s = '😀😀'  # 表情\nx = 1\n")
    # column 10 (UTF-16) on line 0 is just after the second emoji
    offset = doc.offset_at(0, 9, strict=True)
    assert doc.text[:offset] == "s = '😀😀"
    line0 = doc.line_text(0)
    end = doc.offset_at(0, utf16_len(line0), strict=True)
    assert doc.text[:end].endswith("表情")
    assert doc.offset_at(1, 5, strict=True) == len(line0) + 1 + 5


def test_out_of_range_positions() -> None:
    doc = Document("file:///x.py", "ab\ncd")
    assert doc.offset_at(0, 3, strict=True) is None  # past the end of the line
    assert doc.offset_at(5, 0, strict=True) is None  # past the last line
    assert doc.offset_at(-1, 0, strict=True) is None
    # edits clamp, as the LSP specification says
    assert doc.offset_at(0, 99) == 2
    assert doc.offset_at(99, 0) == len(doc.text)


def test_position_at_round_trip() -> None:
    doc = Document("file:///x", "a😀b\r\n中c\rdd\n")
    for offset in range(len(doc.text) + 1):
        line, col = doc.position_at(offset)
        back = doc.offset_at(line, col)
        # offsets that fall between \r and \n map to the line end
        assert back == offset or doc.text[back:offset] in ("\r", "\n", "\r\n")


def test_incremental_edits_match_a_reference() -> None:
    """Random edits through LSP positions agree with plain string surgery."""
    rng = random.Random(7)
    alphabet = ["a", "b", " ", "\n", "😀", "中", "é", "\t", "\n\n", "x😀y\n"]
    text = "def f():\n    return '😀'\n# 中文\n"
    doc = Document("file:///t.py", text)
    for _ in range(500):
        a = rng.randint(0, len(text))
        b = rng.randint(a, min(len(text), a + 5))
        new = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
        start = doc.position_at(a)
        end = doc.position_at(b)
        doc.apply_edit(start, end, new)
        text = text[:a] + new + text[b:]
        assert doc.text == text
        # the patched line index equals a freshly built one
        fresh = Document("file:///t.py", text)
        assert doc.line_starts == fresh.line_starts


def test_edit_inside_an_emoji_is_rounded_to_its_start() -> None:
    doc = Document("file:///x", "😀z")
    doc.apply_edit((0, 1), (0, 1), "A")
    assert doc.text == "A😀z"


def test_store_uses_negotiated_encoding() -> None:
    store = DocumentStore("utf-8")
    doc = store.open("file:///u", "é中x", 1, "python")
    assert doc.offset_at(0, 5, strict=True) == 2  # é = 2 bytes, 中 = 3 bytes
    assert store.get("file:///u") is doc and "file:///u" in store and len(store) == 1
    store.close("file:///u")
    assert store.get("file:///u") is None
    assert DocumentStore("latin-1").encoding == "utf-16"
