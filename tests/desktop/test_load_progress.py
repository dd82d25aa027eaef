"""The status line says how far a model load got ("Loading model… 40%").

llama.cpp reports its load through the engine's `on_progress` (engine/runtime/loader.py);
the chat worker forwards it as a "loading" snapshot, the controller coalesces snapshots on
its repaint timer and the main window shows the percentage.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hanlin.desktop.chat.generation import StreamSnapshot
from hanlin.engine.core.cancel import Progress

pytestmark = pytest.mark.slow


def test_status_line_shows_the_load_percentage(qtbot, window) -> None:
    c = window.controller
    c._streaming_id = 7  # the answer being written (as `send` sets it)
    c._on_progress(StreamSnapshot(7, "loading", load=Progress("inspect", detail="x.gguf")))
    c._flush_snapshot()
    assert window.phase_label.text() == "Loading model…"  # nothing known yet
    c._on_progress(StreamSnapshot(7, "loading", load=Progress("load", 0.4, 1.0)))
    c._flush_snapshot()
    assert window.phase_label.text() == "Loading model… 40%"
    assert c.status.load_fraction == pytest.approx(0.4)
    c._on_progress(StreamSnapshot(7, "answering", content="Hi"))
    c._flush_snapshot()
    assert window.phase_label.text() == "Answering…"
    assert c.status.load_fraction is None
    c._streaming_id = None


def test_a_real_load_ends_on_the_answer_not_on_a_percentage(qtbot, window) -> None:
    c = window.controller
    seen: list[tuple[str, float | None, str]] = []
    c.statusChanged.connect(
        lambda s: seen.append((s.phase, s.load_fraction, window.phase_label.text()))
    )
    with qtbot.waitSignal(c.answerFinished, timeout=240_000):
        window.chat_view.composer.setPlainText("Hello")
        QTest.keyClick(window.chat_view.composer, Qt.Key.Key_Return)
    assert seen and seen[0][0] == "loading"
    loading = [f for phase, f, _ in seen if f is not None]
    assert all(phase == "loading" for phase, f, _ in seen if f is not None)
    assert loading == sorted(loading) and all(0 <= f <= 1 for f in loading)
    assert not window.phase_label.text().startswith("Loading")
