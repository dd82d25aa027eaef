"""The chat view: the messages of the open conversation, and the composer below them.

Why this shape: each message is a small widget (`MessageWidget`) bound to one row
of `MessageListModel`; the view adds, removes and refreshes them from the model's
signals, so it never holds state the model does not. Only the answer being
streamed is re-rendered while it grows (the controller pushes it into the model
on a timer), so a long conversation does not get slower to stream.

What the user gets: Markdown answers with highlighted code blocks and a Copy
link per block; a collapsed "Thought for N s" block for reasoning; Edit on user
messages (continue from there), Regenerate on the last answer, Copy per message;
a model picker (Ctrl/Cmd+K), a thinking switch for models that have one, the
system prompt and per-model settings; Enter sends, Shift+Enter is a newline,
Esc or the Stop button stops at once.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QDesktopServices,
    QGuiApplication,
    QKeyEvent,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.chat.controller import ChatController, ChatStatus
from hanlin.desktop.chat.item_models import ChatRow
from hanlin.desktop.chat.markdown import (
    COPY_SCHEME,
    MarkdownRenderer,
    is_safe_link,
    is_warm,
    plain_to_html,
)
from hanlin.desktop.errors import ErrorBanner
from hanlin.engine.core.errors import HanlinError


class Composer(QPlainTextEdit):
    """The message box: Enter sends, Shift+Enter inserts a newline."""

    submitted = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class RichTextView(QTextBrowser):
    """Read-only rich text that is exactly as tall as its content (no scroll bar of its own).

    Why not a QLabel: Qt re-lays out rich-text labels several times per change; for a
    streamed answer with code blocks that cost 100+ ms per update here, while a text
    document laid out once at the view's width costs ~10 ms. Links (the code blocks'
    Copy) come out as `linkActivated(href)`; the wheel scrolls the conversation.
    """

    linkActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._html = ""
        self.setReadOnly(True)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.document().setDocumentMargin(0)
        self.anchorClicked.connect(lambda url: self.linkActivated.emit(url.toString()))
        self.setFixedHeight(0)

    def set_segments(self, segments: list[str]) -> None:
        self.setText("".join(segments))

    def setText(self, html: str) -> None:
        if html == self._html:
            return
        self._html = html
        self.setHtml(html)
        self._fit()

    def text(self) -> str:
        return self._html

    def _fit(self) -> None:
        doc = self.document()
        doc.setTextWidth(max(50, self.viewport().width()))
        height = int(doc.size().height() + 0.99) if self._html else 0
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        event.ignore()  # let the conversation's scroll area scroll


class MessageWidget(QFrame):
    """One message: header with actions, optional thinking block, rendered content."""

    editRequested = Signal(int, str)  # message id, new text
    regenerateRequested = Signal()

    def __init__(self, row: ChatRow, renderer: MarkdownRenderer, parent: QWidget | None = None):
        super().__init__(parent)
        self.row = row
        self._renderer = renderer
        self.code_blocks: list[str] = []
        self.setObjectName("userMessage" if row.role == "user" else "assistantMessage")
        self.setFrameShape(QFrame.Shape.NoFrame)

        self.header = QLabel(self)
        self.header.setObjectName("messageHeader")
        self.copy_button = self._tool("Copy", "Copy this message as Markdown")
        self.copy_button.clicked.connect(self.copy_message)
        self.edit_button = self._tool("Edit", "Edit this message and continue from here")
        self.edit_button.clicked.connect(self.begin_edit)
        self.regenerate_button = self._tool("Regenerate", "Write this answer again")
        self.regenerate_button.clicked.connect(self.regenerateRequested)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.header)
        head.addStretch(1)
        for b in (self.edit_button, self.regenerate_button, self.copy_button):
            head.addWidget(b)

        self.thinking_toggle = QToolButton(self)
        self.thinking_toggle.setObjectName("thinkingToggle")
        self.thinking_toggle.setCheckable(True)
        self.thinking_toggle.setAutoRaise(True)
        self.thinking_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.thinking_toggle.toggled.connect(self._toggle_thinking)
        # created when first needed: most messages never think and are never edited
        self.thinking_label: RichTextView | None = None
        self.editor: QPlainTextEdit | None = None
        self.save_edit: QPushButton | None = None
        self.cancel_edit: QPushButton | None = None

        self.content = RichTextView(self)
        self.content.setObjectName("messageContent")
        self.content.linkActivated.connect(self._on_link)

        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(12, 8, 12, 8)
        self._layout.setSpacing(4)
        self._layout.addLayout(head)
        self._layout.addWidget(self.thinking_toggle, 0, Qt.AlignmentFlag.AlignLeft)
        self._layout.addWidget(self.content)
        self._rendered_key: tuple[str, bool] | None = None  # (text, shown as plain)
        self.set_row(row, is_last=False)

    def _tool(self, text: str, tip: str) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.setObjectName(text.lower() + "Button")
        return b

    def _thinking_view(self) -> RichTextView:
        if self.thinking_label is None:
            self.thinking_label = RichTextView(self)
            self.thinking_label.setObjectName("thinkingText")
            self.thinking_label.hide()
            self._layout.insertWidget(2, self.thinking_label)
        return self.thinking_label

    def _edit_widgets(self) -> tuple[QPlainTextEdit, QPushButton, QPushButton]:
        if self.editor is None or self.save_edit is None or self.cancel_edit is None:
            self.editor = QPlainTextEdit(self)
            self.editor.setObjectName("editMessage")
            self.save_edit = QPushButton("Save && send", self)
            self.save_edit.setObjectName("saveEdit")
            self.cancel_edit = QPushButton("Cancel", self)
            self.save_edit.clicked.connect(self._commit_edit)
            self.cancel_edit.clicked.connect(self.end_edit)
            row = QHBoxLayout()
            row.addStretch(1)
            row.addWidget(self.cancel_edit)
            row.addWidget(self.save_edit)
            self._layout.addWidget(self.editor)
            self._layout.addLayout(row)
        return self.editor, self.save_edit, self.cancel_edit

    def set_renderer(self, renderer: MarkdownRenderer) -> None:
        self._renderer = renderer
        self._rendered_key = None
        self.set_row(self.row, is_last=self.regenerate_button.isVisible())

    def set_row(self, row: ChatRow, *, is_last: bool) -> None:
        self.row = row
        user = row.role == "user"
        who = "You" if user else (row.model_id or "Assistant")
        state = ""
        if row.streaming and not row.content and not row.thinking:
            state = " · working…"
        elif row.streaming:
            state = " · writing…"
        elif not row.complete:
            state = " · interrupted"
        elif (row.stats or {}).get("stop_reason") == "cancelled":
            state = " · stopped"
        self.header.setText(f"<b>{who}</b>{state}")
        self.edit_button.setVisible(user and not row.streaming)
        self.regenerate_button.setVisible(not user and is_last and not row.streaming)
        self.copy_button.setVisible(not row.streaming)

        if row.thinking:
            secs = row.thinking_s
            if row.streaming and not row.content:
                label = f"Thinking… {secs:.0f} s" if secs is not None else "Thinking…"
            else:
                label = f"Thought for {secs:.0f} s" if secs is not None else "Thought"
            arrow = "▾" if self.thinking_toggle.isChecked() else "▸"
            self.thinking_toggle.setText(f"{arrow} {label}")
            self.thinking_toggle.show()
            view = self._thinking_view()
            if self.thinking_toggle.isChecked():
                view.setText(plain_to_html(row.thinking))
        else:
            self.thinking_toggle.hide()
            if self.thinking_label is not None:
                self.thinking_label.hide()

        # answers show as plain text until the Markdown renderer is warm (start-up)
        plain = user or not is_warm()
        key = (row.content, plain)
        if key != self._rendered_key:
            self._rendered_key = key
            if plain:
                self.code_blocks = []
                self.content.setText(plain_to_html(row.content))
            else:
                rendered = self._renderer.render(row.content)
                self.code_blocks = rendered.code_blocks
                self.content.set_segments(rendered.segments)
        self.content.setVisible(bool(row.content) or not row.thinking)

    def _toggle_thinking(self, on: bool) -> None:
        view = self._thinking_view()
        view.setVisible(on)
        if on and self.row.thinking:
            view.setText(plain_to_html(self.row.thinking))
        self.set_row(self.row, is_last=self.regenerate_button.isVisible())

    def _on_link(self, href: str) -> None:
        """Our copy links copy their block; http(s)/mailto open; anything else is ignored."""
        if href.startswith(COPY_SCHEME):
            number = href[len(COPY_SCHEME) :]
            if number.isdigit() and int(number) < len(self.code_blocks):
                self.copy_code(int(number))
        elif is_safe_link(href):
            QDesktopServices.openUrl(QUrl(href))

    def copy_code(self, n: int) -> str:
        code = self.code_blocks[n]
        QGuiApplication.clipboard().setText(code)
        return code

    def copy_message(self) -> None:
        QGuiApplication.clipboard().setText(self.row.content)

    def begin_edit(self) -> None:
        editor, save, cancel = self._edit_widgets()
        editor.setPlainText(self.row.content)
        self.content.hide()
        for w in (editor, save, cancel):
            w.show()
        editor.setFocus()

    def end_edit(self) -> None:
        for w in (self.editor, self.save_edit, self.cancel_edit):
            if w is not None:
                w.hide()
        self.content.show()

    def _commit_edit(self) -> None:
        text = self.editor.toPlainText().strip() if self.editor is not None else ""
        self.end_edit()
        if text:
            self.editRequested.emit(self.row.id, text)


class ChatView(QWidget):
    """Messages, composer and the chat's tool bar, over a `ChatController`."""

    def __init__(self, controller: ChatController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.controller = controller
        self.renderer = MarkdownRenderer()
        self._widgets: list[MessageWidget] = []
        self._stick_to_bottom = True

        # tool bar
        self.model_picker = QComboBox(self)
        self.model_picker.setObjectName("modelPicker")
        self.model_picker.setToolTip("The model for this conversation (Ctrl+K)")
        self.model_picker.setMinimumWidth(220)
        self.model_picker.activated.connect(self._on_model_picked)
        self.thinking_switch = QCheckBox("Think", self)
        self.thinking_switch.setObjectName("thinkingSwitch")
        self.thinking_switch.setToolTip("Let the model reason before it answers (Qwen3)")
        self.thinking_switch.toggled.connect(self._on_thinking_toggled)
        self.system_button = QToolButton(self)
        self.system_button.setObjectName("systemPromptButton")
        self.system_button.setText("System prompt…")
        self.system_button.clicked.connect(self.edit_system_prompt)
        self.settings_button = QToolButton(self)
        self.settings_button.setObjectName("modelSettingsButton")
        self.settings_button.setText("Model settings…")
        self.settings_button.clicked.connect(self.edit_model_settings)
        bar = QHBoxLayout()
        bar.setContentsMargins(12, 8, 12, 4)
        bar.addWidget(self.model_picker)
        bar.addWidget(self.thinking_switch)
        bar.addStretch(1)
        bar.addWidget(self.system_button)
        bar.addWidget(self.settings_button)

        self.banner = ErrorBanner(self)

        # messages
        self.scroll = QScrollArea(self)
        self.scroll.setObjectName("messagesArea")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._container = QWidget(self.scroll)
        self._container.setObjectName("messagesContainer")
        self._list = QVBoxLayout(self._container)
        self._list.setContentsMargins(8, 8, 8, 8)
        self._list.setSpacing(6)
        self.empty_label = QLabel(self._container)
        self.empty_label.setObjectName("emptyHint")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self._list.addWidget(self.empty_label)
        self._list.addStretch(1)
        self.scroll.setWidget(self._container)
        bar_ = self.scroll.verticalScrollBar()
        bar_.valueChanged.connect(self._remember_position)
        bar_.rangeChanged.connect(self._follow_bottom)

        # composer
        self.composer = Composer(self)
        self.composer.setObjectName("composer")
        self.composer.setPlaceholderText("Message (Enter sends, Shift+Enter for a new line)")
        self.composer.setFixedHeight(84)
        self.composer.submitted.connect(self.send)
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("sendButton")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the answer (Esc)")
        self.stop_button.clicked.connect(controller.stop)
        self.stop_button.hide()
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        composer_row = QHBoxLayout()
        composer_row.setContentsMargins(12, 4, 12, 12)
        composer_row.addWidget(self.composer, 1)
        composer_row.addLayout(buttons)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.banner)
        layout.addWidget(self.scroll, 1)
        layout.addLayout(composer_row)

        m = controller.messages
        m.modelReset.connect(self._rebuild)
        m.rowsInserted.connect(self._on_rows_inserted)
        m.rowsRemoved.connect(self._on_rows_removed)
        m.dataChanged.connect(self._on_data_changed)
        controller.generatingChanged.connect(self._on_generating)
        controller.errorRaised.connect(self.banner.show_error)
        controller.warningRaised.connect(self.banner.show_warning)
        controller.modelsChanged.connect(self.refresh_models)
        controller.conversationSettingsChanged.connect(self.refresh_conversation_settings)
        self.refresh_models()
        self._rebuild()

    # -- model → widgets -------------------------------------------------------------

    def message_widgets(self) -> list[MessageWidget]:
        return list(self._widgets)

    def _make(self, row: ChatRow) -> MessageWidget:
        w = MessageWidget(row, self.renderer, self._container)
        w.editRequested.connect(self._on_edit)
        w.regenerateRequested.connect(self.controller.regenerate)
        return w

    def _rebuild(self) -> None:
        for w in self._widgets:
            self._list.removeWidget(w)
            w.deleteLater()
        self._widgets = []
        for row in self.controller.messages.rows():
            w = self._make(row)
            self._list.insertWidget(self._list.count() - 1, w)
            w.show()
            self._widgets.append(w)
        self._refresh_last()
        self._stick_to_bottom = True
        QTimer.singleShot(0, self._scroll_to_bottom)

    def _on_rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        for i in range(first, last + 1):
            w = self._make(self.controller.messages.row(i))
            # +1: the empty hint sits first in the layout
            self._list.insertWidget(i + 1, w)
            w.show()
            self._widgets.insert(i, w)
        self._refresh_last()
        self._stick_to_bottom = True

    def _on_rows_removed(self, _parent: QModelIndex, first: int, last: int) -> None:
        for w in self._widgets[first : last + 1]:
            self._list.removeWidget(w)
            w.deleteLater()
        del self._widgets[first : last + 1]
        self._refresh_last()

    def _on_data_changed(
        self, top: QModelIndex, bottom: QModelIndex, _roles: object = None
    ) -> None:
        n = len(self._widgets)
        for i in range(top.row(), bottom.row() + 1):
            if i < n:
                self._widgets[i].set_row(self.controller.messages.row(i), is_last=i == n - 1)

    def _refresh_last(self) -> None:
        n = len(self._widgets)
        for i, w in enumerate(self._widgets):
            w.set_row(w.row, is_last=i == n - 1)
        self.empty_label.setVisible(n == 0)
        if n == 0:
            self.empty_label.setText(self._empty_text())

    def _empty_text(self) -> str:
        if self.controller.models_ready and not self.controller.available_models():
            return (
                "<h3>No chat model yet</h3>Open <b>Models</b> (Ctrl+2) to download one, "
                "or import a GGUF file you already have."
            )
        return (
            "<h3>Start a conversation</h3>"
            "Type below. Ctrl+N starts a new chat, Ctrl+K picks a model."
        )

    def _remember_position(self, value: int) -> None:
        bar = self.scroll.verticalScrollBar()
        self._stick_to_bottom = value >= bar.maximum() - 24

    def _follow_bottom(self, _min: int, _max: int) -> None:
        if self._stick_to_bottom:
            self._scroll_to_bottom()

    def _scroll_to_bottom(self) -> None:
        bar = self.scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    # -- actions ---------------------------------------------------------------------

    def send(self) -> None:
        text = self.composer.toPlainText()
        if not text.strip():
            return
        self.banner.dismiss()
        if self.controller.send(text):
            self.composer.clear()

    def stop(self) -> None:
        self.controller.stop()

    def _on_edit(self, message_id: int, text: str) -> None:
        self.banner.dismiss()
        self.controller.edit(message_id, text)

    def _on_generating(self, on: bool) -> None:
        self.stop_button.setVisible(on)
        self.send_button.setVisible(not on)
        self.model_picker.setEnabled(not on)

    def focus_model_picker(self) -> None:
        self.model_picker.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.model_picker.showPopup()

    def refresh_models(self) -> None:
        self.model_picker.blockSignals(True)
        self.model_picker.clear()
        models = self.controller.available_models()
        for m in models:
            self.model_picker.addItem(m.name if m.name == m.id else f"{m.name}  ({m.id})", m.id)
        if not models:
            waiting = not self.controller.models_ready
            self.model_picker.addItem(
                "Looking for models…" if waiting else "No chat model installed", None
            )
        self.model_picker.blockSignals(False)
        self.refresh_conversation_settings()
        self._refresh_last()

    def refresh_conversation_settings(self) -> None:
        current = self.controller.current_model()
        if current is not None:
            i = self.model_picker.findData(current.id)
            if i >= 0 and i != self.model_picker.currentIndex():
                self.model_picker.blockSignals(True)
                self.model_picker.setCurrentIndex(i)
                self.model_picker.blockSignals(False)
        has_switch = bool(current and current.thinking_switch)
        self.thinking_switch.setVisible(has_switch)
        self.thinking_switch.blockSignals(True)
        self.thinking_switch.setChecked(self.controller.conversation_thinking())
        self.thinking_switch.blockSignals(False)
        self.settings_button.setEnabled(current is not None)
        prompt = self.controller.conversation_system_prompt()
        self.system_button.setText("System prompt ✓" if prompt.strip() else "System prompt…")
        self.system_button.setToolTip(prompt or "No system prompt for this conversation")

    def _on_model_picked(self, index: int) -> None:
        model_id = self.model_picker.itemData(index)
        if model_id:
            try:
                self.controller.set_model(model_id)
            except HanlinError as exc:
                self.banner.show_error(exc)

    def _on_thinking_toggled(self, on: bool) -> None:
        self.controller.set_thinking(on)

    def edit_system_prompt(self) -> None:
        from hanlin.desktop.chat.dialogs import SystemPromptDialog

        dialog = SystemPromptDialog(self.controller.conversation_system_prompt(), self)
        if dialog.exec():
            self.controller.set_system_prompt(dialog.text())

    def edit_model_settings(self) -> None:
        model = self.controller.current_model()
        if model is None:
            return
        from hanlin.desktop.chat.dialogs import ModelSettingsDialog

        ModelSettingsDialog(model.id, model.entry, self).exec()

    def set_dark(self, dark: bool) -> None:
        """Re-render code blocks for the theme."""
        if dark == self.renderer.dark:
            return
        self.renderer = MarkdownRenderer(dark=dark)
        self.rerender()

    def rerender(self) -> None:
        """Render every message again (theme change, Markdown renderer now warm)."""
        for w in self._widgets:
            w.set_renderer(self.renderer)

    def status(self) -> ChatStatus:
        return self.controller.status
