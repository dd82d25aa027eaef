"""The window's API server panel: start and stop `hanlin serve`, show its address, copy snippets.

The server runs as its own process (`hanlin serve`, with `[server]` from settings.toml
and the chosen chat model), driven by a `QProcess`: the window never blocks on it, a
crash of one never takes the other down, and what the panel starts is exactly what the
command line runs. The panel waits for the server's ready line
(`hanlin serve: listening on URL`), shows the address, and copies ready-made snippets
for the OpenAI SDK, Continue and Claude Code (`ANTHROPIC_BASE_URL`). Stopping sends
SIGTERM (open streams end cleanly); the window stops the server when it closes.
With `autostart = true` in `[server]`, the window starts it on launch.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import replace

from PySide6.QtCore import QObject, QProcess, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.settings import load_settings, update_settings
from hanlin.server.config import DEFAULT_KEY_ENV, READY_PREFIX, resolve_api_key
from hanlin.server.snippets import SNIPPET_TITLES, snippets

__all__ = ["ServerPanel", "ServerProcess", "serve_command"]

#: how long a stopping server may take before it is killed
STOP_TIMEOUT_MS = 12_000


def serve_command() -> tuple[str, list[str]]:
    """The program and arguments that run `hanlin serve` from this installation."""
    if getattr(sys, "frozen", False):  # the bundled app's executable is the `hanlin` command
        return sys.executable, ["serve"]
    return sys.executable, ["-m", "hanlin.desktop.cli.main", "serve"]


class ServerProcess(QObject):
    """`hanlin serve` as a child process: start, stop, state, address, its messages."""

    #: "stopped" | "starting" | "running" | "stopping" | "failed"
    stateChanged = Signal(str)
    logAdded = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = "stopped"
        self.url: str | None = None
        self.error: str | None = None
        self.log: deque[str] = deque(maxlen=200)
        self._proc: QProcess | None = None
        self._out = ""
        self._err = ""
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

    @property
    def running(self) -> bool:
        return self.state in ("starting", "running", "stopping")

    def _set(self, state: str) -> None:
        self.state = state
        self.stateChanged.emit(state)

    def start(self, extra_args: list[str] | None = None) -> None:
        if self.running:
            return
        program, args = serve_command()
        proc = QProcess(self)
        proc.setProgram(program)
        proc.setArguments([*args, *(extra_args or [])])
        proc.readyReadStandardOutput.connect(self._read_out)
        proc.readyReadStandardError.connect(self._read_err)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._failed_to_start)
        self._proc = proc
        self.url = None
        self.error = None
        self._out = self._err = ""
        self._set("starting")
        proc.start()

    def stop(self) -> None:
        if self._proc is None or not self.running:
            return
        self._set("stopping")
        self._proc.terminate()  # SIGTERM: the server ends open streams and exits 0
        self._kill_timer.start(STOP_TIMEOUT_MS)

    def stop_and_wait(self, timeout_ms: int = STOP_TIMEOUT_MS) -> bool:
        """Stop and block until the process is gone (the window is closing)."""
        proc = self._proc
        if proc is None or proc.state() == QProcess.ProcessState.NotRunning:
            return True
        self.stop()
        if not proc.waitForFinished(timeout_ms):
            proc.kill()
            return proc.waitForFinished(3000)
        return True

    def _kill(self) -> None:
        if self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning:
            self._proc.kill()

    def _lines(self, buffer: str, data: bytes) -> tuple[list[str], str]:
        buffer += bytes(data).decode("utf-8", errors="replace")
        *lines, rest = buffer.split("\n")
        return lines, rest

    def _read_out(self) -> None:
        assert self._proc is not None
        lines, self._out = self._lines(self._out, self._proc.readAllStandardOutput().data())
        for line in lines:
            if line.startswith(READY_PREFIX) and self.state == "starting":
                self.url = line[len(READY_PREFIX) :].strip()
                self._set("running")
            self._add_log(line)

    def _read_err(self) -> None:
        assert self._proc is not None
        lines, self._err = self._lines(self._err, self._proc.readAllStandardError().data())
        for line in lines:
            if line.startswith("hanlin: error: "):
                self.error = line[len("hanlin: error: ") :]
            if line.strip():
                self._add_log(line)

    def _add_log(self, line: str) -> None:
        self.log.append(line)
        self.logAdded.emit(line)

    def _finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        if self.state == "stopping" or (code == 0 and self.error is None):
            self.url = None
            self._set("stopped")
            return
        if self.error is None:
            tail = [line for line in self.log if line.strip()][-1:] or [f"exit status {code}"]
            self.error = f"The server stopped unexpectedly ({tail[0]})"
        self.url = None
        self._set("failed")

    def _failed_to_start(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            reason = self._proc.errorString() if self._proc else str(error)
            self.error = f"Could not run `hanlin serve`: {reason}"
            self._set("failed")


_STATE_TEXT = {
    "stopped": "Stopped",
    "starting": "Starting… (loading the model)",
    "running": "Running",
    "stopping": "Stopping…",
    "failed": "Failed",
}


class ServerPanel(QDialog):
    """Start/stop toggle, the address, snippets to copy, and the autostart switch."""

    def __init__(self, server: ServerProcess | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("serverPanel")
        self.setWindowTitle("API server")
        self.setModal(False)
        self.resize(620, 440)
        self.server = server or ServerProcess(self)
        settings = load_settings().settings
        self._model = settings.chat_model
        srv = settings.server
        # snippets name the key's environment variable, never the key itself
        self._key_env = srv.api_key_env or DEFAULT_KEY_ENV
        self._key_required = resolve_api_key(None, srv) is not None

        self.status = QLabel(self)
        self.status.setObjectName("serverStatus")
        self.toggle = QPushButton(self)
        self.toggle.setObjectName("serverToggle")
        self.toggle.clicked.connect(self._toggle)
        self.address = QLineEdit(self)
        self.address.setObjectName("serverAddress")
        self.address.setReadOnly(True)
        self.copy_address = QPushButton("Copy", self)
        self.copy_address.clicked.connect(lambda: self._copy(self.address.text(), "address"))
        self.detail = QLabel(self)
        self.detail.setWordWrap(True)
        self.copy_buttons: dict[str, QPushButton] = {}
        self.copied = QLabel(self)
        self.copied.setObjectName("serverCopied")
        self.autostart = QCheckBox("Start the server when Hanlin starts", self)
        self.autostart.setObjectName("serverAutostart")
        self.autostart.setChecked(srv.autostart)
        self.autostart.toggled.connect(self._set_autostart)
        self.log_view = QPlainTextEdit(self)
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(200)
        self.log_view.setPlaceholderText("The server's messages appear here.")

        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.toggle)
        addr = QHBoxLayout()
        addr.addWidget(QLabel("Address:", self))
        addr.addWidget(self.address, 1)
        addr.addWidget(self.copy_address)
        grid = QGridLayout()
        for i, (key, title) in enumerate(SNIPPET_TITLES.items()):
            button = QPushButton(f"Copy {title} snippet", self)
            button.setObjectName(f"copy_{key}")
            button.clicked.connect(lambda _=False, k=key: self.copy_snippet(k))
            self.copy_buttons[key] = button
            grid.addWidget(button, 0, i)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(addr)
        layout.addWidget(self.detail)
        layout.addLayout(grid)
        layout.addWidget(self.copied)
        layout.addWidget(self.autostart)
        layout.addWidget(self.log_view, 1)

        self.server.stateChanged.connect(self._show)
        self.server.logAdded.connect(self.log_view.appendPlainText)
        for line in self.server.log:
            self.log_view.appendPlainText(line)
        self._show(self.server.state)

    # ------------------------------------------------------------ actions

    def _toggle(self) -> None:
        if self.server.running:
            self.server.stop()
        else:
            self.server.start()

    def snippet(self, key: str) -> str:
        base = self.server.url or self._configured_url()
        return snippets(base, self._model, key_env=self._key_env if self._key_required else None)[
            key
        ]

    def copy_snippet(self, key: str) -> None:
        self._copy(self.snippet(key), SNIPPET_TITLES[key])

    def _copy(self, text: str, what: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.copied.setText(f"Copied the {what} to the clipboard.")

    def _set_autostart(self, on: bool) -> None:
        try:
            update_settings(server=lambda current: replace(current, autostart=on))
        except HanlinError as exc:
            self.copied.setText(str(exc))

    # ------------------------------------------------------------ display

    def _configured_url(self) -> str:
        srv = load_settings().settings.server
        host = "127.0.0.1" if srv.host in ("0.0.0.0", "::", "") else srv.host
        return f"http://{host}:{srv.port}"

    def _show(self, state: str) -> None:
        text = _STATE_TEXT.get(state, state)
        if state == "failed" and self.server.error:
            text = f"Failed: {self.server.error}"
        self.status.setText(text)
        self.toggle.setText("Stop server" if self.server.running else "Start server")
        self.toggle.setEnabled(state != "stopping")
        running = state == "running"
        self.address.setText(f"{self.server.url}/v1" if running and self.server.url else "")
        self.copy_address.setEnabled(running)
        model = self._model or "the model each request names"
        key = "an API key is required" if self._key_required else "no API key (this machine only)"
        self.detail.setText(
            f"Serves {model} with the OpenAI API (/v1) and the Anthropic API (Claude Code: "
            f"ANTHROPIC_BASE_URL = the address without /v1); {key}. "
            "Host, port, key and limits: [server] in settings.toml."
        )
