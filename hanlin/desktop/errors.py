"""The one place where the desktop app turns errors into something a person can read.

House rule 3: errors say what to do next, and each front end maps the engine's
`HanlinError` hierarchy in exactly one place. For the window that place is here:

- `describe(error)` -> `ErrorText(title, message, hint)`: the words, for any widget;
- `ErrorBanner`: an inline, dismissable banner (chat view, models page) — the usual
  way to show an error, since it does not interrupt typing;
- `show_error_dialog(parent, error)`: a modal message box, for errors the user must
  acknowledge (a failed export, a damaged history database);
- `install_excepthook()`: in the running app (not under tests), an unexpected
  exception on the GUI thread becomes a dialog with the details, not a crash and
  not a silent stderr line. Under pytest-qt unexpected errors still fail the test.
"""

from __future__ import annotations

import html
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QToolButton,
    QWidget,
)

from hanlin.engine.core import errors as E
from hanlin.engine.remote import errors as R

#: Titles per error class; the most specific class in the MRO wins.
_TITLES: dict[type[BaseException], str] = {
    E.HanlinError: "Something went wrong",
    E.Cancelled: "Stopped",
    E.SettingsError: "Settings problem",
    E.CatalogError: "Catalog problem",
    E.UnknownModelError: "Unknown model",
    E.ModelNotInstalledError: "Model not installed",
    E.ModelFileError: "Not a usable model file",
    E.ModelLoadError: "The model could not be loaded",
    E.GenerationError: "The answer could not be generated",
    E.DownloadError: "Download failed",
    E.VerificationError: "Download damaged",
    E.DiskFullError: "Not enough disk space",
    E.AuthError: "Access refused by the Hub",
    E.NotFoundOnHubError: "Not found on the Hub",
    E.OfflineError: "Offline",
    E.BusyError: "Busy",
    E.HistoryError: "Chat history problem",
    R.RemoteError: "Remote server problem",
    R.RemoteUnreachableError: "Server not reachable",
    R.RemoteAuthError: "Server refused the key",
    R.RemoteTimeoutError: "Server too slow to answer",
    R.RemoteProtocolError: "Server sent a bad answer",
    R.RemoteDisconnectedError: "Connection to the server lost",
    R.RemoteBusyError: "Server busy",
    R.RemoteUnsupportedError: "Server cannot do this",
}


@dataclass(frozen=True, slots=True)
class ErrorText:
    title: str
    message: str
    hint: str | None
    #: False for a bug (not a HanlinError): the dialog then offers the details
    expected: bool = True

    def one_line(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


def describe(error: BaseException) -> ErrorText:
    """Words for an error: a title, the message, and what to do next."""
    if isinstance(error, E.HanlinError):
        title = next(
            (_TITLES[cls] for cls in type(error).__mro__ if cls in _TITLES), "Something went wrong"
        )
        return ErrorText(title, error.message, error.hint)
    if isinstance(error, MemoryError):
        return ErrorText(
            "Out of memory",
            "The computer ran out of memory.",
            "close other programs or choose a smaller model (see the Models page)",
        )
    if isinstance(error, OSError):
        return ErrorText(
            "File or system error",
            str(error) or type(error).__name__,
            "check the disk, permissions and free space",
        )
    return ErrorText(
        "Unexpected error",
        f"{type(error).__name__}: {error}",
        "this is a bug in Hanlin; the window keeps working — please report it with the details",
        expected=False,
    )


class ErrorBanner(QFrame):
    """An inline error banner: title, message, hint, and a close button. Hidden when empty."""

    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._label = QLabel(self)
        self._label.setObjectName("errorBannerText")
        self._label.setWordWrap(True)
        self._label.setTextFormat(Qt.TextFormat.RichText)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(self)
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self._label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.current: ErrorText | None = None
        self.hide()

    def show_error(self, error: BaseException | ErrorText) -> ErrorText:
        text = error if isinstance(error, ErrorText) else describe(error)
        self.current = text
        self.setProperty("severity", "error" if not isinstance(error, E.Cancelled) else "info")
        hint = f"<br>{html.escape(text.hint)}" if text.hint else ""
        self._label.setText(f"<b>{html.escape(text.title)}</b> — {html.escape(text.message)}{hint}")
        self.show()
        return text

    def show_warning(self, message: str, hint: str | None = None) -> ErrorText:
        return self.show_error(ErrorText("Note", message, hint))

    def text(self) -> str:
        return self._label.text()

    def dismiss(self) -> None:
        self.current = None
        self.hide()
        self.dismissed.emit()


def show_error_dialog(parent: QWidget | None, error: BaseException | ErrorText) -> ErrorText:
    """A modal message box for an error the user has to acknowledge."""
    text = error if isinstance(error, ErrorText) else describe(error)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning if text.expected else QMessageBox.Icon.Critical)
    box.setWindowTitle(text.title)
    box.setText(text.message)
    if text.hint:
        box.setInformativeText(text.hint)
    if not text.expected and isinstance(error, BaseException):
        box.setDetailedText("".join(traceback.format_exception(error)))
    box.exec()
    return text


def install_excepthook(
    parent: Callable[[], QWidget | None] = QApplication.activeWindow,
) -> None:
    """Route unexpected exceptions on the GUI thread to a dialog instead of a crash."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, value, tb)
            return
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        if QApplication.instance() is None:
            return
        try:
            show_error_dialog(parent(), value)
        except Exception:  # never let the error path itself crash the app
            previous(kind, value, tb)

    sys.excepthook = hook
