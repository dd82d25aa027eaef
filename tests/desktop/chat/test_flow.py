"""The chat against the real SmolLM2 model and the real widgets (offscreen).

Send and watch the answer stream in; stop mid-stream (Esc); regenerate; edit a
user message and continue; switch the model; the thinking switch; copy a code
block; a broken model file shows an error and the window keeps working; and the
event loop's longest stall while a model loads and generates.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time

import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest

from hanlin.engine.chat.history import History
from hanlin.engine.core.errors import HanlinError
from tests.support.desktop_chat import SMOL_ID, install_smollm2, short_answers

pytestmark = pytest.mark.slow

ANSWER_TIMEOUT_MS = 240_000


def send_and_wait(qtbot, win, text: str):
    with qtbot.waitSignal(win.controller.answerFinished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        win.chat_view.composer.setPlainText(text)
        QTest.keyClick(win.chat_view.composer, Qt.Key.Key_Return)
    return blocker.args[0]


def test_send_streams_the_answer_into_the_view_and_the_database(qtbot, window):
    short_answers(24)
    seen: list[str] = []
    window.controller.messages.dataChanged.connect(
        lambda a, b, r: seen.append(window.controller.messages.row(a.row()).content)
    )
    outcome = send_and_wait(qtbot, window, "Tell me about the sea.")
    widgets = window.chat_view.message_widgets()
    assert [w.row.role for w in widgets] == ["user", "assistant"]
    assert widgets[0].row.content == "Tell me about the sea."
    answer = widgets[1].row.content
    assert answer.strip() and answer == outcome.content
    assert widgets[1].content.text()  # rendered
    # streamed: partial texts were shown before the final one
    partial = [s for s in seen if s and s != answer]
    assert partial, "the answer appeared all at once, not streamed"
    assert all(answer.startswith(p) for p in partial)
    # the composer was cleared, the status line shows the numbers
    assert window.chat_view.composer.toPlainText() == ""
    assert window.model_label.text() == SMOL_ID
    assert window.backend_label.text() == "CPU"
    assert window.ttft_label.text().startswith("TTFT ")
    assert window.speed_label.text().endswith("tok/s")
    # saved complete, with stats
    h = History()
    (conv,) = h.list()
    assert conv.title == "Tell me about the sea."
    stored = h.messages(conv.id)
    assert stored[1].content == answer and stored[1].complete
    assert stored[1].stats and stored[1].stats["generated_tokens"] > 0
    h.close()


def test_shift_enter_makes_a_newline_not_a_message(qtbot, window):
    composer = window.chat_view.composer
    QTest.keyClicks(composer, "line one")
    QTest.keyClick(composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    QTest.keyClicks(composer, "line two")
    assert composer.toPlainText() == "line one\nline two"
    assert window.controller.messages.rowCount() == 0


def test_escape_stops_mid_stream_and_keeps_the_partial_answer(qtbot, window):
    short_answers(400)
    c = window.controller
    window.chat_view.composer.setPlainText("Write a very long story about a dragon and a knight.")
    window.chat_view.send()
    qtbot.waitUntil(
        lambda: c.messages.rowCount() == 2 and len(c.messages.row(1).content) > 10,
        timeout=ANSWER_TIMEOUT_MS,
    )
    assert window.chat_view.stop_button.isVisible()
    with qtbot.waitSignal(c.answerFinished, timeout=60_000) as blocker:
        QTest.keyClick(window, Qt.Key.Key_Escape)
        # the window stops at once, before the worker even returns
        assert not c.is_generating()
        assert window.chat_view.send_button.isVisible()
    outcome = blocker.args[0]
    assert outcome.stopped
    assert outcome.stats["generated_tokens"] < 400
    assert c.messages.row(1).content == outcome.content
    h = History()
    stored = h.message(outcome.message_id)
    assert stored.content == outcome.content and stored.complete
    assert stored.stats["stop_reason"] == "cancelled"
    h.close()
    assert "stopped" in window.chat_view.message_widgets()[1].header.text()


def test_regenerate_replaces_the_last_answer(qtbot, window):
    first = send_and_wait(qtbot, window, "Say hello.")
    widgets = window.chat_view.message_widgets()
    assert widgets[1].regenerate_button.isVisibleTo(window)
    assert not widgets[0].regenerate_button.isVisibleTo(window)
    with qtbot.waitSignal(window.controller.answerFinished, timeout=ANSWER_TIMEOUT_MS) as b:
        widgets[1].regenerate_button.click()
    second = b.args[0]
    assert second.message_id != first.message_id
    rows = window.controller.messages.rows()
    assert [r.role for r in rows] == ["user", "assistant"]
    assert rows[1].id == second.message_id
    h = History()
    (conv,) = h.list()
    assert [m.id for m in h.messages(conv.id)] == [rows[0].id, second.message_id]
    h.close()


def test_edit_a_user_message_and_continue_from_there(qtbot, window):
    send_and_wait(qtbot, window, "What is one plus one?")
    send_and_wait(qtbot, window, "And two plus two?")
    assert window.controller.messages.rowCount() == 4
    first_user = window.chat_view.message_widgets()[0]
    first_user.edit_button.click()
    assert first_user.editor.isVisibleTo(window)
    first_user.editor.setPlainText("What is three plus three?")
    with qtbot.waitSignal(window.controller.answerFinished, timeout=ANSWER_TIMEOUT_MS):
        first_user.save_edit.click()
    rows = window.controller.messages.rows()
    assert [(r.role, r.content if r.role == "user" else "") for r in rows] == [
        ("user", "What is three plus three?"),
        ("assistant", ""),
    ]
    h = History()
    (conv,) = h.list()
    assert h.messages(conv.id)[0].content == "What is three plus three?"
    assert len(h.messages(conv.id)) == 2
    h.close()


def test_switch_model_with_the_picker(qtbot, window, smollm2_path):
    install_smollm2(smollm2_path, model_id="smollm2-copy")
    short_answers(8, SMOL_ID, "smollm2-copy")
    window.controller.reload_models()
    picker = window.chat_view.model_picker
    ids = [picker.itemData(i) for i in range(picker.count())]
    assert set(ids) == {SMOL_ID, "smollm2-copy"}
    # Ctrl+K opens the picker
    QTest.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: picker.view().isVisible(), timeout=5000)
    picker.hidePopup()
    picker.setCurrentIndex(ids.index("smollm2-copy"))
    picker.activated.emit(ids.index("smollm2-copy"))
    outcome = send_and_wait(qtbot, window, "Hi!")
    assert outcome.model.model_id == "smollm2-copy"
    assert window.model_label.text() == "smollm2-copy"
    conv = window.controller.current_conversation()
    assert conv is not None and conv.model_id == "smollm2-copy"
    assert window.chat_view.message_widgets()[1].row.model_id == "smollm2-copy"


def test_thinking_switch_only_for_models_that_have_one(qtbot, window, smollm2_path):
    view = window.chat_view
    assert not view.thinking_switch.isVisibleTo(window)  # SmolLM2 (llama family) cannot think
    install_smollm2(smollm2_path, model_id="pretend-qwen3", family="qwen3")
    window.controller.reload_models()
    window.controller.new_conversation()
    window.controller.set_model("pretend-qwen3")
    assert view.thinking_switch.isVisibleTo(window)
    assert view.thinking_switch.isChecked()
    view.thinking_switch.click()  # off for this conversation
    window.controller.send("Hello")  # creates nothing new: the conversation exists
    conv = window.controller.current_conversation()
    assert conv is not None and conv.thinking is False
    window.controller.stop()
    # a fresh conversation starts with thinking on again
    qtbot.waitUntil(lambda: window.runner.active_count() == 0, timeout=ANSWER_TIMEOUT_MS)
    window.controller.new_conversation()
    assert view.thinking_switch.isChecked()


def test_thought_block_is_collapsed_and_code_blocks_copy(qtbot, window):
    h = window.history
    c = h.create("stored")
    h.append(c.id, "user", "Show me code")
    h.append(
        c.id,
        "assistant",
        "Here:\n\n```python\nprint('hi')\n```\n",
        thinking="The user wants code. Keep it short.",
        thinking_s=3.2,
    )
    window.controller.conversations.refresh()
    window.controller.open_conversation(c.id)
    answer = window.chat_view.message_widgets()[1]
    assert answer.thinking_toggle.isVisibleTo(window)
    assert "Thought for 3 s" in answer.thinking_toggle.text()
    assert not answer.thinking_label.isVisibleTo(window)  # collapsed
    answer.thinking_toggle.click()
    assert answer.thinking_label.isVisibleTo(window)
    assert "Keep it short" in answer.thinking_label.text()
    assert "copy:0" in answer.content.text()
    answer.content.linkActivated.emit("copy:0")
    assert QGuiApplication.clipboard().text() == "print('hi')\n"


def test_a_broken_model_file_shows_an_error_and_the_window_keeps_working(
    qtbot, window, smollm2_path, tmp_path
):
    copy = tmp_path / "soon-broken.gguf"
    copy.write_bytes(smollm2_path.read_bytes())
    window.store.import_file(copy, model_id="broken")
    with copy.open("r+b") as f:  # damaged on disk after it was registered
        f.truncate(4_000_000)
    short_answers(8, "broken", SMOL_ID)
    window.controller.reload_models()
    window.controller.set_model("broken")
    with qtbot.waitSignal(window.controller.errorRaised, timeout=60_000) as blocker:
        window.controller.send("Hello?")
    error = blocker.args[0]
    assert isinstance(error, HanlinError)
    banner = window.chat_view.banner
    assert banner.isVisibleTo(window)
    assert "soon-broken.gguf" in banner.text() or "model" in banner.text().lower()
    assert [r.role for r in window.controller.messages.rows()] == ["user"]  # no empty answer
    assert not window.controller.is_generating()
    window.controller.set_model(SMOL_ID)
    outcome = send_and_wait(qtbot, window, "Hello again")
    assert outcome.content and outcome.model.model_id == SMOL_ID


def test_event_loop_never_stalls_while_a_model_loads_and_generates(qtbot, window, capsys):
    """A 5 ms timer records the gaps between its ticks while a model loads and answers."""
    short_answers(32)
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    start = time.perf_counter()
    outcome = send_and_wait(qtbot, window, "Describe a forest in a few sentences.")
    timer.stop()
    worst = max(gaps)
    with capsys.disabled():
        print(
            f"\n[stall] longest GUI-thread gap during load+generation: {worst:.0f} ms "
            f"({len(gaps)} ticks, {time.perf_counter() - start:.1f} s, "
            f"{outcome.stats['generated_tokens']} tokens)"
        )
    assert outcome.content
    assert worst < 1000, f"the GUI thread was blocked for {worst:.0f} ms"


def test_reasoning_stream_shows_a_thinking_block_then_the_answer(qtbot, window, monkeypatch):
    """No reasoning model's weights are reachable here: the real SmolLM2 loads, and the
    stream itself is a scripted Qwen3-style one (thinking events, then answer events)."""
    import hanlin.engine.chat.stream as chat

    def scripted(
        model,
        messages,
        *,
        sampling=None,
        thinking=True,
        max_tokens=None,
        cancel=None,
        on_event=None,
        **_engine_options,  # kv_store, speculative, ...: nothing to do for a script
    ):
        assert all(m.thinking is None for m in messages)  # history never carries thinking
        for word in ["The", " user", " greets", " me."]:
            on_event(chat.StreamEvent("thinking", word))
            time.sleep(0.15)
        for word in ["Hello", "!", " How", " can", " I", " help?"]:
            on_event(chat.StreamEvent("answer", word))
            time.sleep(0.05)
        stats = chat.GenerationStats(generated_tokens=10, ttft_s=0.1, tokens_per_s=50.0)
        return chat.ChatReply("Hello! How can I help?", "The user greets me.", stats)

    monkeypatch.setattr(chat, "stream_chat", scripted)
    toggles: list[str] = []
    window.controller.messages.dataChanged.connect(
        lambda *_: toggles.append(window.chat_view.message_widgets()[-1].thinking_toggle.text())
    )
    outcome = send_and_wait(qtbot, window, "Hi")
    assert any("Thinking…" in t for t in toggles)  # shown live while it thought
    answer = window.chat_view.message_widgets()[1]
    assert answer.thinking_toggle.text().startswith("▸ Thought for")
    assert not answer.thinking_label.isVisibleTo(window)  # collapsed once done
    assert answer.row.content == "Hello! How can I help?"
    assert outcome.thinking_s is not None and outcome.thinking_s >= 0.4
    stored = window.history.message(outcome.message_id)
    assert stored.thinking == "The user greets me." and stored.content == "Hello! How can I help?"
    turns = window.history.model_turns(stored.conversation_id)
    assert all("greets me" not in text for _, text in turns)


def test_closing_the_window_mid_answer_stops_waits_and_saves(qtbot, window):
    short_answers(400)
    c = window.controller
    c.send("Write a very long story about a lighthouse keeper.")
    qtbot.waitUntil(
        lambda: c.messages.rowCount() == 2 and len(c.messages.row(1).content) > 10,
        timeout=ANSWER_TIMEOUT_MS,
    )
    mid = c.messages.row(1).id
    window.close()  # cancels the answer and waits for the worker
    assert window.runner.active_count() == 0
    stored = History().message(mid)
    assert stored.complete and stored.content
    assert stored.stats is None or stored.stats.get("stop_reason") == "cancelled"


def test_stop_while_the_model_loads_leaves_no_empty_answer(qtbot, window):
    c = window.controller
    c.send("Hello")
    assert c.status.phase == "loading"
    c.stop()  # at once, before the first token (usually while the model loads)
    qtbot.waitUntil(lambda: window.runner.active_count() == 0, timeout=ANSWER_TIMEOUT_MS)
    rows = c.messages.rows()
    assert rows[0].role == "user"
    if len(rows) == 2:  # the model was quicker than the stop: a partial answer is kept
        assert rows[1].content and not rows[1].streaming
    conv = c.current_conversation()
    stored = window.history.messages(conv.id)
    assert all(m.content for m in stored)  # never an empty answer in the history
    assert [m.id for m in stored] == [r.id for r in rows]


def _assert_no_empty_answer(window) -> list:
    """The history on disk and the view agree, and no answer in either is empty."""
    c = window.controller
    conv = c.current_conversation()
    assert conv is not None
    stored = window.history.messages(conv.id)
    assert all(m.content for m in stored), [(m.role, m.content) for m in stored]
    assert all(m.complete for m in stored)
    rows = c.messages.rows()
    assert [m.id for m in stored] == [r.id for r in rows]
    assert not any(r.streaming for r in rows)
    return rows


def _wait_idle(qtbot, window) -> None:
    qtbot.waitUntil(
        lambda: window.runner.active_count() == 0 and not window.controller.is_generating(),
        timeout=ANSWER_TIMEOUT_MS,
    )


def test_stop_then_send_while_the_model_loads_leaves_no_empty_answer(qtbot, window):
    c = window.controller
    c.send("Hello")
    assert c.status.phase == "loading"
    c.stop()  # while the model loads ...
    assert c.send("Hello again")  # ... and at once the next message
    _wait_idle(qtbot, window)
    rows = _assert_no_empty_answer(window)
    users = [r.content for r in rows if r.role == "user"]
    assert users == ["Hello", "Hello again"]
    assert rows[-1].role == "assistant" and rows[-1].content  # the second one was answered
    assert c.status.phase == "idle"


def test_send_while_the_answer_is_loading_leaves_no_empty_answer(qtbot, window):
    c = window.controller
    c.send("Hello")
    assert c.status.phase == "loading"
    assert c.send("Are you there?")  # replaces the answer that had not begun
    assert c.is_generating() and c.status.phase == "loading"
    _wait_idle(qtbot, window)
    rows = _assert_no_empty_answer(window)
    assert [r.content for r in rows if r.role == "user"] == ["Hello", "Are you there?"]
    assert rows[-1].role == "assistant" and rows[-1].content
    assert c.status.phase == "idle"


def test_qwen3_with_thinking_off_samples_with_the_family_values(qtbot, window, smollm2_path):
    """No user setting, no catalog entry: the Qwen3 family's non-thinking values apply;
    a per-model setting in settings.toml then wins over them."""
    from hanlin.engine.core.settings import ModelSettings, load_settings, save_settings

    install_smollm2(smollm2_path, model_id="pretend-qwen3", family="qwen3")
    loaded = load_settings().settings
    loaded.models["pretend-qwen3"] = ModelSettings(max_tokens=4)  # length only
    save_settings(loaded)
    c = window.controller
    c.reload_models()
    c.new_conversation()
    c.set_model("pretend-qwen3")
    c.set_thinking(False)
    outcome = send_and_wait(qtbot, window, "Hello")
    used = window.history.message(outcome.message_id).stats["sampling"]
    assert (used["temperature"], used["top_p"], used["top_k"], used["min_p"]) == (
        0.7,
        0.8,
        20,
        0.0,
    )
    loaded = load_settings().settings
    loaded.models["pretend-qwen3"] = ModelSettings(max_tokens=4, temperature=0.2)
    save_settings(loaded)
    outcome = send_and_wait(qtbot, window, "Hello again")
    used = window.history.message(outcome.message_id).stats["sampling"]
    assert (used["temperature"], used["top_p"]) == (0.2, 0.8)
