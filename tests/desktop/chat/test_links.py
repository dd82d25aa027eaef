"""Links in answers: only our own copy links and http(s)/mailto do anything.

A model writes whatever it likes; a link in its answer must never run a file, open an
arbitrary scheme handler, or crash the window (`[x](copy:99)` used to raise IndexError,
which the app shows as a bug dialog).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtGui import QDesktopServices, QGuiApplication

from hanlin.desktop.chat.item_models import ChatRow
from hanlin.desktop.chat.markdown import MarkdownRenderer, is_safe_link, warm_up
from hanlin.desktop.chat.view import MessageWidget


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    urls: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: urls.append(url.toString()))
    return urls


def message(qtbot, content: str) -> MessageWidget:
    warm_up()  # answers render as Markdown (with copy links) once the renderer is warm
    row = ChatRow(id=1, role="assistant", content=content)
    widget = MessageWidget(row, MarkdownRenderer())
    qtbot.addWidget(widget)
    widget.set_row(row, is_last=True)
    return widget


@pytest.mark.parametrize(
    ("href", "safe"),
    [
        ("https://qwen.ai/blog", True),
        ("http://localhost:8080/v1", True),
        ("mailto:someone@example.com", True),
        ("HTTPS://EXAMPLE.COM", True),
        ("file:///etc/passwd", False),
        ("javascript:alert(1)", False),
        ("copy:0", False),
        ("ftp://example.com/x", False),
        ("vscode://file/etc/passwd", False),
        ("/relative/path", False),
        ("", False),
    ],
)
def test_only_http_https_and_mailto_are_safe(href: str, safe: bool) -> None:
    assert is_safe_link(href) is safe


def test_model_written_links_with_other_schemes_render_as_text() -> None:
    html = MarkdownRenderer().render(
        "[copy it](copy:99) [passwd](file:///etc/passwd) [docs](https://qwen.ai)"
    ).html
    assert 'href="copy:' not in html and 'href="file:' not in html
    assert "[copy it](copy:99)" in html  # shown as the text the model wrote
    assert 'href="https://qwen.ai"' in html


def test_a_model_written_copy_link_does_not_crash(qtbot, opened: list[str]) -> None:
    widget = message(qtbot, "```python\nprint(1)\n```\n")
    QGuiApplication.clipboard().setText("before")
    for href in ("copy:99", "copy:-1", "copy:abc", "copy:"):
        widget._on_link(href)  # no exception, nothing copied or opened
    assert QGuiApplication.clipboard().text() == "before"
    widget._on_link("copy:0")  # our own link to the first block works
    assert QGuiApplication.clipboard().text().rstrip("\n") == "print(1)"
    assert opened == []


def test_only_safe_links_are_opened(qtbot, opened: list[str]) -> None:
    widget = message(qtbot, "see the docs")
    for href in ("file:///etc/passwd", "javascript:alert(1)", "smb://host/share", "https://qwen.ai"):
        widget._on_link(href)
    assert opened == ["https://qwen.ai"]
