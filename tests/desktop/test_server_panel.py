"""The API server panel: a real `hanlin serve` started and stopped from real Qt widgets."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from PySide6.QtGui import QGuiApplication

from hanlin.engine.core.settings import load_settings, update_settings
from hanlin.server.snippets import snippets
from tests.support.desktop_chat import SMOL_ID, install_smollm2, short_answers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_snippets_name_the_address_model_and_key() -> None:
    text = snippets("http://127.0.0.1:8080", "qwen3-4b-q4km")
    assert 'base_url="http://127.0.0.1:8080/v1"' in text["openai"]
    assert 'model="qwen3-4b-q4km"' in text["openai"]
    assert "apiBase: http://127.0.0.1:8080/v1" in text["continue"]
    assert "provider: openai" in text["continue"]
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:8080\n" in text["claude"]
    assert "ANTHROPIC_MODEL=qwen3-4b-q4km" in text["claude"]
    keyed = snippets("http://h:1", "m", key_env="HANLIN_API_KEY")
    assert 'os.environ["HANLIN_API_KEY"]' in keyed["openai"]
    assert "ANTHROPIC_AUTH_TOKEN=$HANLIN_API_KEY" in keyed["claude"]
    assert "secrets.HANLIN_API_KEY" in keyed["continue"]
    compile(text["openai"], "snippet", "exec")  # the Python snippet is valid Python


@pytest.mark.slow
def test_start_copy_and_stop_a_real_server(qtbot, smollm2_path: Path) -> None:
    from hanlin.desktop.server_panel import ServerPanel

    short_answers()
    install_smollm2(smollm2_path)
    port = _free_port()
    update_settings(server=lambda s: replace(s, port=port))
    panel = ServerPanel()
    qtbot.addWidget(panel)
    panel.show()
    assert panel.toggle.text() == "Start server"
    assert not panel.autostart.isChecked()

    panel.toggle.click()
    qtbot.waitUntil(lambda: panel.server.state == "running", timeout=90_000)
    url = f"http://127.0.0.1:{port}"
    assert panel.address.text() == f"{url}/v1"
    assert panel.status.text() == "Running"
    assert panel.toggle.text() == "Stop server"
    health = httpx.get(f"{url}/health", timeout=5).json()
    assert health["status"] == "ok" and health["model"] == SMOL_ID

    panel.copy_buttons["claude"].click()
    clip = QGuiApplication.clipboard().text()
    assert f"ANTHROPIC_BASE_URL={url}\n" in clip and f"ANTHROPIC_MODEL={SMOL_ID}" in clip
    panel.copy_buttons["openai"].click()
    assert f'base_url="{url}/v1"' in QGuiApplication.clipboard().text()
    assert "Copied" in panel.copied.text()

    panel.autostart.setChecked(True)
    assert load_settings().settings.server.autostart is True

    panel.toggle.click()
    qtbot.waitUntil(lambda: panel.server.state == "stopped", timeout=20_000)
    assert panel.address.text() == ""
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)
    assert any("hanlin serve: stopped" in line for line in panel.server.log)


@pytest.mark.slow
def test_a_failing_server_says_why(qtbot) -> None:
    from hanlin.desktop.server_panel import ServerPanel

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        update_settings(server=lambda s: replace(s, port=port))
        panel = ServerPanel()
        qtbot.addWidget(panel)
        panel.toggle.click()
        qtbot.waitUntil(lambda: panel.server.state == "failed", timeout=60_000)
    finally:
        busy.close()
    assert f"Cannot listen on 127.0.0.1:{port}" in panel.status.text()
    assert panel.toggle.text() == "Start server"


@pytest.mark.slow
def test_window_menu_and_autostart(qtbot, smollm2_path: Path) -> None:
    from hanlin.desktop.main_window import MainWindow
    from hanlin.desktop.tasks import TaskRunner
    from hanlin.engine.chat.history import History
    from hanlin.engine.models.catalog import load_catalog

    short_answers()
    store = install_smollm2(smollm2_path)
    port = _free_port()
    update_settings(server=lambda s: replace(s, port=port, autostart=True))
    history = History()
    win = MainWindow(history, TaskRunner(), store, load_catalog())
    qtbot.addWidget(win)
    win.show()
    assert win.findChild(type(win.server_action), "apiServer") is win.server_action
    qtbot.waitUntil(
        lambda: win.server_panel is not None and win.server_panel.server.state == "running",
        timeout=90_000,
    )
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    assert win.show_server_panel() is win.server_panel and win.server_panel.isVisible()
    proc = win.server_panel.server._proc
    win.shutdown(30_000)  # closing the window stops the server
    assert proc.state() == proc.ProcessState.NotRunning
    history.close()
