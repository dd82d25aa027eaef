"""The detail pane under the catalog table: one model's facts, progress and actions.

Shows the selected row of `CatalogTableModel`: name, description, family / size /
quant / context / roles / license, where it comes from or lives on disk, the fit
verdict with its reason, a progress bar with bytes, speed and ETA while it downloads
or sits partial, and the buttons that apply to its state (Download, Pause, Resume,
Cancel, Delete, Use for chat, Use for completion). It only displays: the Models page
connects the buttons to its actions.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.models_page.catalog_table import (
    AVAILABLE,
    DOWNLOADING,
    FIT_LABELS,
    INSTALLED,
    PARTIAL,
    CatalogTableModel,
    Column,
)
from hanlin.desktop.models_page.format import human_bytes, human_eta, human_rate


class ModelDetailsPane(QFrame):
    """Facts, fit, progress and the state-dependent action buttons of one model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelDetails")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        self.title_label = QLabel(self)
        self.title_label.setObjectName("modelTitle")
        font = self.title_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title_label.setFont(font)
        self.title_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.description_label = QLabel(self)
        self.description_label.setWordWrap(True)
        self.facts_label = QLabel(self)
        self.facts_label.setWordWrap(True)
        self.location_label = QLabel(self)
        self.location_label.setObjectName("modelLocation")
        self.location_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.location_label.setEnabled(False)  # muted, still selectable
        self.fit_label = QLabel(self)
        self.fit_label.setWordWrap(True)
        progress_row = QHBoxLayout()
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setTextVisible(True)
        self.progress_label = QLabel(self)
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.progress_label)

        buttons = QHBoxLayout()
        self.download_button = QPushButton("Download", self)
        self.pause_button = QPushButton("Pause", self)
        self.resume_button = QPushButton("Resume", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop and delete the partial download")
        self.delete_button = QPushButton("Delete", self)
        self.use_chat_button = QPushButton("Use for chat", self)
        self.use_completion_button = QPushButton("Use for completion", self)
        self.use_completion_button.setToolTip(
            "The model hanlin-lsp uses for inline completion in your editor"
        )
        for button in (
            self.download_button,
            self.pause_button,
            self.resume_button,
            self.cancel_button,
            self.delete_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.use_chat_button)
        buttons.addWidget(self.use_completion_button)

        layout.addWidget(self.title_label)
        layout.addWidget(self.description_label)
        layout.addWidget(self.facts_label)
        layout.addWidget(self.location_label)
        layout.addWidget(self.fit_label)
        layout.addLayout(progress_row)
        layout.addStretch(1)
        layout.addLayout(buttons)
        self.show_model(None, None)

    def show_model(self, table: CatalogTableModel | None, model_id: str | None) -> None:
        """Show one row of `table` (or the "select a model" hint for None)."""
        row = table.model_row(model_id) if table is not None and model_id else None
        buttons = (
            self.download_button,
            self.pause_button,
            self.resume_button,
            self.cancel_button,
            self.delete_button,
            self.use_chat_button,
            self.use_completion_button,
        )
        if row is None:
            self.title_label.setText("Select a model")
            self.description_label.setText(
                "Pick a row to download it, or import a .gguf file (drop it here)."
            )
            self.facts_label.clear()
            self.location_label.clear()
            self.fit_label.clear()
            self.progress_bar.hide()
            self.progress_label.clear()
            for button in buttons:
                button.hide()
            return
        status = table.status_of(row.id)
        chat, completion = table.chosen()
        self.title_label.setText(row.name)
        self.description_label.setText(row.description)
        facts = [row.family]
        facts += [f for f in (row.parameters, row.quantization) if f]
        size = table.index(table.row_for(row.id) or 0, Column.SIZE).data()
        facts.append(size)
        if row.context_length:
            facts.append(f"{row.context_length:,} ctx")
        facts.append("roles: " + ", ".join(row.roles))
        if row.license:
            facts.append(row.license)
        where = (
            str(row.installed_path)
            if row.installed_path
            else (f"{row.repo}/{row.file}" if row.repo else "")
        )
        self.facts_label.setText(" · ".join(facts))
        self.location_label.setText(
            f"On disk: {where}"
            if row.installed_path
            else (f"From the Hub: {where}" if where else "")
        )
        if row.fit_level:
            color = {"fits": "#2e9d4f", "tight": "#c98a00", "wont_fit": "#d0453a"}.get(
                row.fit_level, "inherit"
            )
            label = FIT_LABELS.get(row.fit_level, row.fit_level)
            reason = html.escape(row.fit_reason)
            verdict = f"<b style='color:{color}'>{label}</b>"
            self.fit_label.setText(f"{verdict} on this machine — {reason}")
        else:
            self.fit_label.setText("Checking what fits this machine…" if row.in_catalog else "")

        progress = table.progress_of(row.id)
        running = table.download(row.id)
        if progress is not None:
            self.progress_bar.show()
            unknown_total = (
                running is not None and running.phase == "downloading" and not running.total
            )
            self.progress_bar.setRange(0, 0 if unknown_total else 100)  # busy bar: size unknown
            self.progress_bar.setValue(progress)
            self.progress_label.setText(_progress_text(table, row.id))
        else:
            self.progress_bar.hide()
            self.progress_label.clear()

        dl = table.download(row.id)
        stopping = dl is not None and dl.phase in ("pausing", "cancelling")
        self.download_button.setVisible(status == AVAILABLE)
        self.resume_button.setVisible(status == PARTIAL)
        self.pause_button.setVisible(status == DOWNLOADING)
        self.pause_button.setEnabled(not stopping)
        self.cancel_button.setVisible(status in (DOWNLOADING, PARTIAL))
        self.cancel_button.setEnabled(not stopping)
        self.delete_button.setVisible(status == INSTALLED)
        installed = status == INSTALLED
        _set_use_button(
            self.use_chat_button, installed, "chat" in row.roles, chat == row.id, "chat"
        )
        _set_use_button(
            self.use_completion_button,
            installed,
            "completion" in row.roles,
            completion == row.id,
            "completion",
        )


def _set_use_button(
    button: QPushButton, installed: bool, has_role: bool, chosen: bool, role: str
) -> None:
    button.setVisible(installed)
    if chosen:
        button.setText(f"✓ {role.capitalize()} model")
        button.setEnabled(False)
    else:
        button.setText(f"Use for {role}")
        button.setEnabled(installed)
        if not has_role:
            button.setToolTip(
                f"The catalog does not list this model for {role}; it may work poorly."
            )


def _progress_text(table: CatalogTableModel, model_id: str) -> str:
    dl = table.download(model_id)
    if dl is None:
        row = table.model_row(model_id)
        if row is None or row.partial_done is None:
            return ""
        total = row.partial_total or row.size_bytes
        done = human_bytes(row.partial_done)
        return f"{done} of {human_bytes(total)} downloaded" if total else f"{done} downloaded"
    if dl.phase != "downloading":
        return table.status_text(model_id)
    parts = [
        f"{human_bytes(dl.done)} of {human_bytes(dl.total)}" if dl.total else human_bytes(dl.done)
    ]
    parts += [p for p in (human_rate(dl.rate), human_eta(dl.eta)) if p]
    return " · ".join(parts)
