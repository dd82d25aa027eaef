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

Streaming costs the model no speed: the answer being written is rendered by
`StreamingMarkdown` (only its unfinished last block is parsed and rendered again) and
shown as stacked pieces (`StreamingContent`), so an update lays out only the piece that
changed; the controller pushes updates at most at the display's rate.

Nothing is cut silently: when the conversation outgrew the model's context, a divider
("Earlier messages are not seen by the model") sits above the first message the model
still saw, with a button to load the model with a larger context where this machine has
the memory for it (the fit verdict); `context_meter` ("N / M tokens", in the window's
status line) shows how full the context is.
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
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.chat.attachment_chips import AttachmentStrip
from hanlin.desktop.chat.composer_attach import ComposerAttachments
from hanlin.desktop.chat.controller import ChatController, ChatStatus, ModelChoice
from hanlin.desktop.chat.item_models import ChatRow, ContextState
from hanlin.desktop.chat.markdown import (
    COPY_SCHEME,
    MarkdownRenderer,
    RenderedMarkdown,
    StreamingMarkdown,
    is_safe_link,
    is_warm,
    plain_to_html,
)
from hanlin.desktop.errors import ErrorBanner
from hanlin.engine.chat.window import context_meter, overflow_notice
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
    #: documents laid out, and the HTML characters they held (benchmarks and tests)
    layouts = 0
    layout_chars = 0

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
        RichTextView.layouts += 1
        RichTextView.layout_chars += len(html)
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


#: a streamed answer becomes one document at once when its HTML is at most this long
#: (a few ms of layout), else this much after its last token
MERGE_AT_ONCE_HTML = 12_000
MERGE_DELAY_MS = 750


class StreamingContent(QWidget):
    """An answer being streamed: its pieces (`StreamFrame.pieces`) stacked, one view each.

    Only a piece whose HTML changed is laid out again, so an update costs the size of the
    unfinished block, not of the whole answer. When the answer is complete the message
    shows it as one document again (selectable across paragraphs, as any other message).
    """

    linkActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("streamingContent")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(0)
        self.views: list[RichTextView] = []

    def show_pieces(self, pieces: list[str]) -> None:
        for i, html in enumerate(pieces):
            if i == len(self.views):
                view = RichTextView(self)
                view.setObjectName("messageContent")
                view.linkActivated.connect(self.linkActivated)
                self._layout.addWidget(view)
                self.views.append(view)
            self.views[i].setText(html)
        while len(self.views) > len(pieces):
            view = self.views.pop()
            self._layout.removeWidget(view)
            view.deleteLater()

    def text(self) -> str:
        return "".join(v.text() for v in self.views)


