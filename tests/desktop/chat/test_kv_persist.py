"""The window keeps conversations' KV caches across a switch and a restart (real SmolLM2,
real widgets offscreen): leaving a conversation and closing the window save the cache;
the next window's first answer in that conversation loads it and evaluates only the new
message; a conversation nobody left is not written to disk at every answer; with
`kv_cache_mb = 0` nothing is saved and the states saved before are deleted.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hanlin.engine.chat.history import History
from hanlin.engine.core.settings import load_settings, update_settings
from hanlin.engine.runtime.kv_state_store import KVStateStore

pytestmark = pytest.mark.slow

ANSWER_TIMEOUT_MS = 240_000
SYSTEM = (
    "You are a patient guide to a small harbour town. The town has a stone quay, a fish "
    "market that opens at five, a bakery famous for rye bread, a lighthouse on the north "
    "point and a ferry to the island twice a day. Answer in one short sentence. "
) * 2


@pytest.fixture
def histories() -> Iterator[list[History]]:
    """The windows' history databases, closed once every window is gone."""
    opened: list[History] = []
    yield opened
    for history in opened:
        history.close()


def make_window(qtbot: Any, chat_store: Any, histories: list[History]) -> Any:
    """A main window as the app builds it (its own history connection, runner and model host:
    a second one is the app after a restart)."""
    from hanlin.desktop.main_window import MainWindow
    from hanlin.desktop.tasks import TaskRunner
    from hanlin.engine.models.catalog import load_catalog

    histories.append(History())
    win = MainWindow(histories[-1], TaskRunner(), chat_store, load_catalog())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.ready, timeout=20000)
    return win


def evaluated(outcome: Any) -> int:
    """Prompt tokens the answer ran through llama.cpp (the rest came from the cache)."""
    return outcome.stats["prompt_tokens"] - outcome.stats["cached_tokens"]


def send_and_wait(qtbot: Any, win: Any, text: str) -> Any:
    with qtbot.waitSignal(win.controller.answerFinished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        win.chat_view.composer.setPlainText(text)
        QTest.keyClick(win.chat_view.composer, Qt.Key.Key_Return)
    return blocker.args[0]


def test_switch_and_quit_save_the_cache_and_the_next_window_restores_it(
    qtbot: Any, chat_store: Any, histories: list[History]
) -> None:
    store = KVStateStore()
    win = make_window(qtbot, chat_store, histories)
    try:
        c = win.controller
        c.set_system_prompt(SYSTEM)
        first = send_and_wait(qtbot, win, "When does the fish market open?")
        conversation = c.current_id
        assert first.stats["restored_tokens"] == 0
        second = send_and_wait(qtbot, win, "And the bakery?")
        assert evaluated(second) < 40  # the open chat reuses its cache
        assert store.entries() == []  # nothing is written while the conversation stays open

        c.new_conversation()  # leaving it saves its cache, on the runner
        qtbot.waitUntil(lambda: len(store.entries()) == 1, timeout=60_000)
        (entry,) = store.entries()
        assert len(entry.tokens) > second.stats["prompt_tokens"]  # the prompt and the answer

        c.open_conversation(conversation)
        win.close()  # quitting saves too (nothing new here: the file is only touched)
        assert [e.path for e in store.entries()] == [entry.path]
    finally:
        win.shutdown(30_000)

    # a new window (a restart: the model is loaded again) reopens the conversation
    win = make_window(qtbot, chat_store, histories)
    try:
        c = win.controller
        c.open_conversation(conversation)
        third = send_and_wait(qtbot, win, "How do I get to the island?")
        stats = third.stats
        assert stats["restored_tokens"] > 0
        assert stats["cached_tokens"] == stats["restored_tokens"]
        assert evaluated(third) < 40 < stats["cached_tokens"]
        assert third.content.strip()
        win.close()
    finally:
        win.shutdown(30_000)
    # the longer conversation's state replaced the one it extends
    (latest,) = store.entries()
    assert len(latest.tokens) > len(entry.tokens)
    assert latest.tokens[: len(entry.tokens)] == entry.tokens


def test_turning_the_cache_off_saves_nothing_and_frees_the_disk(
    qtbot: Any, chat_store: Any, histories: list[History]
) -> None:
    store = KVStateStore()
    win = make_window(qtbot, chat_store, histories)
    try:
        c = win.controller
        c.set_system_prompt(SYSTEM)
        send_and_wait(qtbot, win, "When does the fish market open?")
        conversation = c.current_id
        c.new_conversation()
        qtbot.waitUntil(lambda: len(store.entries()) == 1, timeout=60_000)

        update_settings(kv_cache_mb=0)
        assert load_settings().settings.kv_cache_mb == 0
        c.open_conversation(conversation)
        qtbot.waitUntil(lambda: store.entries() == [], timeout=60_000)
        win.close()  # quitting saves nothing either
    finally:
        win.shutdown(30_000)
    assert store.entries() == []


def test_the_loaded_models_cache_is_saved_before_another_model_replaces_it(
    smollm2_path: Path, tmp_path: Path
) -> None:
    from hanlin.desktop.chat.generation import GenerationRequest, LazyModelHost, load_for
    from hanlin.engine.core.cancel import CancelToken

    other = tmp_path / "other-model.gguf"
    shutil.copyfile(smollm2_path, other)

    def request(path: Path, n_ctx: int = 1024) -> GenerationRequest:
        return GenerationRequest(
            conversation_id=1, model_id=path.stem, model_path=path, family=None, turns=[],
            thinking=True, sampling=None, max_tokens=8, n_ctx=n_ctx, n_gpu_layers=0,
        )

    host, store = LazyModelHost(), KVStateStore()
    try:
        first = load_for(request(smollm2_path), host, CancelToken())
        first.session.evaluate(first.session.tokenize(SYSTEM * 2, add_special=True))
        held = list(first.session.tokens)
        # the same model with other settings: nothing saved (the key would not match)
        again = load_for(request(smollm2_path, n_ctx=2048), host, CancelToken())
        assert again is not first and store.entries() == []
        again.session.evaluate(held)
        load_for(request(other), host, CancelToken())
        (entry,) = store.entries()
        assert list(entry.tokens) == held
    finally:
        host.close()
