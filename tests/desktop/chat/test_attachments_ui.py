"""Files as context in the real window (offscreen): drop a file on the composer, see its chip
with a token count, send it with the real SmolLM2, find it in the history and on the sent
message, reopen the conversation; × takes a file back, binary files are refused in the
banner, `@file` completes over the working folder, and a chip opens its file."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QObject, QPoint, QPointF, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from hanlin.engine.chat.attachments import compose_user_message
from hanlin.engine.chat.history import History

ANSWER_TIMEOUT_MS = 240_000
CODE = "def area(width, height):\n    return width * height\n"


def drop(widget, *paths: Path) -> QDropEvent:
    """What the window system delivers when files are dragged onto `widget` and dropped.

    Qt 6 delivers a drop only to the widget that accepted the drag's enter event (its
    drag manager's current target), so the enter comes first, as in a real drag.
    """
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    action, button, mods = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(QPoint(10, 10), action, mime, button, mods)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the composer did not take the dragged files"
    event = QDropEvent(QPointF(10, 10), action, mime, button, mods)
    QApplication.sendEvent(widget, event)
    return event


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / ".git").mkdir(parents=True)
    (root / ".gitignore").write_text("*.secret\n")
    (root / "src").mkdir()
    (root / "src" / "geometry.py").write_text(CODE)
    (root / "src" / "util.py").write_text("def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n")
    (root / "src" / "keys.secret").write_text("hunter2\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    return root


@pytest.mark.slow
def test_drop_a_file_send_it_and_find_it_again_after_reopening(qtbot, window, project):
    view = window.chat_view
    attach = view.attach
    event = drop(view.composer.viewport(), project / "src" / "geometry.py")
    assert event.isAccepted()
    qtbot.waitUntil(lambda: len(attach.strip.chips()) == 1, timeout=10_000)
    (chip,) = attach.strip.chips()
    # the model is not loaded yet: an estimate, marked ≈
    assert chip.text().startswith("geometry.py · ≈") and chip.text().endswith(" tokens")
    assert attach.strip.isVisibleTo(window) and chip.remove_button is not None
    assert attach.meter.isVisibleTo(window)
    assert "of 8,192 tokens" in attach.meter_label.text()  # SmolLM2's default context
    assert view.composer.toPlainText() == ""  # the drop attached; it did not paste a URL
    shown = chip.text()

    with qtbot.waitSignal(window.controller.answerFinished, timeout=ANSWER_TIMEOUT_MS) as b:
        view.composer.setPlainText("What does area return?")
        QTest.keyClick(view.composer, Qt.Key.Key_Return)
    outcome = b.args[0]
    assert attach.attachments() == [] and attach.strip.chips() == []
    # the file went into the prompt: what the model evaluated holds its tokens too
    sent = window.controller.messages.row(0)
    (a,) = sent.attachments
    assert a.label == "src/geometry.py" and a.language == "python" and a.text == CODE
    assert outcome.stats["prompt_tokens"] > a.tokens
    h = History()
    (conv,) = h.list()
    (stored, _answer) = h.messages(conv.id)
    assert stored.content == "What does area return?" and stored.attachments == (a,)
    assert h.model_turns(conv.id)[0] == ("user", compose_user_message(stored.content, [a]))
    h.close()
    # the sent message shows the chip, read-only
    (user_chip,) = view.message_widgets()[0].attachment_chips.chips()
    assert user_chip.text() == shown and user_chip.remove_button is None

    # reopening the conversation (after another one) shows the chip again
    window.controller.new_conversation()
    assert view.message_widgets() == []
    window.controller.open_conversation(conv.id)
    (again,) = view.message_widgets()[0].attachment_chips.chips()
    assert again.attachment == a and again.text().startswith("geometry.py · ")

    # editing the message keeps its files
    first = view.message_widgets()[0]
    first.edit_button.click()
    first.editor.setPlainText("What does area compute?")
    with qtbot.waitSignal(window.controller.answerFinished, timeout=ANSWER_TIMEOUT_MS):
        first.save_edit.click()
    h = History()
    (edited, _answer) = h.messages(conv.id)
    assert edited.content == "What does area compute?" and edited.attachments == (a,)
    h.close()
    assert view.message_widgets()[0].attachment_chips.chips()[0].attachment == a

    # the model is loaded and idle now: the next file is counted with its tokenizer
    drop(view.composer.viewport(), project / "src" / "util.py")
    qtbot.waitUntil(lambda: len(attach.strip.chips()) == 1, timeout=10_000)
    (exact,) = attach.attachments()
    assert not exact.tokens_estimated and "≈" not in attach.strip.chips()[0].text()
    model = window.controller.host.current
    assert exact.tokens == len(model.session.tokenize(exact.block() + "\n\n"))


class _Opened(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


def test_remove_refuse_complete_and_open(qtbot, window, project):
    view = window.chat_view
    attach = view.attach
    # a folder: .gitignore'd and binary files stay out (the binary one is named in a warning)
    drop(view.composer.viewport(), project)
    qtbot.waitUntil(lambda: len(attach.strip.chips()) == 2, timeout=10_000)
    assert [a.label for a in attach.attachments()] == ["src/geometry.py", "src/util.py"]
    qtbot.waitUntil(lambda: "logo.png" in view.banner.text(), timeout=5_000)

    # × takes one back before sending
    attach.strip.chips()[1].remove_button.click()
    qtbot.waitUntil(lambda: len(attach.strip.chips()) == 1, timeout=5_000)
    assert [a.label for a in attach.attachments()] == ["src/geometry.py"]

    # a binary file alone is refused with the reason; what was attached stays
    drop(view.composer.viewport(), project / "logo.png")
    qtbot.waitUntil(lambda: "binary file" in view.banner.text(), timeout=5_000)
    assert [a.label for a in attach.attachments()] == ["src/geometry.py"]

    # clicking a chip opens the file with the system's handler
    opened = _Opened()
    QDesktopServices.setUrlHandler("file", opened, "open")
    try:
        attach.strip.chips()[0].button.click()
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert [u.toLocalFile() for u in opened.urls] == [str(project / "src" / "geometry.py")]

    # `@` completes over the working folder (the attached file's git work tree), listed
    # when `@` is first typed
    assert attach.candidates() == ["src/geometry.py", "src/util.py"]  # attached recently
    view.composer.setFocus()
    QTest.keyClicks(view.composer, "Compare with @uti")
    popup = attach.completer.popup()
    qtbot.waitUntil(popup.isVisible, timeout=5_000)
    qtbot.waitUntil(lambda: "logo.png" in attach.candidates(), timeout=10_000)
    assert "src/keys.secret" not in attach.candidates()  # .gitignore'd
    assert attach.completer.currentCompletion() == "src/util.py"
    QTest.keyClick(popup, Qt.Key.Key_Return)  # chooses the file; does not send
    assert view.composer.toPlainText() == "Compare with @src/util.py "
    assert window.controller.messages.rowCount() == 0
    qtbot.waitUntil(lambda: len(attach.strip.chips()) == 2, timeout=10_000)
    assert [a.label for a in attach.attachments()] == ["src/geometry.py", "src/util.py"]
    # the meter counts the files and the text
    files, typed = attach.used_tokens()
    assert files == sum(a.tokens for a in attach.attachments()) and typed > 0

    # more than the context holds: the meter says so and the message is not sent
    big = project / "big.txt"
    big.write_text("word " * 10_000)
    drop(view.composer.viewport(), big)
    qtbot.waitUntil(lambda: len(attach.strip.chips()) == 3, timeout=10_000)
    assert attach.meter.property("over") is True
    assert "more than the context holds" in attach.meter_label.text()
    view.send()
    assert "Not sent" in view.banner.text() and "8,192-token context" in view.banner.text()
    assert window.controller.messages.rowCount() == 0
    assert len(attach.attachments()) == 3  # nothing lost