class TruncationDivider(QFrame):
    """The divider above the first message the model still saw, when older ones no longer fit.

    With a button that reloads the model with a larger context when the fit verdict says
    this machine can hold it (`ChatView` finds that out on the runner).
    """

    raiseRequested = Signal(int)  # the larger n_ctx

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("truncationDivider")
        self.label = QLabel("Earlier messages are not seen by the model", self)
        self.label.setObjectName("truncationLabel")
        self.label.setStyleSheet("color: palette(placeholder-text); font-style: italic;")
        self.raise_button = QToolButton(self)
        self.raise_button.setObjectName("raiseContextButton")
        self.raise_button.setAutoRaise(True)
        self.raise_button.hide()
        self.raise_button.clicked.connect(self._on_raise)
        self._offer: int | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 6)
        for side in ("left", "right"):
            line = QFrame(self)
            line.setFrameShape(QFrame.Shape.HLine)
            line.setFrameShadow(QFrame.Shadow.Sunken)
            layout.addWidget(line, 1)
            if side == "left":
                layout.addWidget(self.label)
                layout.addWidget(self.raise_button)

    def set_offer(self, n_ctx: int | None, tip: str = "") -> None:
        """Offer a larger context (None: nothing to offer)."""
        self._offer = n_ctx
        self.raise_button.setVisible(n_ctx is not None)
        if n_ctx is not None:
            self.raise_button.setText(f"Use a {n_ctx:,}-token context")
            self.raise_button.setToolTip(tip)

    def _on_raise(self) -> None:
        if self._offer is not None:
            self.raiseRequested.emit(self._offer)


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
        # files sent with the message, as chips that open them (attachment_chips.py)
        self.attachment_chips = AttachmentStrip(row.attachments, parent=self)
        self._layout.addWidget(self.attachment_chips)
        # while the answer streams: its renderer and the stacked pieces it is shown as
        self._stream: StreamingMarkdown | None = None
        self.live: StreamingContent | None = None
        self._final: RenderedMarkdown | None = None  # the finished answer, not shown yet
        self._merge_timer = QTimer(self)
        self._merge_timer.setSingleShot(True)
        self._merge_timer.setInterval(MERGE_DELAY_MS)
        self._merge_timer.timeout.connect(self.merge_streamed)
        self._rendered_key: tuple[str, bool, bool] | None = None  # (text, plain, streaming)
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
        self._stream = None
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
        streaming = row.streaming and not plain
        key = (row.content, plain, streaming)
        if key != self._rendered_key:
            self._rendered_key = key
            if plain:
                self.code_blocks = []
                self.content.setText(plain_to_html(row.content))
            elif streaming:
                self._show_streaming(row.content)
            elif self._stream is not None and self.live is not None:
                # just finished streaming: one document again (the same HTML as render(),
                # re-using the finished blocks); a long one a moment later, showing its
                # last pieces meanwhile: laying out a long answer at once takes tens of ms
                self._final = self._stream.finish(row.content)
                if len(self._final.html) <= MERGE_AT_ONCE_HTML:
                    self.merge_streamed()
                else:
                    frame = self._stream.feed(row.content)
                    self.code_blocks = frame.code_blocks
                    self.live.show_pieces(frame.pieces)
                    self._merge_timer.start()
            else:
                self._merge_timer.stop()
                rendered = self._renderer.render(row.content)
                self.code_blocks = rendered.code_blocks
                self.content.set_segments(rendered.segments)
                self._stream = None
                self._end_streaming()
        shown = bool(row.content) or not row.thinking
        if self.live is not None:
            self.live.setVisible(shown)
        else:
            self.content.setVisible(shown)

    def _show_streaming(self, text: str) -> None:
        if self._stream is None:
            self._stream = StreamingMarkdown(self._renderer)
        if self.live is None:
            self.live = StreamingContent(self)
            self.live.linkActivated.connect(self._on_link)
            self._layout.insertWidget(self._layout.indexOf(self.content), self.live)
            self.content.hide()
            self.content.setText("")
        frame = self._stream.feed(text)
        self.code_blocks = frame.code_blocks
        self.live.show_pieces(frame.pieces)

    def merge_streamed(self) -> None:
        """Show a streamed answer as one document again (selectable across its blocks)."""
        self._merge_timer.stop()
        stream, self._stream = self._stream, None
        rendered, self._final = self._final, None
        if stream is None or self.live is None:
            return
        if rendered is None:
            rendered = stream.finish(self.row.content)
        self.code_blocks = rendered.code_blocks
        self.content.set_segments(rendered.segments)
        self.content.setVisible(self.live.isVisibleTo(self))
        self._end_streaming()

    def _end_streaming(self) -> None:
        if self.live is not None:
            self._layout.removeWidget(self.live)
            self.live.hide()
            self.live.deleteLater()
            self.live = None

    def rendered_html(self) -> str:
        """The HTML the message shows now (all pieces while it streams)."""
        return self.live.text() if self.live is not None else self.content.text()

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
        # what the model saw of this conversation: the divider above the first message it
        # still saw, the offer of a larger context (by model file and context), the meter
        self.divider = TruncationDivider(self)
        self.divider.hide()
        self.divider.raiseRequested.connect(self.raise_context)
        self._context: ContextState | None = None
        self._offers: dict[tuple[str, int], tuple[int, str] | None] = {}
        #: "N / M tokens"; the main window puts it in its status line
        self.context_meter = QProgressBar(self)
        self.context_meter.setObjectName("contextMeter")
        self.context_meter.setTextVisible(True)
        self.context_meter.setFixedWidth(170)
        self.context_meter.setMaximumHeight(18)
        self.context_meter.hide()

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
        self.attach = ComposerAttachments(self.composer, controller, self)
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
        layout.addWidget(self.attach.bar)
        layout.addLayout(composer_row)

        m = controller.messages
        m.modelReset.connect(self._rebuild)
        m.rowsInserted.connect(self._on_rows_inserted)
        m.rowsRemoved.connect(self._on_rows_removed)
        m.dataChanged.connect(self._on_data_changed)
        for signal in (m.modelReset, m.rowsInserted, m.rowsRemoved, m.dataChanged):
            signal.connect(self._refresh_context)
        # the offer needs the model's file: ask again once the installed models are read
        controller.modelsChanged.connect(
            lambda: (
                self._offer_larger_context(self._context)
                if self._context is not None and self.divider.isVisibleTo(self)
                else None
            )
        )
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
        self._park_divider()
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
            # before the widget now at row i (the empty hint sits first in the layout, the
            # divider may sit between messages), or last, before the stretch
            if i < len(self._widgets):
                at = self._list.indexOf(self._widgets[i])
                if self._widgets[i].row.id == getattr(self._context, "first_seen_id", None):
                    at -= 1  # above the divider, which belongs to that message
            else:
                at = self._list.count() - 1
            self._list.insertWidget(at, w)
            w.show()
            self._widgets.insert(i, w)
        self._refresh_last()
        self._stick_to_bottom = True

    def _on_rows_removed(self, _parent: QModelIndex, first: int, last: int) -> None:
        self._park_divider()
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

    # -- what the model sees ---------------------------------------------------------

    def _park_divider(self) -> None:
        """Take the divider out of the list of messages (they may be about to change)."""
        self.divider.hide()
        self._list.removeWidget(self.divider)
        self._context = None

    def _refresh_context(self, *_args: object) -> None:
        state = self.controller.messages.context_state()
        if state == self._context:
            return
        self._context = state
        meter = self.context_meter
        if state is not None and state.n_ctx:
            meter.setRange(0, state.n_ctx)
            meter.setValue(min(state.used, state.n_ctx))
            meter.setFormat(context_meter(state.used, state.n_ctx))
            tip = f"The conversation fills {context_meter(state.used, state.n_ctx)} of the "
            tip += "model's context (prompt and answer)."
            if state.dropped:
                tip += " " + overflow_notice(state.dropped, state.n_ctx)
            meter.setToolTip(tip)
            meter.show()
        else:
            meter.hide()
        widget = next((w for w in self._widgets if state and w.row.id == state.first_seen_id), None)
        if state is None or widget is None:
            self.divider.hide()
            return
        self.divider.label.setToolTip(overflow_notice(state.dropped, state.n_ctx))
        self.divider.label.setText("Earlier messages are not seen by the model")
        self.divider.set_offer(None)
        self._list.removeWidget(self.divider)
        self._list.insertWidget(self._list.indexOf(widget), self.divider)
        self.divider.show()
        self._offer_larger_context(state)

    def _offer_larger_context(self, state: ContextState) -> None:
        """Ask (on the runner: it reads the GGUF header and the free memory) whether the
        model fits this machine with a larger context; offer it on the divider if so."""
        model = self._model_of(state)
        if model is None or model.is_remote or not state.n_ctx:
            return
        from hanlin.engine.core.settings import load_settings

        configured = load_settings().settings.model(model.id).n_ctx
        if configured and configured > state.n_ctx:  # raised already: the next answer uses it
            self.divider.label.setText(
                f"Earlier messages are not seen by the model · the next answer uses a "
                f"{configured:,}-token context"
            )
            return
        key = (str(model.path), state.n_ctx)
        if key in self._offers:
            offer = self._offers[key]
            if offer is not None:
                self.divider.set_offer(*offer)
            return

        def work(_cancel: object, _progress: object) -> tuple[int, str] | None:
            from hanlin.engine.chat.window import suggest_larger_context

            found = suggest_larger_context(model.path, state.n_ctx)
            if found is None:
                return None
            note = " (tight on memory)" if found.tight else ""
            tip = f"Reload {model.id} with a {found.n_ctx:,}-token context{note}: "
            return found.n_ctx, tip + found.verdict.reason

        def done(offer: tuple[int, str] | None) -> None:
            self._offers[key] = offer
            if self._context == state and offer is not None:
                self.divider.set_offer(*offer)

        self.controller.runner.submit(
            work, on_done=done, on_error=lambda _exc: None, key="context-offer"
        )

    def _model_of(self, state: ContextState) -> ModelChoice | None:
        """The model that wrote the answer (else the conversation's)."""
        if state.model_id:
            return self.controller.model_choice(state.model_id)
        return self.controller.current_model()

    def raise_context(self, n_ctx: int) -> None:
        """Save the larger context for the conversation's model and reload it with it."""
        model = self._model_of(self._context) if self._context is not None else None
        if model is None:
            return
        from dataclasses import replace

        from hanlin.engine.core.settings import ModelSettings, update_settings

        model_id = model.id
        try:
            update_settings(
                models=lambda current: {
                    **current,
                    model_id: replace(current.get(model_id) or ModelSettings(), n_ctx=n_ctx),
                }
            )
        except HanlinError as exc:
            self.banner.show_error(exc)
            return
        self.divider.set_offer(None)
        self.divider.label.setText(
            f"Earlier messages are not seen by the model · the next answer uses a "
            f"{n_ctx:,}-token context"
        )
        self.controller.preload_model()

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
        files = self.attach.attachments()
        if (not text.strip() and not files) or not self.attach.ready_to_send():
            return
        self.banner.dismiss()
        if self.controller.send(text, attachments=files):
            self.composer.clear()
            self.attach.clear()

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
