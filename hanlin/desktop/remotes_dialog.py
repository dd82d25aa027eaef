"""The Remote servers dialog: add, edit, remove and test `[[remote]]` endpoints.

Why a dialog of its own: the window's counterpart of `hanlin remote add|list|rm`. A
server is a name, a base URL and where its API key lives — nowhere, an environment
variable (preferred: nothing secret on disk), or settings.toml itself, in plain text,
which the user must choose explicitly (a separate option with a warning beside it).
"Test connection" asks the server for its models on the runner, so a dead address
never freezes the window, and says what it found or what is wrong.

Every change is written with `update_settings(remote=…)` under the settings lock (the
CLI may change the list at the same time) and announced with `remotesChanged`; the
window then lists the servers' models again for the picker.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.errors import describe
from hanlin.desktop.tasks import TaskRunner
from hanlin.engine.core.errors import HanlinError, SettingsError
from hanlin.engine.core.settings import RemoteEndpoint, load_settings, update_settings
from hanlin.engine.remote.endpoint import (
    Endpoint,
    check_env_name,
    check_name,
    endpoint_from_settings,
    normalize_url,
)

__all__ = ["RemotesDialog"]

_KEY_NONE, _KEY_ENV, _KEY_STORED = 0, 1, 2


class RemotesDialog(QDialog):
    """Edit the list of remote servers; `remotesChanged` after every saved change."""

    remotesChanged = Signal()

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Remote servers")
        self.setObjectName("remotesDialog")
        self.resize(640, 460)
        self.runner = runner
        self._editing: str | None = None  # the name of the entry in the form, None = new

        intro = QLabel(
            "OpenAI-compatible servers — vLLM, llama.cpp's llama-server, Ollama, another "
            "Hanlin — whose models you can pick for chat as <i>name/model</i>.",
            self,
        )
        intro.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setObjectName("remoteList")
        self.list.currentItemChanged.connect(self._on_selected)

        self.name = QLineEdit(self)
        self.name.setObjectName("remoteName")
        self.name.setPlaceholderText("team-gpu")
        self.url = QLineEdit(self)
        self.url.setObjectName("remoteUrl")
        self.url.setPlaceholderText("http://gpu.lan:8000/v1")
        self.key_none = QRadioButton("No key", self)
        self.key_none.setObjectName("keyNone")
        self.key_env_choice = QRadioButton("From the environment variable", self)
        self.key_env_choice.setObjectName("keyEnvChoice")
        self.key_env = QLineEdit(self)
        self.key_env.setObjectName("keyEnv")
        self.key_env.setPlaceholderText("TEAM_GPU_KEY")
        self.key_stored_choice = QRadioButton("Stored in settings.toml (plain text)", self)
        self.key_stored_choice.setObjectName("keyStoredChoice")
        self.key_value = QLineEdit(self)
        self.key_value.setObjectName("keyValue")
        self.key_value.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_value.setPlaceholderText("the API key")
        self.key_group = QButtonGroup(self)
        for i, b in enumerate((self.key_none, self.key_env_choice, self.key_stored_choice)):
            self.key_group.addButton(b, i)
        self.key_group.idToggled.connect(lambda _i, _on: self._sync_key_fields())
        self.key_warning = QLabel(
            "Anyone who can read your settings file can read this key. An environment "
            "variable keeps it off the disk.",
            self,
        )
        self.key_warning.setObjectName("keyWarning")
        self.key_warning.setWordWrap(True)

        env_row = QHBoxLayout()
        env_row.addWidget(self.key_env_choice)
        env_row.addWidget(self.key_env, 1)
        stored_row = QHBoxLayout()
        stored_row.addWidget(self.key_stored_choice)
        stored_row.addWidget(self.key_value, 1)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Base URL", self.url)
        key_box = QVBoxLayout()
        key_box.addWidget(self.key_none)
        key_box.addLayout(env_row)
        key_box.addLayout(stored_row)
        key_box.addWidget(self.key_warning)
        form.addRow("API key", key_box)

        self.status = QLabel(self)
        self.status.setObjectName("remoteStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.new_button = QPushButton("New", self)
        self.new_button.setObjectName("newRemote")
        self.save_button = QPushButton("Save", self)
        self.save_button.setObjectName("saveRemote")
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setObjectName("removeRemote")
        self.test_button = QPushButton("Test connection", self)
        self.test_button.setObjectName("testRemote")
        self.new_button.clicked.connect(self.start_new)
        self.save_button.clicked.connect(self.save)
        self.remove_button.clicked.connect(self.remove_current)
        self.test_button.clicked.connect(self.test_connection)
        actions = QHBoxLayout()
        for b in (self.new_button, self.save_button, self.remove_button):
            actions.addWidget(b)
        actions.addStretch(1)
        actions.addWidget(self.test_button)

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.list, 1)
        layout.addLayout(form)
        layout.addLayout(actions)
        layout.addWidget(self.status)
        layout.addWidget(close)

        self.key_none.setChecked(True)
        self._sync_key_fields()
        self.reload()
        if self.list.count():
            self.list.setCurrentRow(0)
        else:
            self.start_new()

    # -- the list ------------------------------------------------------------------------

    def remotes(self) -> list[RemoteEndpoint]:
        return list(load_settings().settings.remote)

    def reload(self, select: str | None = None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for r in self.remotes():
            item = QListWidgetItem(f"{r.name} — {r.url}")
            item.setData(Qt.ItemDataRole.UserRole, r.name)
            self.list.addItem(item)
            if r.name == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)

    def _on_selected(self, item: QListWidgetItem | None, _previous: Any = None) -> None:
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        remote = load_settings().settings.remote_named(name)
        if remote is None:
            return
        self._editing = remote.name
        self.name.setText(remote.name)
        self.url.setText(remote.url)
        self.key_env.setText(remote.key_env or "")
        self.key_value.setText(remote.api_key or "")
        button = (
            self.key_env_choice
            if remote.key_env
            else self.key_stored_choice
            if remote.api_key
            else self.key_none
        )
        button.setChecked(True)
        self._sync_key_fields()
        self.status.setText("")

    def start_new(self) -> None:
        self._editing = None
        self.list.clearSelection()
        self.list.setCurrentItem(None)
        for field in (self.name, self.url, self.key_env, self.key_value):
            field.clear()
        self.key_none.setChecked(True)
        self._sync_key_fields()
        self.status.setText("")
        self.name.setFocus()

    def _sync_key_fields(self) -> None:
        choice = self.key_group.checkedId()
        self.key_env.setEnabled(choice == _KEY_ENV)
        self.key_value.setEnabled(choice == _KEY_STORED)
        self.key_warning.setVisible(choice == _KEY_STORED)

    # -- the form ------------------------------------------------------------------------

    def form_entry(self) -> RemoteEndpoint:
        """The form as a `[[remote]]` entry, checked (HanlinError says what is wrong)."""
        name = check_name(self.name.text().strip())
        url = normalize_url(self.url.text())
        choice = self.key_group.checkedId()
        key_env = api_key = None
        if choice == _KEY_ENV:
            key_env = check_env_name(self.key_env.text().strip())
        elif choice == _KEY_STORED:
            api_key = self.key_value.text().strip()
            if not api_key:
                raise HanlinError("Type the API key to store", "or choose another key option")
        return RemoteEndpoint(name=name, url=url, key_env=key_env, api_key=api_key)

    def save(self) -> bool:
        """Add the form as a new server, or replace the one being edited."""
        try:
            entry = self.form_entry()
            editing = self._editing

            def change(current: list[RemoteEndpoint]) -> list[RemoteEndpoint]:
                if any(r.name == entry.name and r.name != editing for r in current):
                    raise SettingsError(
                        f"A remote server is already named {entry.name!r}",
                        "choose another name",
                    )
                if editing is None:
                    return [*current, entry]
                kept = next((r for r in current if r.name == editing), None)
                if kept is not None:
                    entry.extra = dict(kept.extra)  # keys a newer Hanlin wrote survive
                return [entry if r.name == editing else r for r in current]

            update_settings(remote=change)
        except HanlinError as exc:
            self._show_error(exc)
            return False
        self._editing = entry.name
        self.reload(select=entry.name)
        self.status.setText(f"Saved {entry.name}.")
        self.remotesChanged.emit()
        return True

    def remove_current(self) -> bool:
        name = self._editing
        if name is None:
            return False
        try:
            update_settings(remote=lambda current: [r for r in current if r.name != name])
        except HanlinError as exc:
            self._show_error(exc)
            return False
        self.reload()
        self.start_new()
        self.status.setText(f"Removed {name}.")
        self.remotesChanged.emit()
        return True

    # -- testing -------------------------------------------------------------------------

    def _form_endpoint(self) -> Endpoint:
        entry = self.form_entry()
        return endpoint_from_settings(entry)

    def test_connection(self) -> None:
        """Ask the server in the form for its models (on the runner) and show the answer."""
        try:
            endpoint = self._form_endpoint()
        except HanlinError as exc:
            self._show_error(exc)
            return
        from hanlin.engine.remote.client import RemoteClient
        from hanlin.engine.remote.listing import LISTING_TIMEOUTS

        self.test_button.setEnabled(False)
        self.status.setText(f"Connecting to {endpoint.url} …")

        def work(cancel: Any, _progress: Any) -> tuple[list[Any], float]:
            return RemoteClient(endpoint, LISTING_TIMEOUTS).check(cancel)

        def done(result: tuple[list[Any], float]) -> None:
            self.test_button.setEnabled(True)
            models, seconds = result
            names = ", ".join(m.id for m in models[:6]) + ("…" if len(models) > 6 else "")
            self.status.setText(
                f"✓ Connected in {seconds * 1000:.0f} ms: {len(models)} "
                f"model{'s' if len(models) != 1 else ''}{': ' + names if names else ''}"
            )
            self.status.setProperty("ok", True)

        def failed(exc: BaseException) -> None:
            self.test_button.setEnabled(True)
            self._show_error(exc)

        self.runner.submit(
            work,
            on_done=done,
            on_error=failed,
            on_cancelled=lambda: self.test_button.setEnabled(True),
            key="test-remote",
        )

    def _show_error(self, exc: BaseException) -> None:
        text = describe(exc)
        self.status.setText("✗ " + text.one_line())
        self.status.setProperty("ok", False)
