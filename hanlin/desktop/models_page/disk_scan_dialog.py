"""The Models page's "Scan disk" dialog: models already on this disk, registered in place.

What the user sees: where Hanlin looked (the Hugging Face cache, Ollama, LM Studio, the
folders in `scan_folders`), every GGUF model found there with where it came from, its
size and its guessed family (a drop-down: the user corrects it before registering), the
files that are broken and why (never listed as models), and buttons to add a folder,
scan again and register the ticked models. Registering copies nothing, and removing a
model from Hanlin later deletes nothing.

How it is built: the scan (engine/store/disk_scan.py) and the registration run on the
page's `TaskRunner`; the dialog only shows their results.
"""

from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.errors import ErrorBanner
from hanlin.desktop.models_page.format import human_bytes
from hanlin.desktop.tasks import TaskRunner
from hanlin.engine.core.cancel import CancelToken, ProgressCallback

#: columns of the found-models table
PICK, NAME, ORIGIN, SIZE, FAMILY, PATH = range(6)
HEADERS = ("", "Model", "From", "Size", "Family", "File")


class DiskScanDialog(QDialog):
    """Scan the disk for GGUF models and register the chosen ones in place."""

    #: models were registered: (the InstalledModel list)
    registered = Signal(object)
    #: a scan finished (for tests)
    scanned = Signal()

    def __init__(self, runner: TaskRunner, store: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("diskScanDialog")
        self.setWindowTitle("Models already on this disk")
        self.resize(980, 560)
        self._runner = runner
        self._store = store
        self.report: Any = None
        self._found: list[Any] = []
        self.last_error: str | None = None
        self._build_ui()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        self.intro_label = QLabel(self)
        self.intro_label.setWordWrap(True)
        self.intro_label.setText(
            "Hanlin looks for GGUF models in the Hugging Face cache, Ollama, LM Studio and your"
            " folders, and registers them where they are: nothing is copied, and removing one"
            " from Hanlin deletes nothing."
        )
        layout.addWidget(self.intro_label)
        self.error_banner = ErrorBanner(self)
        layout.addWidget(self.error_banner)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("scanStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.status_label)

        self.table = QTableWidget(0, len(HEADERS), self)
        self.table.setObjectName("scanResults")
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(ORIGIN, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(PATH, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(ORIGIN, 340)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        layout.addWidget(self.table, 3)

        self.problems_label = QLabel("Not usable (not listed):", self)
        self.problems_view = QPlainTextEdit(self)
        self.problems_view.setObjectName("scanProblems")
        self.problems_view.setReadOnly(True)
        self.problems_view.setMaximumHeight(120)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.problems_view, 1)
        self.problems_label.hide()
        self.problems_view.hide()

        buttons = QHBoxLayout()
        self.add_folder_button = QPushButton("Add folder…", self)
        self.add_folder_button.setToolTip("Look in this folder now and in every later scan")
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.rescan_button = QPushButton("Scan again", self)
        self.rescan_button.clicked.connect(self.scan)
        self.register_button = QPushButton("Register selected", self)
        self.register_button.setDefault(True)
        self.register_button.setEnabled(False)
        self.register_button.clicked.connect(self.register_selected)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.reject)
        buttons.addWidget(self.add_folder_button)
        buttons.addWidget(self.rescan_button)
        buttons.addStretch(1)
        buttons.addWidget(self.register_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

    # ================================================================ actions

    def scan(self) -> None:
        """Look in every location (worker)."""
        store = self._store

        def run(cancel: CancelToken, report: ProgressCallback) -> Any:
            from hanlin.engine.store.disk_scan import scan_disk

            return scan_disk(store=store, cancel=cancel, on_progress=report)

        self.error_banner.dismiss()
        self.status_label.setText("Looking for GGUF models on this disk…")
        self.register_button.setEnabled(False)
        self.rescan_button.setEnabled(False)
        self._runner.submit(
            run,
            on_done=self._show_report,
            on_error=self._show_error,
            on_progress=self._on_progress,
            key="scan:disk",
        )

    def add_folder(self, folder: Path) -> None:
        """Remember `folder` in settings.scan_folders (worker), then scan again."""
        text = str(Path(folder).expanduser().resolve())

        def save(cancel: CancelToken, report: ProgressCallback) -> None:
            from hanlin.engine.core.settings import update_settings

            update_settings(
                scan_folders=lambda current: current if text in current else [*current, text]
            )

        self._runner.submit(
            save, on_done=lambda _r: self.scan(), on_error=self._show_error, key="scan:folder"
        )

    def choose_folder(self) -> None:
        home = str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "A folder with GGUF models", home)
        if folder:
            self.add_folder(Path(folder))

    def chosen(self) -> list[Any]:
        """The ticked models, with the family the user picked."""
        out = []
        for row, found in enumerate(self._found):
            pick = self.table.item(row, PICK)
            if pick is None or pick.checkState() != Qt.CheckState.Checked:
                continue
            combo = self.table.cellWidget(row, FAMILY)
            family = combo.currentData() if isinstance(combo, QComboBox) else found.family
            out.append(replace(found, family=family or found.family))
        return out

    def register_selected(self) -> None:
        """Register the ticked models in place (worker)."""
        chosen = self.chosen()
        if not chosen:
            return
        store = self._store

        def run(cancel: CancelToken, report: ProgressCallback) -> Any:
            from hanlin.engine.store.disk_scan import register_found

            return register_found(store, chosen, cancel=cancel)

        self.register_button.setEnabled(False)
        self.status_label.setText(f"Registering {len(chosen)} models…")
        self._runner.submit(
            run, on_done=self._after_register, on_error=self._show_error, key="scan:register"
        )

    # ================================================================ results

    def _on_progress(self, progress: Any) -> None:
        total = getattr(progress, "total", None)
        if total:
            self.status_label.setText(
                f"Checking {int(progress.done) + 1} of {int(total)}:"
                f" {html.escape(str(progress.detail))}…"
            )

    def _show_report(self, report: Any) -> None:
        from hanlin.engine.models.catalog import known_families
        from hanlin.engine.store.disk_scan import ORIGIN_LABELS

        self.report = report
        self.rescan_button.setEnabled(True)
        self._found = list(report.found)
        families = sorted(known_families())
        self.table.setRowCount(len(self._found))
        for row, found in enumerate(self._found):
            pick = QTableWidgetItem()
            flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
            if found.is_new:
                pick.setFlags(flags | Qt.ItemFlag.ItemIsUserCheckable)
                pick.setCheckState(Qt.CheckState.Checked)
            else:
                pick.setFlags(flags)
            self.table.setItem(row, PICK, pick)
            name = QTableWidgetItem(found.model_id)
            name.setToolTip(found.name)
            self.table.setItem(row, NAME, name)
            origin = ORIGIN_LABELS.get(found.origin, found.origin)
            where = QTableWidgetItem(f"{origin}: {found.name}")
            where.setToolTip(f"{origin}: {found.name}")
            self.table.setItem(row, ORIGIN, where)
            size = QTableWidgetItem(human_bytes(found.size_bytes))
            size.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, SIZE, size)
            if found.is_new:
                combo = QComboBox(self.table)
                for family in families:
                    combo.addItem(family, family)
                index = combo.findData(found.family)
                combo.setCurrentIndex(max(0, index))
                combo.setToolTip("Guessed from the file's header; correct it if it is wrong")
                self.table.setCellWidget(row, FAMILY, combo)
            else:
                state = (
                    f"registered as {found.registered_as}"
                    if found.registered_as
                    else f"Hanlin has it: {found.duplicate_of}"
                )
                item = QTableWidgetItem(f"{found.family} · {state}")
                item.setForeground(self.palette().placeholderText())
                self.table.setItem(row, FAMILY, item)
            path = QTableWidgetItem(str(found.path))
            path.setToolTip(str(found.path))
            self.table.setItem(row, PATH, path)
        new = sum(1 for f in self._found if f.is_new)
        looked = ", ".join(
            f"{ORIGIN_LABELS.get(loc.origin, loc.origin)} ({html.escape(str(loc.path))})"
            for loc in report.locations
            if loc.exists
        )
        summary = (
            f"Found {len(self._found)} model{'s' if len(self._found) != 1 else ''}"
            f" ({new} new) in {looked or 'none of the usual places'}."
            if self._found or looked
            else "No GGUF models found. Add the folder that holds yours."
        )
        self.status_label.setText(summary)
        self.register_button.setEnabled(new > 0)
        problems = [f"{p.message}" + (f" — {p.hint}" if p.hint else "") for p in report.problems]
        self.problems_view.setPlainText("\n".join(problems))
        self.problems_label.setText(f"Not usable ({len(problems)}), not listed:")
        self.problems_label.setVisible(bool(problems))
        self.problems_view.setVisible(bool(problems))
        self.scanned.emit()

    def _after_register(self, result: Any) -> None:
        done, failed = result
        if failed:
            more = [f"{p.message}" + (f" — {p.hint}" if p.hint else "") for p in failed]
            current = self.problems_view.toPlainText()
            self.problems_view.setPlainText("\n".join([*filter(None, [current]), *more]))
            self.problems_label.show()
            self.problems_view.show()
        self.status_label.setText(
            f"Registered {len(done)} model{'s' if len(done) != 1 else ''} in place."
            + (f" {len(failed)} could not be registered (see below)." if failed else "")
        )
        self.registered.emit(done)
        self.scan()  # show them as registered now

    def _show_error(self, error: BaseException) -> None:
        self.rescan_button.setEnabled(True)
        text = self.error_banner.show_error(error)
        self.last_error = text.one_line()
        self.status_label.setText("")
        if not text.expected:
            raise error


__all__ = ["DiskScanDialog"]
