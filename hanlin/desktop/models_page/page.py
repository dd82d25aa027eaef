"""The Models page of the desktop app: browse the catalog, download, import, choose.

What the user sees: every catalog entry (size, quant, roles, license, a fit verdict
for this machine with its reason), installed and partial downloads, a filter by
family / role / text, per-model actions (Download, Pause, Resume, Cancel, Delete,
Use for chat, Use for completion), Import GGUF… and drag-and-drop of `.gguf`
files, and the editor-completion numbers `hanlin-lsp` records.

How it is built: the page owns no model state. `CatalogTableModel` holds the rows,
`CatalogFilterProxy` filters them, `ModelDetailsPane` shows the selected one,
`DownloadManager` runs pulls, and every engine call (scanning the store and fit
verdicts in `hanlin.desktop.models_page.scan`, pulling, importing, removing, writing settings)
goes through the `TaskRunner`, so the GUI thread never blocks.
Errors show in an inline banner on the page (and through `hanlin.desktop.errors` where
that module offers a mapping), never as a crash; the page keeps working.

`modelsChanged` is emitted whenever the installed set or the chosen chat /
completion model changes, so the main window can refresh its model picker.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelection, QModelIndex, QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QDragEnterEvent,
    QDropEvent,
    QFontMetrics,
    QHideEvent,
    QKeySequence,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyle,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.errors import ErrorBanner
from hanlin.desktop.models_page.catalog_table import (
    AVAILABLE,
    DOWNLOADING,
    INSTALLED,
    PARTIAL,
    CatalogTableModel,
    Column,
    IdRole,
)
from hanlin.desktop.models_page.delegates import ProgressDelegate
from hanlin.desktop.models_page.details import ModelDetailsPane
from hanlin.desktop.models_page.downloads import CANCELLED, DownloadManager
from hanlin.desktop.models_page.filter_proxy import CatalogFilterProxy
from hanlin.desktop.models_page.format import human_bytes
from hanlin.desktop.models_page.hub_search_panel import HubSearchPanel
from hanlin.desktop.models_page.scan import (
    StoreSnapshot,
    estimate_sizes,
    fit_for_catalog,
    scan_store,
)
from hanlin.desktop.models_page.stats_panel import CompletionStatsPanel
from hanlin.desktop.tasks import TaskRunner
from hanlin.engine.core.cancel import CancelToken, ProgressCallback
from hanlin.engine.core.errors import ModelFileError

GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"
#: how often the editor-completion numbers are re-read while the page is visible
STATS_REFRESH_MS = 15_000
#: what "Use for …" writes, per role
_SETTING_FOR_ROLE = {"chat": "chat_model", "completion": "completion_model"}


class ModelsPage(QWidget):
    """The catalog, downloads, imports and the choice of chat / completion model."""

    #: the installed set or the chosen chat / completion model changed
    modelsChanged = Signal()
    #: an error was shown on the page (its text); handy for the status bar and tests
    errorShown = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        store: Any,
        catalog: Any,
        parent: QWidget | None = None,
        *,
        progress_interval_ms: int = 300,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("modelsPage")
        self.setAcceptDrops(True)
        self._runner = runner
        self._store = store
        self._catalog = catalog
        if catalog is None:  # the store knows the catalog it was built with
            catalog = getattr(store, "catalog", None)
        self._entries = list(getattr(catalog, "entries", catalog) if catalog is not None else [])
        self._catalog_ids = {e.id for e in self._entries}
        self._installed_ids: set[str] | None = None
        self._scan_pending = False
        self._catalog_verdicts: dict[str, Any] = {}
        self._extra_verdicts: dict[str, Any] = {}
        self._pending_select: str | None = None
        self.last_error: str | None = None

        self.table_model = CatalogTableModel(self)
        self.table_model.set_catalog(self._entries)
        self.proxy = CatalogFilterProxy(self)
        self.proxy.setSourceModel(self.table_model)
        self.downloads = DownloadManager(
            runner, store, self.table_model, interval_ms=progress_interval_ms, parent=self
        )
        self.downloads.finished.connect(self._on_download_finished)
        self.downloads.failed.connect(self._on_download_failed)
        self.downloads.stopped.connect(self._on_download_stopped)

        # the editor keeps counting while the page is open: reload its numbers now and then
        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(STATS_REFRESH_MS)
        self._stats_timer.timeout.connect(self.refresh_stats)

        self._build_ui()
        self._populate_filters()
        self.table_model.dataChanged.connect(self._on_rows_changed)
        self.table_model.modelReset.connect(self._update_details)
        self.refresh()
        self._compute_fit()
        self.refresh_stats()

    # ================================================================ UI construction

    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 12, 12, 12)
        outer.setSpacing(8)

        # --- what the page shows: the catalog, a Hub search, or what the labs published lately
        modes = QHBoxLayout()
        self.mode_group = QButtonGroup(self)
        self.catalog_mode_button = QPushButton("Catalog", self)
        self.hub_mode_button = QPushButton("Search the Hub", self)
        self.hub_mode_button.setToolTip("Find any GGUF model on the Hugging Face Hub")
        self.labs_mode_button = QPushButton("New from the labs", self)
        self.labs_mode_button.setToolTip("The newest GGUF models of trusted publishers")
        for index, button in enumerate(
            (self.catalog_mode_button, self.hub_mode_button, self.labs_mode_button)
        ):
            button.setCheckable(True)
            self.mode_group.addButton(button, index)
            modes.addWidget(button)
        self.catalog_mode_button.setChecked(True)
        self.mode_group.idClicked.connect(self._set_mode)
        modes.addStretch(1)
        outer.addLayout(modes)

        # --- filter bar
        bar = QHBoxLayout()
        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search models (name, family, quant, description)…")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(self.proxy.set_text)
        self.family_combo = QComboBox(self)
        self.family_combo.setToolTip("Show one model family")
        self.family_combo.currentIndexChanged.connect(
            lambda _i: self.proxy.set_family(self.family_combo.currentData())
        )
        self.role_combo = QComboBox(self)
        self.role_combo.setToolTip("Chat models answer questions; completion models fill in code")
        self.role_combo.addItem("All roles", "")
        self.role_combo.addItem("Chat", "chat")
        self.role_combo.addItem("Completion", "completion")
        self.role_combo.currentIndexChanged.connect(
            lambda _i: self.proxy.set_role(self.role_combo.currentData())
        )
        self.installed_only = QCheckBox("Installed only", self)
        self.installed_only.toggled.connect(self.proxy.set_installed_only)
        self.import_button = QPushButton("Import GGUF…", self)
        self.import_button.setToolTip("Register a .gguf file from disk (or drop one on this page)")
        self.import_button.clicked.connect(self.choose_and_import)
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.family_combo)
        bar.addWidget(self.role_combo)
        bar.addWidget(self.installed_only)
        bar.addWidget(self.import_button)
        self.scan_button = QPushButton("Scan disk…", self)
        self.scan_button.setToolTip(
            "Find models already in the Hugging Face cache, Ollama, LM Studio or your folders"
        )
        self.scan_button.clicked.connect(self.scan_disk)
        bar.addWidget(self.scan_button)
        outer.addLayout(bar)

        # --- errors (hanlin.desktop.errors' banner) and short notes
        self.error_banner = ErrorBanner(self)
        outer.addWidget(self.error_banner)
        self.info_label = QLabel(self)
        self.info_label.setObjectName("modelsInfo")
        self.info_label.setWordWrap(True)
        self.info_label.hide()
        outer.addWidget(self.info_label)

        # --- table
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.view = QTableView(splitter)
        self.view.setObjectName("catalogView")
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # catalog order until clicked
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setShowGrid(False)
        self.view.verticalHeader().hide()
        self.view.setItemDelegateForColumn(Column.STATUS, ProgressDelegate(self.view))
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.doubleClicked.connect(self._on_double_click)
        for keys, slot in (
            (QKeySequence.StandardKey.Delete, lambda: self._act(self.delete)),
            (QKeySequence(Qt.Key.Key_Return), lambda: self._act(self._primary_action)),
            (QKeySequence(Qt.Key.Key_Enter), lambda: self._act(self._primary_action)),
        ):
            shortcut = QAction(self.view)
            shortcut.setShortcut(QKeySequence(keys))
            shortcut.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.triggered.connect(slot)
            self.view.addAction(shortcut)
        header = self.view.horizontalHeader()
        # Interactive + resizeColumnsToContents() after each load: ResizeToContents would
        # measure every cell again on every progress update
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(Column.STATUS, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(48)
        # "Used for" is also in the Status text ("Installed · chat"): keep the table narrow
        self.view.setColumnHidden(Column.USED_FOR, True)
        self.view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self._fit_columns()

        # --- details + stats
        lower = QWidget(splitter)
        lower_layout = QHBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        self.details = ModelDetailsPane(lower)
        d = self.details
        # the pane's widgets, under the page's names (tests and the main window use them)
        self.progress_bar, self.progress_label = d.progress_bar, d.progress_label
        self.download_button, self.pause_button = d.download_button, d.pause_button
        self.resume_button, self.cancel_button = d.resume_button, d.cancel_button
        self.delete_button = d.delete_button
        self.use_chat_button, self.use_completion_button = (
            d.use_chat_button,
            d.use_completion_button,
        )
        self.download_button.clicked.connect(lambda: self._act(self.download))
        self.resume_button.clicked.connect(lambda: self._act(self.download))
        self.pause_button.clicked.connect(lambda: self._act(self.pause))
        self.cancel_button.clicked.connect(lambda: self._act(self.cancel_download))
        self.delete_button.clicked.connect(lambda: self._act(self.delete))
        self.use_chat_button.clicked.connect(lambda: self._act(lambda i: self.use_for(i, "chat")))
        self.use_completion_button.clicked.connect(
            lambda: self._act(lambda i: self.use_for(i, "completion"))
        )
        lower_layout.addWidget(self.details, 1)
        self.stats_panel = CompletionStatsPanel(lower)
        lower_layout.addWidget(self.stats_panel)
        lower.setMinimumHeight(max(230, lower.sizeHint().height()))
        self.view.verticalHeader().setDefaultSectionSize(self.view.fontMetrics().height() + 10)
        splitter.addWidget(self.view)
        splitter.addWidget(lower)
        splitter.setCollapsible(1, False)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(splitter)
        self.hub_panel = HubSearchPanel(
            self._runner, self._store, self.downloads, self.table_model, self.stack
        )
        self.stack.addWidget(self.hub_panel)
        self.disk_scan_dialog: Any = None
        outer.addWidget(self.stack, 1)

        footer = QHBoxLayout()
        self.chosen_label = QLabel(self)
        self.chosen_label.setObjectName("chosenModels")
        self.disk_label = QLabel(self)
        self.disk_label.setObjectName("modelsDisk")
        self.disk_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        footer.addWidget(self.chosen_label, 1)
        footer.addWidget(self.disk_label)
        outer.addLayout(footer)
        self._update_chosen_label()
        self._update_details()

    def _populate_filters(self) -> None:
        current = self.family_combo.currentData()
        self.family_combo.blockSignals(True)
        self.family_combo.clear()
        self.family_combo.addItem("All families", "")
        for family in self.table_model.families():
            self.family_combo.addItem(family, family)
        index = self.family_combo.findData(current) if current else 0
        self.family_combo.setCurrentIndex(max(0, index))
        self.family_combo.blockSignals(False)

    # ================================================================ public actions

    def refresh(self) -> None:
        """Re-read installed models, partial downloads and the chosen models (worker)."""
        store, ids = self._store, set(self._catalog_ids)

        def scan(cancel: CancelToken, report: ProgressCallback) -> StoreSnapshot:
            return scan_store(store, ids)

        self._scan_pending = True
        self._runner.submit(
            scan, on_done=self._apply_snapshot, on_error=self._on_scan_error, key="models:scan"
        )

    def refresh_stats(self) -> None:
        """Reload the editor-completion statistics (worker)."""

        def load(cancel: CancelToken, report: ProgressCallback) -> Any:
            from hanlin.engine.completion.stats import load_completion_stats

            return load_completion_stats()

        self._runner.submit(
            load, on_done=self.stats_panel.set_stats, on_error=self.show_error, key="models:stats"
        )

    def select_model(self, model_id: str) -> bool:
        """Select a row by id (clears filters that hide it). True if the id is listed."""
        row = self.table_model.row_for(model_id)
        if row is None:
            return False
        proxy_index = self.proxy.mapFromSource(self.table_model.index(row, 0))
        if not proxy_index.isValid():
            self.search_edit.clear()
            self.family_combo.setCurrentIndex(0)
            self.role_combo.setCurrentIndex(0)
            self.installed_only.setChecked(False)
            proxy_index = self.proxy.mapFromSource(self.table_model.index(row, 0))
        self.view.selectRow(proxy_index.row())
        self.view.scrollTo(proxy_index)
        return True

    def selected_id(self) -> str | None:
        indexes = self.view.selectionModel().selectedRows()
        if not indexes:
            return None
        return indexes[0].data(IdRole)

    def download(self, model_id: str) -> None:
        """Start (or resume) downloading a catalog model."""
        self.clear_message()
        self.downloads.start(model_id)
        self._update_details()

    def pause(self, model_id: str) -> None:
        """Stop the download, keeping the partial file for Resume."""
        self.downloads.pause(model_id)
        self._update_details()

    def cancel_download(self, model_id: str) -> None:
        """Stop the download (if running) and delete its partial file."""
        self.downloads.cancel(model_id)
        self._update_details()

    def delete(self, model_id: str, *, confirm: bool = True) -> None:
        """Delete an installed model's file (after asking), clearing it from the settings."""
        row = self.table_model.model_row(model_id)
        if row is None:
            return
        if self.table_model.status_of(model_id) != INSTALLED:
            self.cancel_download(model_id)
            return
        owned = _store_owns(self._store, row.installed_path)
        if confirm:
            consequence = (
                "The file is removed from disk; you can download it again later."
                if owned
                else "Hanlin forgets it; the file itself stays where it is."
            )
            answer = QMessageBox.question(
                self,
                "Delete model",
                f"Delete {row.name}?\n\n{row.installed_path}\n\n{consequence}",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        store = self._store

        def remove(cancel: CancelToken, report: ProgressCallback) -> None:
            from hanlin.engine.core.settings import load_settings, update_settings

            store.remove(model_id)
            current = load_settings().settings
            changes = {
                key: None
                for key in ("chat_model", "completion_model")
                if getattr(current, key) == model_id
            }
            if changes:
                update_settings(**changes)

        self._runner.submit(
            remove,
            on_done=lambda _r: self._after_change(
                f"Deleted {row.name}." if owned else f"Removed {row.name} from the list."
            ),
            on_error=self.show_error,
            key=f"remove:{model_id}",
        )

    def use_for(self, model_id: str, role: str) -> None:
        """Choose the model for "chat" or "completion" (written to settings.toml)."""
        key = _SETTING_FOR_ROLE[role]

        def write(cancel: CancelToken, report: ProgressCallback) -> tuple[str | None, str | None]:
            from hanlin.engine.core.settings import update_settings

            settings = update_settings(**{key: model_id})
            return settings.chat_model, settings.completion_model

        def done(chosen: tuple[str | None, str | None]) -> None:
            self.table_model.set_chosen(*chosen)
            self._update_chosen_label()
            self._update_details()
            self.modelsChanged.emit()

        self._runner.submit(write, on_done=done, on_error=self.show_error, key=f"use:{role}")

    def show_catalog(self) -> None:
        self._set_mode(0)

    def show_hub_search(self) -> None:
        """The "Search the Hub" view (nothing is fetched until the user searches)."""
        self._set_mode(1)

    def show_new_from_labs(self) -> None:
        """The "New from the labs" view: asks the Hub the first time it is opened (worker)."""
        self._set_mode(2)

    def _set_mode(self, index: int) -> None:
        self.mode_group.button(index).setChecked(True)
        in_catalog = index == 0
        for widget in (
            self.search_edit,
            self.family_combo,
            self.role_combo,
            self.installed_only,
            self.import_button,
            self.scan_button,
        ):
            widget.setVisible(in_catalog)  # the catalog's own tools
        self.stack.setCurrentIndex(0 if in_catalog else 1)
        if index == 1:
            self.hub_panel.show_search()
        elif index == 2:
            self.hub_panel.show_labs()

    def scan_disk(self) -> None:
        """Open the "Scan disk" dialog and start a scan (worker)."""
        from hanlin.desktop.models_page.disk_scan_dialog import DiskScanDialog

        if self.disk_scan_dialog is None:
            self.disk_scan_dialog = DiskScanDialog(self._runner, self._store, self)
            self.disk_scan_dialog.registered.connect(
                lambda models: self._after_change(
                    f"Registered {len(models)} model{'s' if len(models) != 1 else ''}"
                    " from this disk in place (nothing copied)."
                )
            )
        self.disk_scan_dialog.show()
        self.disk_scan_dialog.raise_()
        self.disk_scan_dialog.scan()

    def choose_and_import(self) -> None:
        """Ask for a .gguf file and import it."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Import a GGUF model", str(Path.home()), GGUF_FILTER
        )
        if path:
            self.import_paths([Path(path)])

    def import_paths(self, paths: list[Path]) -> None:
        """Import GGUF files (worker); a bad file shows an error and the rest go on."""
        store = self._store
        for path in paths:
            if path.suffix.lower() != ".gguf":
                self.show_error(
                    ModelFileError(
                        f"{path.name} is not a .gguf file.",
                        "Hanlin runs GGUF models: download a .gguf build of the model.",
                    )
                )
                continue

            def do_import(cancel: CancelToken, report: ProgressCallback, p: Path = path) -> Any:
                return store.import_file(p)

            self.show_info(f"Importing {path.name}…")
            self._runner.submit(
                do_import,
                on_done=lambda model, p=path: self._after_change(
                    f"Imported {p.name} as {model.id}.", select=model.id
                ),
                on_error=self.show_error,
                key=f"import:{path}",
            )

    # ================================================================ messages

    def show_error(self, error: BaseException) -> None:
        """Show an error inline (what happened — what to do next); the page keeps working.

        A bug (anything but a HanlinError or an OSError) is shown too, then re-raised so
        the application's excepthook reports it (and a test fails).
        """
        self.info_label.hide()
        text = self.error_banner.show_error(error)
        self.last_error = text.one_line()
        self.errorShown.emit(self.last_error)
        if not text.expected:
            raise error

    def show_info(self, text: str) -> None:
        """A short note under the filter bar (what just happened)."""
        self.info_label.setText(text)
        self.info_label.show()

    def clear_message(self) -> None:
        self.error_banner.dismiss()
        self.info_label.hide()
        self.info_label.clear()

    # ================================================================ drag and drop

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _local_files(event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        files = _local_files(event.mimeData().urls())
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_paths(files)

    # ================================================================ events

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # the CLI or the editor may have changed things while the page was hidden
        if not self._scan_pending:
            self.refresh()
            self.refresh_stats()
        self._stats_timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._stats_timer.stop()

    # ================================================================ internals

    def _act(self, action: Any) -> None:
        model_id = self.selected_id()
        if model_id is not None:
            action(model_id)

    def _compute_fit(self) -> None:
        """Estimated sizes (quick), then fit verdicts (detects the hardware): on workers."""
        entries = list(self._entries)

        def sizes(cancel: CancelToken, report: ProgressCallback) -> dict[str, int]:
            return estimate_sizes(entries)

        def fit(cancel: CancelToken, report: ProgressCallback) -> dict[str, Any]:
            return fit_for_catalog(entries)

        self._runner.submit(
            sizes, on_done=self._apply_estimates, on_error=self.show_error, key="models:sizes"
        )
        self._runner.submit(
            fit, on_done=self._apply_catalog_verdicts, on_error=self.show_error, key="models:fit"
        )

    def _apply_estimates(self, estimates: dict[str, int]) -> None:
        self.table_model.set_estimates(estimates)
        self._fit_columns()
        self._update_details()

    def _fit_columns(self) -> None:
        """Size the columns to their text once per data load, not on every change.

        Measured with font metrics here: QTableView.resizeColumnsToContents() asks the
        style for every cell's size hint, which took a second under the app's stylesheet.
        """
        model = self.table_model
        plain = self.view.fontMetrics()
        bold_font = self.view.font()
        bold_font.setBold(True)
        bold = QFontMetrics(bold_font)
        header = self.view.horizontalHeader()
        header_metrics = header.fontMetrics()
        padding = 2 * self.view.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin) + 8
        display = Qt.ItemDataRole.DisplayRole
        for column in Column:
            if column == Column.STATUS or self.view.isColumnHidden(column):
                continue
            title = str(model.headerData(column, Qt.Orientation.Horizontal, display) or "")
            width = header_metrics.horizontalAdvance(title) + 14  # room for the sort arrow
            for text, is_bold in model.column_texts(column):
                metrics = bold if is_bold else plain
                width = max(width, metrics.horizontalAdvance(text) + padding)
            header.resizeSection(column, width)

    def _apply_catalog_verdicts(self, verdicts: dict[str, Any]) -> None:
        self._catalog_verdicts = verdicts
        self.table_model.set_verdicts({**self._extra_verdicts, **verdicts})
        self._fit_columns()
        self._update_details()

    def _apply_snapshot(self, snap: StoreSnapshot) -> None:
        self._scan_pending = False
        self.table_model.set_store_state(snap.installed, snap.partials)
        self._extra_verdicts = snap.verdicts
        self.table_model.set_verdicts({**snap.verdicts, **self._catalog_verdicts})
        self.table_model.set_chosen(snap.chat_model, snap.completion_model)
        if snap.models_dir is not None:
            free = f", {human_bytes(snap.free_bytes)} free" if snap.free_bytes is not None else ""
            self.disk_label.setText(f"Models: {human_bytes(snap.used_bytes)}{free}")
            self.disk_label.setToolTip(f"Downloaded models live in {snap.models_dir}")
        self._populate_filters()
        self._update_chosen_label()
        self._fit_columns()
        if self._pending_select and self.select_model(self._pending_select):
            self._pending_select = None
        self._update_details()
        ids = {m.id for m in snap.installed}
        if self._installed_ids is not None and ids != self._installed_ids:
            self.modelsChanged.emit()
        self._installed_ids = ids

    def _on_scan_error(self, error: BaseException) -> None:
        self._scan_pending = False
        self.show_error(error)

    def _after_change(self, message: str, *, select: str | None = None) -> None:
        self.show_info(message)
        if select and not self.select_model(select):
            self._pending_select = select  # selected once the rescan lists it
        self.refresh()
        self.modelsChanged.emit()

    def _on_download_finished(self, model_id: str, installed: Any) -> None:
        row = self.table_model.model_row(model_id)
        self._after_change(f"Downloaded {row.name if row else model_id}.")

    def _on_download_failed(self, model_id: str, error: BaseException) -> None:
        self.show_error(error)
        self.refresh()

    def _on_download_stopped(self, model_id: str, how: str) -> None:
        row = self.table_model.model_row(model_id)
        name = row.name if row else model_id
        if how == CANCELLED:
            self.show_info(f"Cancelled the download of {name}; the partial file was deleted.")
        else:
            self.show_info(
                f"Paused {name}. Resume continues where it stopped, even after a restart."
            )
        self.refresh()

    def _on_selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._update_details()

    def _on_rows_changed(
        self, top_left: QModelIndex, bottom_right: QModelIndex, _roles: Any = None
    ) -> None:
        model_id = self.selected_id()
        if model_id is None:
            return
        row = self.table_model.row_for(model_id)
        if row is not None and top_left.row() <= row <= bottom_right.row():
            self._update_details()

    def _on_double_click(self, index: QModelIndex) -> None:
        model_id = index.data(IdRole)
        if model_id:
            self._primary_action(model_id)

    def _primary_action(self, model_id: str) -> None:
        """Enter / double-click: download or resume; use an installed model for chat."""
        status = self.table_model.status_of(model_id)
        row = self.table_model.model_row(model_id)
        if status in (AVAILABLE, PARTIAL):
            self.download(model_id)
        elif (
            status == INSTALLED
            and row is not None
            and "chat" in row.roles
            and self.table_model.chosen()[0] != model_id
        ):
            self.use_for(model_id, "chat")

    def _context_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        self.view.selectRow(index.row())
        menu = QMenu(self)
        for action in self._actions_for(index.data(IdRole)):
            menu.addAction(action)
        if not menu.isEmpty():
            menu.popup(self.view.viewport().mapToGlobal(pos))

    def _actions_for(self, model_id: str) -> list[QAction]:
        """The per-row actions available now, for the context menu."""
        status = self.table_model.status_of(model_id)
        row = self.table_model.model_row(model_id)
        chat, completion = self.table_model.chosen()
        actions: list[tuple[str, Any]] = []
        if status == AVAILABLE:
            actions.append(("Download", lambda: self.download(model_id)))
        elif status == PARTIAL:
            actions += [
                ("Resume", lambda: self.download(model_id)),
                ("Cancel and delete partial", lambda: self.cancel_download(model_id)),
            ]
        elif status == DOWNLOADING:
            actions += [
                ("Pause", lambda: self.pause(model_id)),
                ("Cancel", lambda: self.cancel_download(model_id)),
            ]
        elif status == INSTALLED and row is not None:
            if "chat" in row.roles and chat != model_id:
                actions.append(("Use for chat", lambda: self.use_for(model_id, "chat")))
            if "completion" in row.roles and completion != model_id:
                actions.append(("Use for completion", lambda: self.use_for(model_id, "completion")))
            if row.installed_path is not None:
                folder = row.installed_path.parent
                actions.append(("Show in folder", lambda: _open_folder(folder)))
            actions.append(("Delete…", lambda: self.delete(model_id)))
        out = []
        for text, slot in actions:
            action = QAction(text, self)
            action.triggered.connect(slot)
            out.append(action)
        return out

    def _update_chosen_label(self) -> None:
        chat, completion = self.table_model.chosen()

        def name(model_id: str | None) -> str:
            if not model_id:
                return "none chosen"
            row = self.table_model.model_row(model_id)
            return row.name if row else model_id

        self.chosen_label.setText(
            f"Chat model: <b>{html.escape(name(chat))}</b> &nbsp;·&nbsp; "
            f"Editor completion model: <b>{html.escape(name(completion))}</b>"
        )

    def _update_details(self) -> None:
        self.details.show_model(self.table_model, self.selected_id())


def _store_owns(store: Any, path: Path | None) -> bool:
    """Whether deleting this model deletes its file (it lives in the models folder)."""
    owns = getattr(store, "owns_path", None)
    if path is None or owns is None:
        return True
    return bool(owns(path))


def _open_folder(folder: Path) -> None:
    from PySide6.QtGui import QDesktopServices

    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def _local_files(urls: list[QUrl]) -> list[Path]:
    return [Path(u.toLocalFile()) for u in urls if u.isLocalFile() and u.toLocalFile()]
