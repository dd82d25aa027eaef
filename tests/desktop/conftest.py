"""Fixtures of the desktop tests: a store with the real SmolLM2, and the real main window."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.chat.history import History
from tests.support.desktop_chat import install_smollm2, short_answers


@pytest.fixture
def chat_store(smollm2_path: Path):
    short_answers()
    return install_smollm2(smollm2_path)


@pytest.fixture
def window(qtbot, chat_store) -> Iterator:
    from hanlin.desktop.main_window import MainWindow
    from hanlin.desktop.tasks import TaskRunner
    from hanlin.engine.models.catalog import load_catalog

    history = History()
    win = MainWindow(history, TaskRunner(), chat_store, load_catalog())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.ready, timeout=20000)
    yield win
    win.shutdown(30000)
    history.close()
