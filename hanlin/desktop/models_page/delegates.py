"""Paints the Status cell as a progress bar while a download runs or sits partial.

The text ("42% · 3.1 MB/s · 0:12 left", "Partial 42%") comes from the model;
this delegate only draws it inside a native progress bar so every row shows its
progress at a glance, not just the selected one.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QApplication,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
)

from hanlin.desktop.models_page.catalog_table import ProgressRole


class ProgressDelegate(QStyledItemDelegate):
    """Draws ProgressRole (0..100; -1 for none) as a progress bar with the cell's text."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        value = index.data(ProgressRole)
        if value is None or value < 0:
            super().paint(painter, option, index)
            return
        # background + selection as usual, without text
        item = QStyleOptionViewItem(option)
        self.initStyleOption(item, index)
        item.text = ""
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, item, painter, option.widget)

        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(3, 3, -3, -3)
        bar.minimum = 0
        bar.maximum = 100
        bar.progress = int(value)
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or f"{value}%")
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)
