"""The window's chat with models on remote servers: real `llama-server`s, real widgets.

Remote models join the local ones in the picker (`NAME/MODEL`), answers stream in, Stop
aborts the server's generation, a conversation's history goes along, the reasoning
split and the thinking switch work, a server killed mid-answer leaves the partial
answer kept and marked interrupted, and the Remote servers dialog adds, tests and
removes servers.
"""

# ruff: noqa: F811 - pytest fixtures imported from tests/support are used as parameters

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from hanlin.engine.chat.history import History
from hanlin.engine.core.settings import (
    ModelSettings,
    RemoteEndpoint,
    Settings,
    load_settings,
    save_settings,
)
from tests.conftest import smollm2_gguf
from tests.support.desktop_chat import SMOL_ID, install_smollm2
from tests.support.remote_servers import (  # noqa: F401
    THINK_TEMPLATE,
    LlamaServer,
    free_port,
    llama_server_bin,
    smol_server,
)

pytestmark = pytest.mark.slow

TIMEOUT_MS = 120_000
REMOTE_ID = "lab/smollm2"


def remote_settings(*remotes: RemoteEndpoint, max_tokens: int = 12, ids=(REMOTE_ID,)) -> None:
    models = {i: ModelSettings(max_tokens=max_tokens, temperature=0.0) for i in ids}
    save_settings(Settings(chat_model=SMOL_ID, models=models, remote=list(remotes)))


@pytest.fixture
def open_window(qtbot, smollm2_path: Path):
    """A function that opens the real main window once settings are written."""
    opened = []

    def make():
        from hanlin.desktop.main_window import MainWindow
        from hanlin.desktop.tasks import TaskRunner
        from hanlin.engine.models.catalog import load_catalog

        store = install_smollm2(smollm2_path)
        history = History()
        win = MainWindow(history, TaskRunner(), store, load_catalog())
        qtbot.addWidget(win)
        win.show()
        qtbot.waitUntil(lambda: win.ready and win.controller.remotes_ready, timeout=20_000)
        opened.append((win, history))
        return win

    yield make
    for win, history in opened:
        win.shutdown(30_000)
        history.close()


def send_and_wait(qtbot, win, text: str):
    with qtbot.waitSignal(win.controller.answerFinished, timeout=TIMEOUT_MS) as blocker:
        win.chat_view.composer.setPlainText(text)
        QTest.keyClick(win.chat_view.composer, Qt.Key.Key_Return)
    return blocker.args[0]


def picker_ids(win) -> list[str]:
    picker = win.chat_view.model_picker
    return [picker.itemData(i) for i in range(picker.count())]


