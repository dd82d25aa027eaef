"""Attachments as chips: above the composer (removable) and on sent messages (read-only).

Why a widget of its own: the composer and every message that carried files show the same
thing — the file's name, what it costs in tokens, and a click that opens the file — so one
chip serves both. A chip is a `QToolButton` (keyboard-focusable, clickable) with an ×
beside it where the attachment can still be taken back; `AttachmentStrip` lays chips out in
rows that wrap (`FlowLayout`, Qt's flow layout example) so many files never widen the view.

Clicking opens the file with `QDesktopServices.openUrl` (the system's default app for it);
a file that is gone since it was sent is said so in the tooltip, and the text that was sent
stays in the history either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QPoint, QRect, QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLayout,
    QLayoutItem,
    QSizePolicy,
    QToolButton,
    QWidget,
    QWidgetItem,
)

from hanlin.engine.chat.attachments import Attachment
from hanlin.engine.core.units import format_bytes

__all__ = ["AttachmentChip", "AttachmentStrip", "FlowLayout", "chip_text"]

_STYLE = """
QFrame#attachmentChip {
    border: 1px solid palette(mid); border-radius: 10px; background: palette(alternate-base);
}
QFrame#attachmentChip QToolButton { border: none; padding: 1px 4px; background: transparent; }
QFrame#attachmentChip QToolButton#chipRemove { font-weight: bold; }
"""


def chip_text(a: Attachment, *, full: bool = False) -> str:
    """`app.py · 312 tokens` (`≈312` when estimated without the model's tokenizer);
    `full`: the whole label (`src/app.py`), for names that appear twice."""
    about = "≈" if a.tokens_estimated else ""
    return f"{a.label if full else a.name} · {about}{a.tokens:,} tokens"


def _tooltip(a: Attachment) -> str:
    language = a.language or "plain text"
    gone = "" if Path(a.path).exists() else "\n(the file is no longer there; the text sent is kept)"
    how = "estimated" if a.tokens_estimated else "counted with the model's tokenizer"
    return (
        f"{a.label}\n{a.path}\n{language} · {format_bytes(a.size_bytes)} · "
        f"{a.tokens:,} tokens ({how})\nClick to open{gone}"
    )


class AttachmentChip(QFrame):
    """One attachment: its name and token count; click opens the file, × removes it."""

    removeRequested = Signal(str)  # the attachment's path
    opened = Signal(str)

    def __init__(
        self,
        attachment: Attachment,
        *,
        removable: bool,
        full: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.attachment = attachment
        self.setObjectName("attachmentChip")
        self.button = QToolButton(self)
        self.button.setObjectName("chipOpen")
        self.button.setText(chip_text(attachment, full=full))
        self.button.setToolTip(_tooltip(attachment))
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.clicked.connect(self.open_file)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 2, 0)
        row.setSpacing(0)
        row.addWidget(self.button)
        self.remove_button: QToolButton | None = None
        if removable:
            self.remove_button = QToolButton(self)
            self.remove_button.setObjectName("chipRemove")
            self.remove_button.setText("×")
            self.remove_button.setToolTip(f"Do not send {attachment.label}")
            self.remove_button.setAccessibleName(f"Remove {attachment.label}")
            self.remove_button.clicked.connect(
                lambda: self.removeRequested.emit(self.attachment.path)
            )
            row.addWidget(self.remove_button)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def text(self) -> str:
        return self.button.text()

    def open_file(self) -> bool:
        """Open the file in the system's app for it; False if it is gone or nothing opened."""
        path = Path(self.attachment.path)
        self.button.setToolTip(_tooltip(self.attachment))  # says so if it is gone
        if not path.exists():
            return False
        self.opened.emit(str(path))
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class FlowLayout(QLayout):
    """Children left to right, wrapping into rows (after Qt's flow layout example)."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def addWidget(self, widget: QWidget) -> None:
        self.addChildWidget(widget)
        self.addItem(QWidgetItem(widget))
        self.invalidate()

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    def _arrange(self, rect: QRect, *, move: bool) -> int:
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, line = area.x(), area.y(), 0
        for item in self._items:
            if item.widget() is not None and item.widget().isHidden():
                continue
            hint = item.sizeHint()
            if x + hint.width() > area.right() + 1 and line > 0:
                x, y, line = area.x(), y + line + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y() + m.bottom()


class AttachmentStrip(QWidget):
    """A wrapping row of chips; removable ones emit `removeRequested(path)`."""

    removeRequested = Signal(str)

    def __init__(
        self,
        attachments: Sequence[Attachment] = (),
        *,
        removable: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("attachmentStrip")
        self.setStyleSheet(_STYLE)
        self._removable = removable
        self._flow = FlowLayout(self)
        self._chips: list[AttachmentChip] = []
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.set_attachments(attachments)

    def chips(self) -> list[AttachmentChip]:
        return list(self._chips)

    def set_attachments(self, attachments: Sequence[Attachment]) -> None:
        for chip in self._chips:
            self._flow.removeWidget(chip)
            chip.deleteLater()
        self._chips = []
        names = Counter(a.name for a in attachments)
        for a in attachments:
            full = names[a.name] > 1  # two `__init__.py`: show their paths
            chip = AttachmentChip(a, removable=self._removable, full=full, parent=self)
            chip.removeRequested.connect(self.removeRequested)
            self._flow.addWidget(chip)
            chip.show()
            self._chips.append(chip)
        self.setVisible(bool(self._chips))
        self.updateGeometry()
