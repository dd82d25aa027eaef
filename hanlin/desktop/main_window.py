"""The main window: conversations on the left, Chat or Models on the right, a status line.

Why it is thin: the window only arranges things and wires shortcuts. The chat's
state and actions live in `hanlin.desktop.chat.controller.ChatController`, the messages
in `hanlin.desktop.chat.view.ChatView`, the catalog in `hanlin.desktop.models_page.page.ModelsPage`
(created the first time it is shown, so start-up stays light), and all engine
work runs on the shared `TaskRunner`.

Status line: the model, the backend it runs on (CPU / Metal / CUDA, in a
warning colour when a GPU load fell back to the CPU), time to first token and
tokens per second of the last answer.

Keyboard: Ctrl/Cmd+N new chat, Ctrl/Cmd+K model picker, Esc stops, Ctrl/Cmd+1 /
Ctrl/Cmd+2 switch Chat / Models, F2 renames and Delete deletes the selected
conversation, Ctrl/Cmd+F searches conversations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.chat import markdown
from hanlin.desktop.chat.controller import ChatController, ChatStatus
from hanlin.desktop.chat.item_models import IdRole
from hanlin.desktop.chat.view import ChatView
from hanlin.desktop.errors import show_error_dialog
from hanlin.desktop.tasks import TaskRunner
from hanlin.desktop.theme import apply_theme
from hanlin.engine.chat.history import History
from hanlin.engine.core.errors import HanlinError

_BACKENDS = {"cpu": "CPU", "metal": "Metal", "cuda": "CUDA", "vulkan": "Vulkan"}
_PHASES = {
    "loading": "Loading model…",
    "connecting": "Waiting for the server…",
    "thinking": "Thinking…",
    "answering": "Answering…",
    "stopped": "Stopped",
    "idle": "",
}


class MainWindow(QMainWindow):
    def __init__(
        self,
        history: History,
        runner: TaskRunner,
        store: Any,
        catalog: Any = None,
        *,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("Hanlin")
        self.resize(1180, 780)
        self.history = history
        self.runner = runner
        self.store = store
        self.catalog = catalog
        # the store is read and the Markdown renderer warmed up once the window is on
        # screen (showEvent), on the runner: start-up only builds widgets
        self.controller = ChatController(history, runner, store, scan_on_demand=False, parent=self)
        self._background_started = False
        self.chat_view = ChatView(self.controller, self)
        self.models_page: QWidget | None = None
        self.server_panel: Any = None
        self._closed = False

        self._build_sidebar()
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.chat_view)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.sidebar)
        splitter.addWidget(self.stack)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 920])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)
        self._build_status_bar()
        self._build_actions()

        c = self.controller
        c.statusChanged.connect(self._show_status)
        c.conversationOpened.connect(self._select_conversation)
        c.conversations.modelReset.connect(lambda: self._select_conversation(c.current_id or -1))
        c.generatingChanged.connect(self.stop_action.setEnabled)
        c.conversationSettingsChanged.connect(lambda: self._show_status(c.status))
        # A hand-broken settings.toml or history database, or a settings key this version
        # does not know: say so, keep working (on defaults where the file cannot be read).
        from hanlin.engine.core.settings import load_settings

        settings = load_settings()
        problems = [p for p in (history.problem, settings.problem, *settings.warnings) if p]
        if problems:
            self.chat_view.banner.show_warning("\n".join(problems))
        latest = history.list()
        c.open_conversation(latest[0].id if latest else None)
        self._show_status(c.status)

    # -- layout ----------------------------------------------------------------------

    def _build_sidebar(self) -> None:
        self.sidebar = QWidget(self)
        self.sidebar.setObjectName("sidebar")
        self.chat_nav = QToolButton(self.sidebar)
        self.chat_nav.setObjectName("chatNav")
        self.chat_nav.setText("Chat")
        self.models_nav = QToolButton(self.sidebar)
        self.models_nav.setObjectName("modelsNav")
        self.models_nav.setText("Models")
        group = QButtonGroup(self)
        for i, b in enumerate((self.chat_nav, self.models_nav)):
            b.setCheckable(True)
            b.setAutoRaise(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            group.addButton(b, i)
        self.chat_nav.setChecked(True)
        group.idClicked.connect(lambda i: self.show_models() if i == 1 else self.show_chat())
        nav = QHBoxLayout()
        nav.addWidget(self.chat_nav)
        nav.addWidget(self.models_nav)
        nav.addStretch(1)

        self.new_button = QToolButton(self.sidebar)
        self.new_button.setObjectName("newChatButton")
        self.new_button.setText("＋ New chat")
        self.new_button.setToolTip("New chat (Ctrl+N)")
        self.new_button.clicked.connect(self.new_chat)
        self.search_box = QLineEdit(self.sidebar)
        self.search_box.setObjectName("conversationSearch")
        self.search_box.setPlaceholderText("Search conversations")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.textChanged.connect(self.controller.search)

        self.conversation_list = QListView(self.sidebar)
        self.conversation_list.setObjectName("conversationList")
        self.conversation_list.setModel(self.controller.conversations)
        self.conversation_list.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        self.conversation_list.setUniformItemSizes(True)
        self.conversation_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.conversation_list.customContextMenuRequested.connect(self._conversation_menu)
        self.conversation_list.clicked.connect(self._on_conversation_clicked)
        self.conversation_list.activated.connect(self._on_conversation_clicked)

        layout = QVBoxLayout(self.sidebar)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addLayout(nav)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search_box)
        layout.addWidget(self.conversation_list, 1)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = QLabel(self)
        self.model_label.setObjectName("statusModel")
        self.backend_label = QLabel(self)
        self.backend_label.setObjectName("statusBackend")
        self.ttft_label = QLabel(self)
        self.ttft_label.setObjectName("statusTtft")
        self.speed_label = QLabel(self)
        self.speed_label.setObjectName("statusSpeed")
        self.phase_label = QLabel(self)
        self.phase_label.setObjectName("statusPhase")
        bar.addWidget(self.phase_label, 1)
        for w in (self.model_label, self.backend_label, self.ttft_label, self.speed_label):
            bar.addPermanentWidget(w)
        # "N / M tokens": how full the model's context is (shown once an answer said so)
        bar.addPermanentWidget(self.chat_view.context_meter)

    def _build_actions(self) -> None:
        def action(text: str, slot: Any, shortcut: Any = None, name: str = "") -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
                a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(slot)
            a.setObjectName(name)
            self.addAction(a)
            return a

        self.new_action = action("&New chat", self.new_chat, QKeySequence.StandardKey.New, "new")
        self.export_md_action = action(
            "Export as &Markdown…", lambda: self.export_dialog("markdown"), None, "exportMd"
        )
        self.export_json_action = action(
            "Export as &JSON…", lambda: self.export_dialog("json"), None, "exportJson"
        )
        quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit, "quit")
        self.stop_action = action("&Stop", self.controller.stop, Qt.Key.Key_Escape, "stop")
        self.stop_action.setEnabled(False)
        regen = action("&Regenerate answer", self.controller.regenerate, "Ctrl+R", "regenerate")
        self.picker_action = action(
            "Choose &model…", self.chat_view.focus_model_picker, "Ctrl+K", "modelPicker"
        )
        system = action("S&ystem prompt…", self.chat_view.edit_system_prompt, None, "system")
        msettings = action(
            "Model &settings…", self.chat_view.edit_model_settings, None, "modelSettings"
        )
        chat_page = action("&Chat", self.show_chat, "Ctrl+1", "showChat")
        models_page = action("&Models", self.show_models, "Ctrl+2", "showModels")
        find = action("&Search conversations", self._focus_search, QKeySequence.StandardKey.Find)
        rename = action("Re&name conversation…", self.rename_selected, "F2", "rename")
        delete = action("&Delete conversation", self.delete_selected, None, "delete")
        self.conversation_list.addAction(delete)
        delete_key = QAction(self.conversation_list)
        delete_key.setShortcut(QKeySequence.StandardKey.Delete)
        delete_key.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete_key.triggered.connect(self.delete_selected)
        self.conversation_list.addAction(delete_key)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for a in (self.new_action, self.export_md_action, self.export_json_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        chat_menu = menu.addMenu("&Chat")
        for a in (self.stop_action, regen, self.picker_action, system, msettings):
            chat_menu.addAction(a)
        self.remotes_action = action("&Remote servers…", self.edit_remotes, None, "remotes")
        chat_menu.addAction(self.remotes_action)
        self.server_action = action("API &server…", self.show_server_panel, None, "apiServer")
        chat_menu.addAction(self.server_action)
        chat_menu.addSeparator()
        for a in (find, rename, delete):
            chat_menu.addAction(a)
        view_menu = menu.addMenu("&View")
        view_menu.addAction(chat_page)
        view_menu.addAction(models_page)
        theme_menu = view_menu.addMenu("&Theme")
        self.theme_group = QActionGroup(self)
        for mode in ("system", "light", "dark"):
            a = QAction(mode.capitalize(), self, checkable=True)
            a.setData(mode)
            self.theme_group.addAction(a)
            theme_menu.addAction(a)
        self.theme_group.triggered.connect(lambda a: self.set_theme(a.data()))

    def edit_remotes(self) -> Any:
        """The Remote servers dialog ([[remote]] in settings.toml); the picker follows."""
        from hanlin.desktop.remotes_dialog import RemotesDialog

        dialog = RemotesDialog(self.runner, self)
        dialog.remotesChanged.connect(self.controller.scan_remotes_async)
        dialog.open()
        return dialog

    def _ensure_server_panel(self) -> Any:
        if self.server_panel is None:
            from hanlin.desktop.server_panel import ServerPanel

            self.server_panel = ServerPanel(parent=self)
        return self.server_panel

    def show_server_panel(self) -> Any:
        """The API server panel (`hanlin serve` started and stopped from the window)."""
        panel = self._ensure_server_panel()
        panel.show()
        panel.raise_()
        return panel

    # -- pages -----------------------------------------------------------------------

    def show_chat(self) -> None:
        self.stack.setCurrentWidget(self.chat_view)
        self.chat_nav.setChecked(True)
        self.chat_view.composer.setFocus()

    def show_models(self) -> None:
        page = self._ensure_models_page()
        self.stack.setCurrentWidget(page)
        self.models_nav.setChecked(True)

    def _ensure_models_page(self) -> QWidget:
        if self.models_page is None:
            from hanlin.desktop.models_page.page import ModelsPage

            page = ModelsPage(self.runner, self.store, self.catalog, self)
            page.modelsChanged.connect(self.controller.reload_models)
            self.models_page = page
            self.stack.addWidget(page)
        return self.models_page

    # -- conversations ---------------------------------------------------------------

    def new_chat(self) -> None:
        self.search_box.clear()
        self.controller.new_conversation()
        self.show_chat()

    def _on_conversation_clicked(self, index: QModelIndex) -> None:
        cid = index.data(IdRole)
        if cid is not None and cid != self.controller.current_id:
            self.controller.open_conversation(int(cid))
        self.show_chat()

    def _select_conversation(self, conversation_id: int) -> None:
        model = self.controller.conversations
        row = model.row_of(conversation_id) if conversation_id >= 0 else -1
        sel = self.conversation_list.selectionModel()
        if row < 0:
            sel.clearSelection()
            return
        sel.setCurrentIndex(model.index(row, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _selected_id(self) -> int | None:
        index = self.conversation_list.currentIndex()
        if index.isValid():
            return int(index.data(IdRole))
        return self.controller.current_id

    def _focus_search(self) -> None:
        self.search_box.setFocus()
        self.search_box.selectAll()

    def _conversation_menu(self, pos: QPoint) -> None:
        index = self.conversation_list.indexAt(pos)
        if not index.isValid():
            return
        self.conversation_list.setCurrentIndex(index)
        menu = QMenu(self)
        menu.addAction("Rename…", self.rename_selected)
        menu.addAction("Export as Markdown…", lambda: self.export_dialog("markdown"))
        menu.addAction("Export as JSON…", lambda: self.export_dialog("json"))
        menu.addSeparator()
        menu.addAction("Delete", self.delete_selected)
        menu.popup(self.conversation_list.viewport().mapToGlobal(pos))

    def rename_selected(self) -> None:
        cid = self._selected_id()
        if cid is None:
            return
        title, ok = QInputDialog.getText(
            self, "Rename conversation", "Title:", text=self.history.get(cid).title
        )
        if ok:
            self.controller.rename_conversation(cid, title)

    def delete_selected(self, *, confirm: bool = True) -> None:
        cid = self._selected_id()
        if cid is None:
            return
        if confirm:
            title = self.history.get(cid).title
            answer = QMessageBox.question(
                self, "Delete conversation", f"Delete “{title}”? This cannot be undone."
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.controller.delete_conversation(cid)

    def export_dialog(self, fmt: str) -> None:
        conv = self.controller.current_conversation()
        if conv is None:
            return
        suffix = ".json" if fmt == "json" else ".md"
        safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in conv.title).strip()
        start = str(Path.home() / f"{safe or 'conversation'}{suffix}")
        filters = "JSON (*.json)" if fmt == "json" else "Markdown (*.md)"
        path, _ = QFileDialog.getSaveFileName(self, "Export conversation", start, filters)
        if not path:
            return
        try:
            self.controller.export(Path(path), fmt)
        except HanlinError as exc:
            show_error_dialog(self, exc)
            return
        self.statusBar().showMessage(f"Exported to {path}", 5000)

    # -- status ----------------------------------------------------------------------

    def _show_status(self, status: ChatStatus) -> None:
        # the open conversation's model (the loaded one only differs until the next answer)
        model = self.controller.current_model()
        model_id = model.id if model else status.model_id
        self.model_label.setText(model_id or "No model")
        if status.backend:
            name = _BACKENDS.get(status.backend.lower(), status.backend)
            if status.gpu_fallback:
                self.backend_label.setText(f"⚠ {name} (GPU load failed)")
                self.backend_label.setToolTip(status.gpu_fallback)
                self.backend_label.setProperty("warning", True)
            else:
                self.backend_label.setText(name)
                self.backend_label.setToolTip("")
                self.backend_label.setProperty("warning", False)
            self.backend_label.style().unpolish(self.backend_label)
            self.backend_label.style().polish(self.backend_label)
        else:
            self.backend_label.setText("")
        self.ttft_label.setText(f"TTFT {status.ttft_s * 1000:.0f} ms" if status.ttft_s else "")
        speed = f"{status.tokens_per_s:.1f} tok/s" if status.tokens_per_s else ""
        if speed and status.acceptance_rate is not None:  # speculative decoding drafted
            speed = f"drafts {status.acceptance_rate:.0%} accepted · {speed}"
        self.speed_label.setText(speed)
        self.speed_label.setToolTip(
            "Speculative decoding: the share of drafted tokens the model accepted "
            "(the answer is the same as without drafts, only faster)"
            if status.acceptance_rate is not None
            else ""
        )
        phase = _PHASES.get(status.phase, status.phase)
        if status.phase == "loading" and status.load_fraction is not None:
            phase = f"Loading model… {status.load_fraction:.0%}"
        self.phase_label.setText(phase)

    # -- theme and quit --------------------------------------------------------------

    def set_theme(self, mode: str) -> None:
        try:
            from hanlin.engine.core.settings import update_settings

            update_settings(theme=mode)
        except HanlinError as exc:
            self.chat_view.banner.show_error(exc)
        self.sync_theme(apply_theme(mode), mode)

    def sync_theme(self, dark: bool, mode: str) -> None:
        """Tell the widgets which theme is on (code-block colours, the menu's check)."""
        self.chat_view.set_dark(dark)
        for a in self.theme_group.actions():
            a.setChecked(a.data() == mode)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel running work and wait for it (the window is closing)."""
        if self._closed:
            return True
        self._closed = True
        if self.server_panel is not None:
            self.server_panel.server.stop_and_wait()
        self.controller.shutdown()
        finished = self.runner.shutdown(timeout_ms)
        self.controller.host.close()
        return finished

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._background_started:
            self._background_started = True
            QTimer.singleShot(0, self.start_background_work)

    def start_background_work(self) -> None:
        """After the first show: list the installed models, warm the Markdown renderer."""
        if self._closed:
            return
        self.controller.scan_models_async()
        from hanlin.engine.core.settings import load_settings

        if load_settings().settings.server.autostart:  # [server] autostart = true
            self._ensure_server_panel().server.start()
        if not markdown.is_warm():
            self.runner.submit(
                lambda _cancel, _progress: markdown.warm_up(),
                on_done=lambda _: self.chat_view.rerender(),
                key="warm-markdown",
            )

    @property
    def ready(self) -> bool:
        """The model list is read and answers render as Markdown (tests, the probe)."""
        return self.controller.models_ready and markdown.is_warm()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.hide()  # gone at once: the answer stops and the KV cache is saved behind it
        self.shutdown()
        super().closeEvent(event)