def test_a_remote_model_in_the_picker_streams_answers_with_history(
    qtbot, open_window, smol_server: LlamaServer
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    remote_settings(RemoteEndpoint("lab", smol_server.url), RemoteEndpoint("gone", dead))
    win = open_window()
    c = win.controller
    assert picker_ids(win) == [SMOL_ID, REMOTE_ID]  # local first; the dead server hides nothing
    picker = win.chat_view.model_picker
    assert "lab (remote)" in picker.itemText(1)
    assert any(p.startswith("gone:") for p in c.remote_problems)

    picker.setCurrentIndex(1)
    picker.activated.emit(1)
    assert c.current_model().id == REMOTE_ID
    assert load_settings().settings.chat_model == REMOTE_ID  # the default for new chats
    seen: list[str] = []
    c.messages.dataChanged.connect(lambda a, b, r: seen.append(c.messages.row(a.row()).content))
    first = send_and_wait(qtbot, win, "Count from 1 to 20, separated by commas.")
    assert first.content.strip() and not first.stopped
    assert any(s and s != first.content for s in seen), "the answer was not streamed"
    assert first.stats["endpoint"] == "lab" and first.stats["stop_reason"] == "length"
    assert win.backend_label.text() == "lab (remote)"
    assert win.model_label.text() == REMOTE_ID
    assert win.speed_label.text().endswith("tok/s")
    second = send_and_wait(qtbot, win, "And now backwards.")
    assert second.stats["prompt_tokens"] > first.stats["prompt_tokens"] + 10  # history went along
    h = History()
    (conv,) = h.list()
    assert conv.model_id == REMOTE_ID
    stored = h.messages(conv.id)
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[1].content == first.content and stored[1].complete
    assert stored[1].model_id == REMOTE_ID
    h.close()


def test_stop_aborts_the_remote_answer(qtbot, open_window, smol_server: LlamaServer) -> None:
    remote_settings(RemoteEndpoint("lab", smol_server.url), max_tokens=1500)
    win = open_window()
    c = win.controller
    c.set_model(REMOTE_ID)
    win.chat_view.composer.setPlainText("Count from 1 to 1000, separated by commas.")
    win.chat_view.send()
    qtbot.waitUntil(
        lambda: c.messages.rowCount() == 2 and len(c.messages.row(1).content) > 10,
        timeout=TIMEOUT_MS,
    )
    with qtbot.waitSignal(c.answerFinished, timeout=30_000) as blocker:
        QTest.keyClick(win, Qt.Key.Key_Escape)
    outcome = blocker.args[0]
    assert outcome.stopped and outcome.content
    assert "stopped" in win.chat_view.message_widgets()[1].header.text()
    deadline = time.monotonic() + 3
    while smol_server.slots_busy():
        assert time.monotonic() < deadline, "the server kept generating after Stop"
        time.sleep(0.05)


def test_a_server_killed_mid_answer_keeps_the_answer_marked(
    qtbot, open_window, llama_server_bin: Path, tmp_path: Path
) -> None:
    with LlamaServer(llama_server_bin, smollm2_gguf(), log=tmp_path / "kill.log") as server:
        remote_settings(RemoteEndpoint("lab", server.url), max_tokens=1500)
        win = open_window()
        c = win.controller
        c.set_model(REMOTE_ID)
        warnings: list[tuple[str, str]] = []
        c.warningRaised.connect(lambda m, h: warnings.append((m, h)))
        win.chat_view.composer.setPlainText("Count from 1 to 1000, separated by commas.")
        with qtbot.waitSignal(c.answerFinished, timeout=TIMEOUT_MS) as blocker:
            win.chat_view.send()
            qtbot.waitUntil(
                lambda: c.messages.rowCount() == 2 and len(c.messages.row(1).content) > 10,
                timeout=TIMEOUT_MS,
            )
            server.kill()
    outcome = blocker.args[0]
    assert outcome.content and outcome.stats["stop_reason"] == "interrupted"
    assert warnings and "connection" in warnings[0][0]
    assert "partial answer is kept" in warnings[0][0]
    assert "partial answer is kept" in win.chat_view.banner.text()
    widget = win.chat_view.message_widgets()[1]
    assert "interrupted" in widget.header.text() and widget.row.content == outcome.content
    assert widget.regenerate_button.isVisibleTo(win)
    h = History()
    stored = h.message(outcome.message_id)
    assert stored.content == outcome.content and not stored.complete
    assert "connection" in stored.stats["error"]
    h.close()
    # the window keeps working: the next send reports the dead server in the banner
    errors: list[BaseException] = []
    c.errorRaised.connect(errors.append)
    win.chat_view.composer.setPlainText("Are you there?")
    win.chat_view.send()
    qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
    assert "Cannot reach lab" in str(errors[0])


@pytest.fixture(scope="module")
def think_server(llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    folder = tmp_path_factory.mktemp("think")
    (folder / "think.jinja").write_text(THINK_TEMPLATE)
    extra = ["--jinja", "--chat-template-file", str(folder / "think.jinja")]
    with LlamaServer(
        llama_server_bin, smollm2_gguf(), alias="qwen3-smol", extra=extra, log=folder / "t.log"
    ) as server:
        yield server


def test_reasoning_and_the_thinking_switch(qtbot, open_window, think_server: LlamaServer) -> None:
    ref = "lab/qwen3-smol"
    remote_settings(RemoteEndpoint("lab", think_server.url), ids=(ref,))
    win = open_window()
    c = win.controller
    c.set_model(ref)
    assert c.current_model().thinking_switch  # a Qwen3 name: the switch is offered
    thought = send_and_wait(qtbot, win, "What is 2+2?")
    assert thought.thinking and not thought.content  # SmolLM2 never closes the block
    widget = win.chat_view.message_widgets()[1]
    assert widget.thinking_toggle.isVisible() and "Thought" in widget.thinking_toggle.text()
    win.chat_view.thinking_switch.setChecked(False)
    plain = send_and_wait(qtbot, win, "What is 3+3?")
    assert plain.content and not plain.thinking


def test_the_remote_servers_dialog(qtbot, open_window, smol_server: LlamaServer) -> None:
    remote_settings()
    win = open_window()
    assert picker_ids(win) == [SMOL_ID]
    dialog = win.edit_remotes()
    qtbot.addWidget(dialog)
    assert dialog.list.count() == 0
    dialog.name.setText("lab")
    dialog.url.setText(smol_server.url + "/v1")
    dialog.test_connection()
    qtbot.waitUntil(lambda: "Connected" in dialog.status.text(), timeout=20_000)
    assert "1 model: smollm2" in dialog.status.text()
    with qtbot.waitSignal(win.controller.modelsChanged, timeout=20_000):
        assert dialog.save()
    assert [r.name for r in load_settings().settings.remote] == ["lab"]
    assert picker_ids(win) == [SMOL_ID, REMOTE_ID]

    # a key stored in plain text only when chosen, with the warning shown
    dialog.key_stored_choice.setChecked(True)
    assert dialog.key_warning.isVisibleTo(dialog) and dialog.key_value.isEnabled()
    assert not dialog.save() and "Type the API key" in dialog.status.text()
    dialog.key_value.setText("k-123")
    assert dialog.save()
    assert load_settings().settings.remote_named("lab").api_key == "k-123"
    dialog.key_env_choice.setChecked(True)
    dialog.key_env.setText("LAB_KEY")
    assert dialog.save()
    saved = load_settings().settings.remote_named("lab")
    assert (saved.key_env, saved.api_key) == ("LAB_KEY", None)

    # mistakes are shown in the dialog, nothing is written
    dialog.start_new()
    dialog.name.setText("lab")
    dialog.url.setText("http://127.0.0.1:1")
    assert not dialog.save() and "already named" in dialog.status.text()
    dialog.name.setText("gone")
    dialog.url.setText(f"http://127.0.0.1:{free_port()}")
    dialog.test_connection()
    qtbot.waitUntil(lambda: "✗" in dialog.status.text(), timeout=20_000)
    assert "connection refused" in dialog.status.text()
    assert [r.name for r in load_settings().settings.remote] == ["lab"]

    dialog.list.setCurrentRow(0)
    assert dialog.name.text() == "lab"
    with qtbot.waitSignal(win.controller.modelsChanged, timeout=20_000):
        assert dialog.remove_current()
    assert load_settings().settings.remote == [] and picker_ids(win) == [SMOL_ID]
