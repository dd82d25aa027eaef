"""Attaching files to the message being written: button, drag and drop, `@file`, the meter.

Why apart from the view: the composer is the chat view's widget; everything about the
files going with the next message lives here and plugs into it with a few lines
(`ComposerAttachments(composer, controller, parent)`, its `bar` above the composer, its
`attachments()` passed to `ChatController.send`):

- **Attach** (a button with *Files…* and *Folder…*), files or folders **dropped** on the
  composer, and **`@file` completion**: typing `@` offers the files of the conversation's
  working folder (the git work tree — else the folder — of the newest file attached in
  this conversation, else the folder Hanlin was started in; listed on the runner when
  `@` is first typed, filtered like an attached folder) and the files attached recently;
  choosing one attaches it and leaves `@path` in the text.
- Files are read on the `TaskRunner` (a folder may be large), with the engine's rules
  (engine/chat/attachments.py: binary and huge files refused with the reason, folders
  filtered by .gitignore); a refusal is shown in the banner and nothing else changes.
- Token counts come from the conversation's model when it is loaded and idle (its
  tokenizer), an estimate (≈) otherwise; an estimate is counted again once an answer
  finished and the model is loaded.
- Chips above the composer (click opens the file, × takes it back) and a meter of the
  context that the attachments and the message will use, against the model's context.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QModelIndex, QObject, QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QDropEvent, QKeyEvent, QTextCursor
from PySide6.QtWidgets import (
    QCompleter,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.chat.attachment_chips import AttachmentStrip
from hanlin.engine.chat.attachments import (
    Attachment,
    AttachmentSet,
    TokenCounter,
    estimate_tokens,
    list_project_files,
    read_paths,
    recount,
    working_folder,
)
from hanlin.engine.core.errors import HanlinError

if TYPE_CHECKING:
    from hanlin.desktop.chat.controller import ChatController

__all__ = ["ComposerAttachments", "local_paths"]

#: `@` at the start or after a space, then the part of a path typed so far
_MENTION = re.compile(r"(?:^|(?<=\s))@([^\s@]*)$")
#: files offered by `@` completion from the working folder
_MAX_CANDIDATES = 5_000
#: the chips above the composer scroll beyond about three rows
_STRIP_MAX_HEIGHT = 96
_METER_STYLE = 'QProgressBar#contextMeter[over="true"]::chunk { background: #c62828; }'


def local_paths(mime: Any) -> list[str]:
    """The local files and folders in dragged data (other URLs and plain text: none)."""
    if mime is None or not mime.hasUrls():
        return []
    paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
    return [p for p in paths if p]


class _BusyModel(HanlinError):
    """The model is generating (or gone): count with the estimate instead."""


def _guarded_counter(model: Any) -> TokenCounter:
    """The model's tokenizer, used only while nobody else holds the model (never waits)."""

    def count(text: str) -> int:
        if not model.lock.acquire(blocking=False):
            raise _BusyModel("the model is busy")
        try:
            if model.closed:
                raise _BusyModel("the model was closed")
            return len(model.session.tokenize(text, add_special=False, parse_special=False))
        finally:
            model.lock.release()

    return count


