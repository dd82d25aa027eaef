"""Streaming an answer into the window: incremental Markdown, and updates at frame rate.

The streamed answer is rendered by `StreamingMarkdown` (only the unfinished end of the
text is parsed and rendered again) and shown in stacked pieces, so that an update lays
out only what changed. These tests check that this is *exactly* the full render — at
every prefix of a set of answers with code fences opened and closed mid-stream, lists,
tables, headings and the cases where a later line changes an earlier one — that it does
far less work (counted), that the real widgets lay out far fewer characters, and that a
real answer from SmolLM2 reaches the view coalesced to the display's rate.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtGui import QGuiApplication

from hanlin.desktop.chat import markdown
from hanlin.desktop.chat.item_models import ChatRow
from hanlin.desktop.chat.markdown import (
    CODE_PIECE_LINES,
    MarkdownRenderer,
    StreamingMarkdown,
)

ANSWERS = {
    "code fences": (
        "Here is the function:\n\n```python\ndef add(a, b):\n"
        '    """Add two numbers."""\n    return a + b\n\n\nclass Point:\n    x: int\n'
        "    y: int\n```\n\nAnd a shell example:\n\n~~~bash\necho hi | tr a-z A-Z\n~~~\n\n"
        "```\nno language\n````\n\nDone."
    ),
    "lists": (
        "Steps:\n\n1. Install it\n2. Run `hanlin`\n   - with a model\n   - or without\n\n"
        "3. Loose item after a blank line\n\n- a\n- b\n* other bullet\n"
        "- [link](https://example.com) and **bold**\n+ plus\n\n2. starts at two\n10. ten\n"
    ),
    "tables": (
        "| Name | Size |\n|------|-----:|\n| tiny | 1 MB |\n| big  | 9 GB |\n\n"
        "A paragraph right before a table:\n| x | y |\n|---|---|\n| 1 | 2 |\nno pipe row\n\n"
        "| not | a table |\n|---|\nafter\n\nand a row that looks like a delimiter for a while:\n"
        "| a |\n|---|-x\nstill a paragraph"
    ),
    "headings and quotes": (
        "# Title\n\nSetext heading\n==============\n\nAnother\n-------\n\n"
        "#5 things is not a heading\n#\n## Real one ##\npara\n---\n> quote line\n"
        "continued lazily\n> > nested\n\n***\n    indented code\n    more\n\nafter"
    ),
    "interruptions": (
        "para line\n- list interrupts\npara again\n1. ordered interrupts\npara\n"
        "2. two does not\ntext\n```\nfence interrupts\n```\ntext\n# heading interrupts\n"
        "text\n> quote interrupts\n"
    ),
    "code in a list": (
        "- item with code:\n\n  ```js\n  const x = 1;\n  ```\n\n- next item\n  with more\n\n"
        "Final *emphasis*, ~~strike~~ and a <b>tag</b> that stays text."
    ),
    "references": (
        "See [the docs][d] and [home].\n\n[d]: https://docs.example.com\n"
        '[home]: https://example.com "Home"\n\nMore text.'
    ),
    "long unclosed fence": (
        "Start\n\n```python\nfor i in range(3):\n    print(i)\n"
        + "".join(f"    x{i} = {i}  # {'#' * (i % 3)}\n" for i in range(40))
    ),
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_streamed_html_is_the_full_render_at_every_prefix(name: str) -> None:
    text = ANSWERS[name]
    full = MarkdownRenderer()
    stream = StreamingMarkdown(MarkdownRenderer())
    for n in range(1, len(text) + 1):
        prefix = text[:n]
        frame = stream.feed(prefix)
        want = full.render(prefix)
        got = stream.finish(prefix)
        assert got.html == want.html, f"{name}: differs after {prefix[-30:]!r}"
        assert got.code_blocks == want.code_blocks
        assert frame.code_blocks == want.code_blocks  # what the Copy links copy, meanwhile


#: lines that start, continue, interrupt or retroactively change Markdown blocks
FRAGMENTS = [
    *("para text", "- item", "* star", "1. one", "2. two", "  - nested", "    indented"),
    *("> quote", "# head", "#5 not", "#", "---", "===", "***", "| a | b |", "|---|---|"),
    *("|---|", "| 1 | 2 |", "```python", "```", "~~~", "````", "code = 1", "", "", ""),
    *("[x]: https://a.example", "see [x]", "**bold** `c`", "  continuation", "+ plus"),
    *("10) paren", "<div>", "text  ", "\t tab"),
]


@pytest.mark.parametrize("seed", range(4))
def test_streamed_html_is_the_full_render_for_random_answers(seed: int) -> None:
    import random

    rng = random.Random(seed)
    full = MarkdownRenderer()
    for _ in range(25):
        text = "\n".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(3, 14)))
        stream = StreamingMarkdown(MarkdownRenderer())
        for n in range(1, len(text) + 1, rng.choice([1, 2, 3, 5])):
            stream.feed(text[:n])
            assert stream.finish(text[:n]).html == full.render(text[:n]).html, text[:n]


def test_finished_blocks_are_not_rendered_again() -> None:
    """A long answer fed as a model writes it: a fraction of the parsing and rendering."""
    paragraph = "Some **explanation** of the next step, with `inline code` and a list:\n\n"
    items = "".join(f"- point {i}\n" for i in range(4)) + "\n"
    code = "```python\n" + "".join(f"value_{i} = compute({i})\n" for i in range(40)) + "```\n\n"
    answer = (paragraph + items + code) * 4
    streamed, whole = MarkdownRenderer(), MarkdownRenderer()
    stream = StreamingMarkdown(streamed)
    largest = 0  # the most one update parsed
    for n in range(6, len(answer) + 6, 6):  # about a token or two at a time
        before = streamed.counts.chars_parsed
        stream.feed(answer[:n])
        largest = max(largest, streamed.counts.chars_parsed - before)
        whole.render(answer[:n])
    s, w = streamed.counts, whole.counts
    assert s.chars_parsed * 3 < w.chars_parsed, (s, w)
    assert s.blocks_rendered * 4 < w.blocks_rendered, (s, w)
    # an update's work is bounded by the unfinished block, not the answer's length
    assert largest < len(paragraph + items + code) + 100 < len(answer) / 3
    assert stream.finish(answer).html == whole.render(answer).html


def test_a_long_code_block_streams_in_pieces() -> None:
    code = "".join(f"line_{i} = {i}\n" for i in range(3 * CODE_PIECE_LINES + 5))
    text = "Intro\n\n```python\n" + code
    frame = StreamingMarkdown(MarkdownRenderer()).feed(text)
    # the intro paragraph, three finished pieces of the block, its growing last piece
    assert len(frame.pieces) == 1 + 4
    assert "Copy" in frame.pieces[1] and "Copy" not in frame.pieces[2]
    assert frame.code_blocks == [code]


def test_an_edited_text_starts_over() -> None:
    stream = StreamingMarkdown(MarkdownRenderer())
    stream.feed("First paragraph.\n\nSecond one\nand more\n\nthird\n\n")
    again = "Another start.\n\n- a list"
    assert stream.finish(again).html == MarkdownRenderer().render(again).html


# ------------------------------------------------------------------ the real widgets


@pytest.fixture
def warm() -> None:
    markdown.warm_up()


def test_the_message_widget_lays_out_only_what_changed(qtbot, warm) -> None:
    from hanlin.desktop.chat.view import MessageWidget, RichTextView

    text = "\n\n".join(ANSWERS.values())
    renderer = MarkdownRenderer()
    widget = MessageWidget(ChatRow(1, "assistant", "", streaming=True), renderer)
    qtbot.addWidget(widget)
    widget.resize(720, 600)
    widget.show()
    before = RichTextView.layout_chars
    whole = 0  # what laying out the whole answer at every update would have cost
    for n in range(6, len(text) + 6, 6):
        widget.set_row(ChatRow(1, "assistant", text[:n], streaming=True), is_last=True)
        whole += len(renderer.render(text[:n]).html)
        assert widget.live is not None and widget.live.isVisible()
    streamed = RichTextView.layout_chars - before
    assert streamed * 4 < whole, (streamed, whole)
    # copy links work while it streams: the first block's code so far
    widget._on_link("copy:0")
    assert QGuiApplication.clipboard().text() == widget.code_blocks[0]

    widget.set_row(ChatRow(1, "assistant", text, streaming=False), is_last=True)
    assert widget.live is None  # one document again
    assert widget.content.isVisible()
    assert widget.content.text() == MarkdownRenderer().render(text).html


def test_a_long_answer_becomes_one_document_after_its_last_token(qtbot, warm) -> None:
    from hanlin.desktop.chat.view import MERGE_AT_ONCE_HTML, MessageWidget

    code = "```python\n" + "".join(f"total_{i} = add(total_{i - 1}, {i})\n" for i in range(60))
    text = ("A paragraph about the code below.\n\n" + code + "```\n\n") * 3
    want = MarkdownRenderer().render(text)
    assert len(want.html) > MERGE_AT_ONCE_HTML
    widget = MessageWidget(ChatRow(1, "assistant", "", streaming=True), MarkdownRenderer())
    qtbot.addWidget(widget)
    widget.show()
    for n in range(50, len(text) + 50, 50):
        widget.set_row(ChatRow(1, "assistant", text[:n], streaming=True), is_last=True)
    widget.set_row(ChatRow(1, "assistant", text, streaming=False), is_last=True)
    # the last pieces at once (no long layout at the last token), Copy copies whole blocks
    assert widget.live is not None and widget.code_blocks == want.code_blocks
    qtbot.waitUntil(lambda: widget.live is None)  # then one document
    assert widget.content.isVisible() and widget.content.text() == want.html


@pytest.mark.slow
def test_a_real_answer_reaches_the_view_at_frame_rate(qtbot, window) -> None:
    """SmolLM2 writes ~100 tokens/s here: the view must see coalesced updates, not tokens."""
    import time

    from tests.support.desktop_chat import short_answers

    short_answers(160)
    c = window.controller
    updates: list[float] = []
    c.messages.dataChanged.connect(lambda *_: updates.append(time.perf_counter()))
    with qtbot.waitSignal(c.answerFinished, timeout=240_000) as blocker:
        c.send("Write a Python function that reverses a string, with an explanation.")
    outcome = blocker.args[0]
    tokens = outcome.stats["generated_tokens"]
    assert tokens > 20
    streaming_s = outcome.stats["total_s"] - outcome.stats["ttft_s"]
    # at most one update per frame (33 ms), plus the final one
    assert len(updates) <= streaming_s * 1000 / 33 + 3, (len(updates), streaming_s)
    assert len(updates) < tokens
    (answer,) = [w for w in window.chat_view.message_widgets() if w.row.role == "assistant"]
    qtbot.waitUntil(lambda: answer.live is None)
    assert answer.content.text() == MarkdownRenderer().render(outcome.content).html