class ComposerAttachments(QObject):
    """The attachments of the message being written, and the widgets that show them."""

    #: the attachments changed (added, removed, counted again, sent)
    changed = Signal()

    def __init__(
        self, composer: QPlainTextEdit, controller: ChatController, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.composer = composer
        self.controller = controller
        self._attachments: list[Attachment] = []
        self._reading = 0
        #: what `@` completion offers: text shown -> absolute path
        self._candidates: dict[str, str] = {}
        self._recent: dict[str, str] = {}
        self._root: Path | None = None
        #: the working folder's files (None: not listed since it changed), and the folder
        #: being listed now
        self._files: dict[str, str] | None = None
        self._listing: Path | None = None
        self._mention_start = -1

        # the bar above the composer: [Attach ▾] [chips …] [meter]
        self.bar = QWidget(parent)
        self.bar.setObjectName("attachmentBar")
        self.button = QToolButton(self.bar)
        self.button.setObjectName("attachButton")
        self.button.setText("Attach")
        self.button.setToolTip("Attach files or a folder to your message (or drop them here)")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.button)
        menu.addAction("Files…", self.choose_files)
        menu.addAction("Folder…", self.choose_folder)
        menu.addSeparator()
        self.remove_all_action = menu.addAction("Remove all", self.clear)
        self.button.setMenu(menu)
        self.strip = AttachmentStrip(removable=True)
        self.strip.removeRequested.connect(self.remove)
        # many files (a folder) scroll within a few rows instead of pushing the chat away
        self.strip_area = QScrollArea(self.bar)
        self.strip_area.setObjectName("attachmentArea")
        self.strip_area.setWidget(self.strip)
        self.strip_area.setWidgetResizable(True)
        self.strip_area.setFrameShape(QFrame.Shape.NoFrame)
        self.strip_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip_area.setMaximumHeight(_STRIP_MAX_HEIGHT)
        self.strip_area.hide()
        self.meter = QProgressBar(self.bar)
        self.meter.setObjectName("contextMeter")
        self.meter.setFixedWidth(110)
        self.meter.setMaximumHeight(14)
        self.meter.setTextVisible(False)
        self.meter.setStyleSheet(_METER_STYLE)
        self.meter_label = QLabel(self.bar)
        self.meter_label.setObjectName("contextMeterLabel")
        self.status_label = QLabel(self.bar)
        self.status_label.setObjectName("attachStatus")
        self.status_label.hide()
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.button)
        top.addWidget(self.status_label)
        top.addStretch(1)
        top.addWidget(self.meter_label)
        top.addWidget(self.meter)
        column = QVBoxLayout(self.bar)
        column.setContentsMargins(12, 2, 12, 0)
        column.setSpacing(4)
        column.addLayout(top)
        column.addWidget(self.strip_area)

        # `@file` completion over the working folder's files
        self._model = QStringListModel(self)
        self.completer = QCompleter(self._model, self)
        self.completer.setWidget(composer)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer.setMaxVisibleItems(12)
        self.completer.activated[QModelIndex].connect(self._complete)
        # after QCompleter's own filter (installed when the popup is made), so this one runs
        # first: Enter/Tab choose the file instead of reaching the composer (which sends)
        self.completer.popup().installEventFilter(self)

        # drops onto the composer (and its viewport, where Qt delivers them)
        composer.installEventFilter(self)
        composer.viewport().installEventFilter(self)
        composer.textChanged.connect(self._on_text_changed)
        self._meter_timer = QTimer(self)
        self._meter_timer.setSingleShot(True)
        self._meter_timer.setInterval(150)
        self._meter_timer.timeout.connect(self.update_meter)
        controller.conversationOpened.connect(lambda _id: self.refresh_candidates())
        controller.conversationSettingsChanged.connect(self.update_meter)
        controller.answerFinished.connect(lambda _outcome: self._recount_estimates())
        self.refresh_candidates()
        self.update_meter()

    # -- what goes with the message ---------------------------------------------------

    def attachments(self) -> list[Attachment]:
        return list(self._attachments)

    @property
    def busy(self) -> bool:
        """Files are still being read (sending now would leave them out)."""
        return self._reading > 0

    def ready_to_send(self) -> bool:
        """False (and the banner says why) while files are read or when they cannot fit.

        An estimate is allowed 10% over the context before the send is refused: the
        model's tokenizer decides once it runs.
        """
        if self._reading:
            self.controller.warningRaised.emit(
                "Still reading the attached files.", "send again in a moment"
            )
            return False
        n_ctx = self.context_length() if self._attachments else None
        if not n_ctx:
            return True
        files, text = self.used_tokens()
        estimated = any(a.tokens_estimated for a in self._attachments)
        if files + text <= n_ctx * (1.1 if estimated else 1.0):
            return True
        about = "about " if estimated else ""
        self.controller.warningRaised.emit(
            f"Not sent: the attachments and the message are {about}{files + text:,} tokens, "
            f"more than the {n_ctx:,}-token context of the model.",
            "take some files back (×), or raise the context length in Model settings",
        )
        return False

    def clear(self) -> None:
        """The message was sent: start the next one with no attachments."""
        if self._attachments:
            self._attachments = []
            self._changed()

    def remove(self, path: str) -> None:
        kept = [a for a in self._attachments if a.path != path]
        if len(kept) != len(self._attachments):
            self._attachments = kept
            self._changed()

    def add_paths(self, paths: Sequence[str | Path]) -> None:
        """Read files or folders on the runner and attach them (errors go to the banner)."""
        wanted = [str(p) for p in paths if str(p)]
        if not wanted:
            return
        counter = self._counter()
        already = tuple(self._attachments)

        def work(_cancel: Any, _progress: Any) -> AttachmentSet:
            return read_paths(wanted, count_tokens=counter, already=already)

        self._reading += 1
        self._show_status()
        self.controller.runner.submit(work, on_done=self._on_read, on_error=self._on_read_error)

    def _on_read(self, got: AttachmentSet) -> None:
        self._reading -= 1
        self._show_status()
        have = {a.path for a in self._attachments}
        new = [a for a in got.attachments if a.path not in have]
        self._attachments.extend(new)
        for a in new:
            self._recent[a.label] = a.path
        if got.skipped:
            names = ", ".join(Path(s.path).name for s in got.skipped[:5])
            more = f" and {len(got.skipped) - 5} more" if len(got.skipped) > 5 else ""
            self.controller.warningRaised.emit(
                f"Left out {len(got.skipped)} file(s) of the folder: {names}{more} "
                f"({got.skipped[0].reason}).",
                "binary and oversized files are not sent",
            )
        self._changed()
        self.refresh_candidates()

    def _on_read_error(self, exc: BaseException) -> None:
        self._reading -= 1
        self._show_status()
        self.controller.errorRaised.emit(exc)

    def _changed(self) -> None:
        self.strip.set_attachments(self._attachments)
        self.strip_area.setVisible(bool(self._attachments))
        self.strip_area.setFixedHeight(
            min(_STRIP_MAX_HEIGHT, self.strip.heightForWidth(self.strip_area.viewport().width()))
        )
        self.remove_all_action.setEnabled(bool(self._attachments))
        self.update_meter()
        self.changed.emit()

    def _show_status(self) -> None:
        self.status_label.setText("Reading files…")
        self.status_label.setVisible(self._reading > 0)

    # -- token counts -------------------------------------------------------------------

    def _loaded_model(self) -> Any:
        """The conversation's model if it is loaded in this process, else None."""
        choice = self.controller.current_model()
        if choice is None or choice.is_remote:
            return None
        model = self.controller.host.current
        if model is None or getattr(model, "closed", False):
            return None
        try:
            same = Path(model.path).resolve() == Path(choice.path).resolve()
        except OSError:
            same = False
        return model if same else None

    def _counter(self) -> TokenCounter | None:
        model = self._loaded_model()
        return _guarded_counter(model) if model is not None else None

    def _recount_estimates(self) -> None:
        """After an answer the model is loaded and idle: count estimated ones exactly."""
        if not any(a.tokens_estimated for a in self._attachments):
            return
        counter = self._counter()
        if counter is None:
            return
        pending = tuple(self._attachments)

        def work(_cancel: Any, _progress: Any) -> tuple[Attachment, ...]:
            return recount(pending, counter)

        def done(counted: tuple[Attachment, ...]) -> None:
            by_path = {a.path: a for a in counted}
            self._attachments = [by_path.get(a.path, a) for a in self._attachments]
            self._changed()

        self.controller.runner.submit(work, on_done=done, on_error=self.controller.errorRaised.emit)

    def context_length(self) -> int | None:
        """The context the conversation's model has (or will load with); None: remote."""
        from hanlin.engine.core.settings import load_settings
        from hanlin.engine.models.fit import default_n_ctx

        choice = self.controller.current_model()
        if choice is None or choice.is_remote:
            return None
        model = self._loaded_model()
        if model is not None:
            return int(model.n_ctx)
        wanted = load_settings().settings.model(choice.id).n_ctx
        return int(wanted or default_n_ctx(choice.context_length))

    def used_tokens(self) -> tuple[int, int]:
        """(tokens of the attachments, estimated tokens of the text typed)."""
        files = sum(a.tokens for a in self._attachments)
        return files, estimate_tokens(self.composer.toPlainText())

    def update_meter(self) -> None:
        files, text = self.used_tokens()
        show = bool(self._attachments)
        self.meter.setVisible(show)
        self.meter_label.setVisible(show)
        if not show:
            return
        n_ctx = self.context_length()
        about = "≈" if any(a.tokens_estimated for a in self._attachments) else ""
        used = files + text
        words = f"{about}{files:,} in files + ≈{text:,} typed"
        if n_ctx:
            share = used / n_ctx
            self.meter.setRange(0, n_ctx)
            self.meter.setValue(min(used, n_ctx))
            over = used > n_ctx
            more = " — more than the context holds" if over else ""
            self.meter_label.setText(f"{words} · {share:.0%} of {n_ctx:,} tokens{more}")
            if self.meter.property("over") != over:
                self.meter.setProperty("over", over)
                self.meter.style().unpolish(self.meter)
                self.meter.style().polish(self.meter)
            self.meter.setToolTip(
                "More than the model's context holds: the oldest messages and then the "
                "message itself cannot fit — take some files back"
                if over
                else f"{used:,} of the {n_ctx:,}-token context, before the conversation so far"
            )
        else:
            self.meter.setRange(0, 0)
            self.meter.hide()
            self.meter_label.setText(f"{words} tokens")

    # -- choosing files -----------------------------------------------------------------

    def _start_folder(self) -> str:
        root = self._root or working_folder(a.path for a in self._attachments)
        return str(root or Path.home())

    def choose_files(self) -> None:
        files, _filter = QFileDialog.getOpenFileNames(
            self.bar, "Attach files", self._start_folder()
        )
        self.add_paths(files)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.bar, "Attach a folder", self._start_folder())
        if folder:
            self.add_paths([folder])

    # -- drag and drop, completion keys ------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if watched is self.completer.popup():
            if kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
                return self._popup_key(event)
            return False
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove) and isinstance(event, QDropEvent):
            # QDragEnterEvent and QDragMoveEvent are QDropEvents
            if local_paths(event.mimeData()):
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            paths = local_paths(event.mimeData())
            if paths:
                event.acceptProposedAction()
                self.add_paths(paths)
                return True
        return False

    def _popup_key(self, event: QKeyEvent) -> bool:
        popup = self.completer.popup()
        key = event.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Tab):
            index = popup.currentIndex()
            if not index.isValid():
                index = self.completer.completionModel().index(0, 0)
            popup.hide()
            if index.isValid():
                self._complete(index)
            return True
        if key == Qt.Key.Key_Escape:
            popup.hide()
            return True
        return False

    # -- `@file` completion --------------------------------------------------------------

    def refresh_candidates(self) -> None:
        """The conversation or its files changed: find the working folder again.

        Cheap: its files are listed on the runner only when `@` is typed (`_list_files`).
        """
        paths = [a.path for a in self._conversation_attachments()]
        paths += [a.path for a in self._attachments]
        root = working_folder(paths)
        if root is None:
            here = Path.cwd()
            root = here if here not in (Path.home(), Path(here.anchor)) else None
        for a in self._conversation_attachments():
            self._recent.setdefault(a.label, a.path)
        if root != self._root or self._files is None:
            self._root = root
            self._files = None  # listed again at the next `@`
        self._set_candidates(self._files or {})

    def _list_files(self) -> None:
        """List the working folder's files on the runner; the popup opens when they are in."""
        base = self._root
        if base is None or self._listing == base:
            return
        self._listing = base

        def work(_cancel: Any, _progress: Any) -> list[str]:
            return list_project_files(base, limit=_MAX_CANDIDATES)

        def done(files: list[str]) -> None:
            self._listing = None
            if self._root == base:
                self._files = {f: str(base / f) for f in files}
                self._set_candidates(self._files)
                if self._mention_start >= 0:
                    self._on_text_changed()  # `@…` is still being typed: offer them now

        def failed(_exc: BaseException) -> None:
            self._listing = None

        self.controller.runner.submit(work, on_done=done, on_error=failed, key="at-file")

    def _conversation_attachments(self) -> list[Attachment]:
        cid = self.controller.current_id
        if cid is None:
            return []
        try:
            messages = self.controller.history.messages(cid)
        except HanlinError:
            return []
        return [a for m in messages for a in m.attachments]

    def _set_candidates(self, files: dict[str, str]) -> None:
        recent = {label: path for label, path in self._recent.items() if Path(path).is_file()}
        self._candidates = {**recent, **files}
        self._model.setStringList(list(self._candidates))

    def candidates(self) -> list[str]:
        """What `@` completion offers now (tests, the tooltip)."""
        return list(self._candidates)

    def _on_text_changed(self) -> None:
        self._meter_timer.start()
        cursor = self.composer.textCursor()
        block = cursor.block().text()[: cursor.positionInBlock()]
        match = _MENTION.search(block)
        popup = self.completer.popup()
        if match is None:
            self._mention_start = -1
            popup.hide()
            return
        self._mention_start = cursor.position() - len(match.group(1)) - 1
        if self._files is None:
            self._list_files()
        if not self._candidates:
            popup.hide()
            return
        self.completer.setCompletionPrefix(match.group(1))
        if self.completer.completionCount() == 0:
            popup.hide()
            return
        rect = self.composer.cursorRect()
        rect.setWidth(
            min(520, popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width())
        )
        self.completer.complete(rect)
        if not popup.currentIndex().isValid():
            popup.setCurrentIndex(self.completer.completionModel().index(0, 0))

    def _complete(self, index: QModelIndex) -> None:
        """`@pa` + a chosen file: the text says `@path/to/file `, and the file is attached."""
        shown = str(index.data())
        path = self._candidates.get(shown)
        if path is None or self._mention_start < 0:
            return
        cursor = self.composer.textCursor()
        cursor.setPosition(self._mention_start)
        cursor.setPosition(self.composer.textCursor().position(), QTextCursor.MoveMode.KeepAnchor)
        self._mention_start = -1
        cursor.insertText(f"@{shown} ")
        self.composer.setTextCursor(cursor)
        self.completer.popup().hide()
        self.add_paths([path])
