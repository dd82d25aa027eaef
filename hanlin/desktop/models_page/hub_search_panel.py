"""The Models page's "Search the Hub" and "New from the labs" views.

What the user sees: a search box (text, author, most downloaded / recently updated), or
the newest GGUF repos of the trusted publishers; each repo with its GGUF files grouped
by quantization (a split set is one line with its total size), each with a fit verdict
for this machine; one click (Download, or a double-click) pulls it, with its progress in
the line. Gated repos say where to accept the license; offline mode says so.

How it is built: every Hub call runs on the page's `TaskRunner` (engine/store/
hub_search.py): one task for the repo list, then one per repo for its files (so lines
fill in as answers arrive, and a newer search makes the older answers stale). Nothing
is fetched until the user searches or opens "New from the labs". Downloads go through
the page's `DownloadManager` (keyed by the pull ref), so Pause, quitting and the
catalog table behave as for any other download; this panel only mirrors their state.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hanlin.desktop.errors import ErrorBanner
from hanlin.desktop.models_page.format import human_bytes, human_rate
from hanlin.desktop.tasks import TaskRunner
from hanlin.engine.core.cancel import CancelToken, ProgressCallback

SEARCH = "search"
LABS = "labs"

#: columns of the result tree
NAME, SIZE, FIT, FAMILY, ROLES, STATUS = range(6)
HEADERS = ("Model / file", "Size", "Fit", "Family (guess)", "Roles", "Status")
FIT_WORDS = {"fits": "Fits", "tight": "Tight", "wont_fit": "Won't fit"}
FIT_COLORS = {"fits": "#2e7d32", "tight": "#b26a00", "wont_fit": "#c62828"}

#: item data: ("repo", HubRepo) or ("group", HubFileGroup) or ("note", None)
KindRole = Qt.ItemDataRole.UserRole + 10

#: how many repos a search or "New from the labs" shows
SEARCH_LIMIT = 20
LABS_LIMIT = 24


class HubSearchPanel(QWidget):
    """Search the Hub / New from the labs: repos, their file groups, fit, one-click pulls."""

    #: a repo or file list arrived (for tests and the status bar)
    resultsChanged = Signal()
    #: an error was shown in the panel (its one-line text)
    errorShown = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        store: Any,
        downloads: Any,
        table: Any,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("hubSearchPanel")
        self._runner = runner
        self._store = store
        self._downloads = downloads
        self._table = table
        self.mode = SEARCH
        self.labs_loaded = False
        self.last_error: str | None = None
        self._generation = 0
        self._repo_items: dict[str, QTreeWidgetItem] = {}
        self._group_items: dict[str, QTreeWidgetItem] = {}
        self._installed: set[str] = set()
        self._pending_files = 0
        self._build_ui()
        downloads.finished.connect(self._on_download_finished)
        downloads.failed.connect(lambda ref, _e: self._refresh_group(ref))
        downloads.stopped.connect(lambda ref, _how: self._refresh_group(ref))
        self._timer = QTimer(self)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self._refresh_running)

    # ================================================================ UI

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.search_bar = QWidget(self)
        bar = QHBoxLayout(self.search_bar)
        bar.setContentsMargins(0, 0, 0, 0)
        self.query_edit = QLineEdit(self.search_bar)
        self.query_edit.setPlaceholderText("Search GGUF models on the Hub (e.g. qwen3)")
        self.query_edit.setClearButtonEnabled(True)
        self.query_edit.returnPressed.connect(self.search)
        self.author_edit = QLineEdit(self.search_bar)
        self.author_edit.setPlaceholderText("Publisher (optional)")
        self.author_edit.setToolTip("Only repositories of this user or organisation, e.g. unsloth")
        self.author_edit.returnPressed.connect(self.search)
        self.sort_combo = QComboBox(self.search_bar)
        self.sort_combo.addItem("Most downloaded", "downloads")
        self.sort_combo.addItem("Recently updated", "updated")
        self.search_button = QPushButton("Search", self.search_bar)
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        bar.addWidget(self.query_edit, 3)
        bar.addWidget(self.author_edit, 1)
        bar.addWidget(self.sort_combo)
        bar.addWidget(self.search_button)
        layout.addWidget(self.search_bar)

        self.labs_bar = QWidget(self)
        labs = QHBoxLayout(self.labs_bar)
        labs.setContentsMargins(0, 0, 0, 0)
        self.labs_label = QLabel(self.labs_bar)
        self.labs_label.setWordWrap(True)
        self.refresh_button = QPushButton("Refresh", self.labs_bar)
        self.refresh_button.setToolTip("Ask the Hub again")
        self.refresh_button.clicked.connect(self.load_labs)
        labs.addWidget(self.labs_label, 1)
        labs.addWidget(self.refresh_button)
        layout.addWidget(self.labs_bar)
        self.labs_bar.hide()

        self.error_banner = ErrorBanner(self)
        layout.addWidget(self.error_banner)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("hubStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)

        self.tree = QTreeWidget(self)
        self.tree.setObjectName("hubResults")
        self.tree.setColumnCount(len(HEADERS))
        self.tree.setHeaderLabels(list(HEADERS))
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(STATUS, QHeaderView.ResizeMode.Stretch)
        self.tree.setColumnWidth(NAME, 380)
        self.tree.itemSelectionChanged.connect(self._update_details)
        self.tree.itemDoubleClicked.connect(lambda item, _c: self._activate(item))
        layout.addWidget(self.tree, 1)

        details = QHBoxLayout()
        self.details_label = QLabel(self)
        self.details_label.setObjectName("hubDetails")
        self.details_label.setWordWrap(True)
        self.details_label.setTextFormat(Qt.TextFormat.RichText)
        self.details_label.setOpenExternalLinks(True)
        self.download_button = QPushButton("Download", self)
        self.download_button.clicked.connect(self.download_selected)
        self.open_button = QPushButton("Open on the Hub", self)
        self.open_button.clicked.connect(self._open_selected)
        details.addWidget(self.details_label, 1)
        details.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignTop)
        details.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(details)
        self.status_label.setText(
            "Search the Hugging Face Hub for GGUF models; each file shows whether it fits."
        )
        self._update_details()

    # ================================================================ modes

    def show_search(self) -> None:
        """The search view (fetches nothing until the user searches)."""
        if self.mode != SEARCH:
            self.mode = SEARCH
            self._clear_results()
            self.status_label.setText(
                "Search the Hugging Face Hub for GGUF models; each file shows whether it fits."
            )
        self.search_bar.show()
        self.labs_bar.hide()
        self.query_edit.setFocus()

    def show_labs(self) -> None:
        """The "New from the labs" view; the first time, asks the Hub (on a worker)."""
        switched = self.mode != LABS
        self.mode = LABS
        self.search_bar.hide()
        self.labs_bar.show()
        if switched or not self.labs_loaded:
            self.load_labs()

    # ================================================================ actions

    def search(self) -> None:
        """Search the Hub for the text and publisher in the boxes (worker)."""
        from hanlin.engine.store.hub_search import search_hub

        query = self.query_edit.text().strip()
        author = self.author_edit.text().strip() or None
        sort = self.sort_combo.currentData()
        if not query and not author:
            self.status_label.setText("Type what to look for, e.g. qwen3 or glm-4.")
            return

        def find(cancel: CancelToken, report: ProgressCallback) -> Any:
            return search_hub(query, author=author, sort=sort, limit=SEARCH_LIMIT, cancel=cancel)

        label = f"`{query}`" if query else f"models of {author}"
        self._start(f"Searching the Hub for {html.escape(label)}…")
        generation = self._generation
        self._runner.submit(
            find,
            on_done=lambda repos: self._show_repos(generation, repos, f"for {label}"),
            on_error=self._show_error,
            key="hub:list",
        )

    def load_labs(self) -> None:
        """The newest GGUF repos of the trusted publishers (worker)."""
        from hanlin.engine.store.hub_search import new_from_labs, trusted_publishers

        def find(cancel: CancelToken, report: ProgressCallback) -> Any:
            publishers = trusted_publishers()
            return new_from_labs(publishers, limit=LABS_LIMIT, per_publisher=8, cancel=cancel)

        self.labs_loaded = True
        self._start("Asking the Hub what the labs published lately…")
        self.labs_label.setText("The most recently updated GGUF repos of trusted publishers.")
        generation = self._generation

        def done(result: Any) -> None:
            names = ", ".join(result.publishers)
            text = f"Newest GGUF repos from {names}"
            if result.failed:
                text += f" (could not read {', '.join(result.failed)})"
            self.labs_label.setText(text + ". Change the list with trusted_publishers.")
            self._show_repos(generation, result.repos, "from the labs")

        self._runner.submit(find, on_done=done, on_error=self._show_error, key="hub:list")

    def download_selected(self) -> None:
        """Pull the selected file group (or pause it while it downloads)."""
        group = self.selected_group()
        if group is None or not group.complete:
            return
        ref = group.ref
        if self._downloads.is_running(ref):
            self._downloads.pause(ref)
        elif ref not in self._installed:
            self.error_banner.dismiss()
            self._downloads.start(ref, ref)
            self._timer.start()
        self._refresh_group(ref)
        self._update_details()

    # ================================================================ queries

    def group_refs(self) -> list[str]:
        """The pull refs of every file group shown, in the order shown."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            repo = self.tree.topLevelItem(i)
            for j in range(repo.childCount()):
                kind, group = _kind(repo.child(j))
                if kind == "group":
                    out.append(group.ref)
        return out

    def repo_names(self) -> list[str]:
        return list(self._repo_items)

    def group_item(self, ref: str) -> QTreeWidgetItem | None:
        return self._group_items.get(ref)

    def select_group(self, ref: str) -> bool:
        item = self._group_items.get(ref)
        if item is None:
            return False
        item.parent().setExpanded(True)
        self.tree.setCurrentItem(item)
        return True

    def selected_group(self) -> Any:
        item = self.tree.currentItem()
        kind, value = _kind(item)
        return value if kind == "group" else None

    def busy(self) -> bool:
        return self._pending_files > 0

    # ================================================================ results

    def _start(self, text: str) -> None:
        self._generation += 1
        self.error_banner.dismiss()
        self.last_error = None
        self._clear_results()
        self.status_label.setText(text)

    def _clear_results(self) -> None:
        self.tree.clear()
        self._repo_items.clear()
        self._group_items.clear()
        self._pending_files = 0
        self._update_details()

    def _show_repos(self, generation: int, repos: list[Any], what: str) -> None:
        if generation != self._generation:
            return
        self._clear_results()
        if not repos:
            self.status_label.setText(f"No GGUF repositories {html.escape(what)}.")
            self.resultsChanged.emit()
            return
        self.status_label.setText(
            f"{len(repos)} GGUF repositor{'y' if len(repos) == 1 else 'ies'} {what};"
            " expand one to see its files."
        )
        for repo in repos:
            item = QTreeWidgetItem(self.tree)
            item.setText(NAME, repo.repo)
            item.setText(FAMILY, repo.family)
            item.setText(ROLES, ", ".join(repo.roles))
            item.setText(STATUS, _repo_facts(repo))
            item.setData(NAME, KindRole, ("repo", repo))
            tip = repo.page_url
            if repo.gated:
                tip += "\nGated: accept the license on the Hub and set HF_TOKEN to download."
            item.setToolTip(NAME, tip)
            loading = QTreeWidgetItem(item)
            loading.setText(NAME, "Listing files…")
            loading.setData(NAME, KindRole, ("note", None))
            self._repo_items[repo.repo] = item
            self._fetch_files(generation, repo)
        if self.tree.topLevelItemCount():
            self.tree.topLevelItem(0).setExpanded(True)
        self.resultsChanged.emit()

    def _fetch_files(self, generation: int, repo: Any) -> None:
        store = self._store

        def files(cancel: CancelToken, report: ProgressCallback) -> Any:
            from hanlin.engine.runtime.hardware import detect_hardware
            from hanlin.engine.store.hub_search import list_gguf_files

            groups = list_gguf_files(
                repo, hw=detect_hardware(), catalog=store.catalog, cancel=cancel
            )
            models = store.installed()
            names = {(m.repo.lower(), m.file) for m in models if m.repo and m.file}
            ids = {m.id for m in models}
            installed = {
                g.ref
                for g in groups
                if (g.repo.lower(), g.first_file) in names or (g.catalog_id in ids)
            }
            return groups, installed

        self._pending_files += 1
        self._runner.submit(
            files,
            on_done=lambda answer: self._show_files(generation, repo, answer),
            on_error=lambda error: self._show_files_error(generation, repo, error),
            key=f"hub:files:{repo.repo}",
        )

    def _show_files(self, generation: int, repo: Any, answer: Any) -> None:
        if generation != self._generation:
            return
        self._pending_files -= 1
        groups, installed = answer
        self._installed |= installed
        item = self._repo_items.get(repo.repo)
        if item is None:
            return
        item.takeChildren()
        if not groups:
            note = QTreeWidgetItem(item)
            note.setText(NAME, "No GGUF model files (only projectors or other formats)")
            note.setData(NAME, KindRole, ("note", None))
        for group in groups:
            child = QTreeWidgetItem(item)
            child.setData(NAME, KindRole, ("group", group))
            child.setText(NAME, _group_name(group))
            child.setToolTip(NAME, "\n".join(group.files))
            child.setText(SIZE, human_bytes(group.size_bytes) if group.size_bytes else "?")
            child.setTextAlignment(SIZE, Qt.AlignmentFlag.AlignRight)
            if group.fit is not None:
                child.setText(FIT, FIT_WORDS.get(group.fit.level, group.fit.level))
                child.setForeground(FIT, QBrush(QColor(FIT_COLORS.get(group.fit.level, "#666"))))
                child.setToolTip(FIT, group.fit.reason)
            child.setText(FAMILY, repo.family)
            child.setText(ROLES, ", ".join(repo.roles))
            self._group_items[group.ref] = child
            self._refresh_group(group.ref)
        self._update_details()
        self.resultsChanged.emit()

    def _show_files_error(self, generation: int, repo: Any, error: BaseException) -> None:
        if generation != self._generation:
            return
        self._pending_files -= 1
        from hanlin.desktop.errors import describe

        text = describe(error)
        if not text.expected:
            raise error
        item = self._repo_items.get(repo.repo)
        if item is None:
            return
        item.takeChildren()
        note = QTreeWidgetItem(item)
        note.setData(NAME, KindRole, ("note", None))
        note.setText(NAME, text.message)
        note.setToolTip(NAME, text.one_line())
        note.setText(STATUS, text.hint or "")
        note.setForeground(NAME, QBrush(QColor("#c62828")))
        item.setExpanded(True)
        self.resultsChanged.emit()

    def _show_error(self, error: BaseException) -> None:
        text = self.error_banner.show_error(error)
        self.last_error = text.one_line()
        self.status_label.setText("")
        self.errorShown.emit(self.last_error)
        if not text.expected:
            raise error

    # ================================================================ downloads

    def _on_download_finished(self, ref: str, installed: Any) -> None:
        if ref in self._group_items:
            self._installed.add(ref)
            self._refresh_group(ref)
            self._update_details()

    def _refresh_running(self) -> None:
        running = [ref for ref in self._group_items if self._downloads.is_running(ref)]
        for ref in running:
            self._refresh_group(ref)
        if not running:
            self._timer.stop()
        self._update_details()

    def _refresh_group(self, ref: str) -> None:
        item = self._group_items.get(ref)
        if item is None:
            return
        _, group = _kind(item)
        item.setText(STATUS, self._status_of(group))

    def _status_of(self, group: Any) -> str:
        ref = group.ref
        if not group.complete:
            return f"Incomplete on the Hub: {group.missing_text}"
        if self._downloads.is_running(ref):
            state = self._table.download(ref)
            if state is None or state.phase == "starting":
                return "Starting…"
            if state.phase != "downloading":
                return state.phase.capitalize() + "…"
            parts = [f"{state.percent}%" if state.percent is not None else human_bytes(state.done)]
            if state.rate:
                parts.append(human_rate(state.rate))
            return "Downloading " + " · ".join(parts)
        if ref in self._installed:
            return "Installed"
        if group.catalog_id:
            return f"In the catalog as {group.catalog_id}"
        return ""

    # ================================================================ details

    def _activate(self, item: QTreeWidgetItem) -> None:
        kind, _ = _kind(item)
        if kind == "group":
            self.download_selected()

    def _open_selected(self) -> None:
        item = self.tree.currentItem()
        kind, value = _kind(item)
        if kind == "group":
            item = item.parent()
            kind, value = _kind(item)
        if kind == "repo":
            QDesktopServices.openUrl(QUrl(value.page_url))

    def _update_details(self) -> None:
        item = self.tree.currentItem()
        kind, value = _kind(item)
        self.open_button.setVisible(kind in ("repo", "group"))
        self.download_button.setVisible(kind == "group")
        if kind == "repo":
            self.details_label.setText(_repo_details(value))
            return
        if kind != "group":
            self.details_label.setText(
                "Select a file to see whether it fits and to download it."
                if self._group_items
                else ""
            )
            return
        group = value
        _, repo = _kind(item.parent())
        running = self._downloads.is_running(group.ref)
        installed = group.ref in self._installed
        self.download_button.setText("Pause" if running else "Download")
        self.download_button.setEnabled(group.complete and not installed)
        self.details_label.setText(_group_details(group, repo, installed))


# =================================================================== words


def _kind(item: QTreeWidgetItem | None) -> tuple[str | None, Any]:
    if item is None:
        return None, None
    data = item.data(NAME, KindRole)
    return (data[0], data[1]) if isinstance(data, tuple) else (None, None)


def _group_name(group: Any) -> str:
    name = group.label
    if group.sharded:
        name += f"  ({group.shard_count} parts)"
    file = group.first_file.rsplit("/", 1)[-1]
    return f"{name}  —  {file}"


def _count(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + unit
    return str(n)


def _repo_facts(repo: Any) -> str:
    facts = []
    if repo.downloads is not None:
        facts.append(f"{_count(repo.downloads)} downloads")
    if repo.last_modified is not None:
        facts.append(f"updated {repo.last_modified.date().isoformat()}")
    if repo.gated:
        facts.append("gated: needs HF_TOKEN")
    return " · ".join(facts)


def _repo_details(repo: Any) -> str:
    url = html.escape(repo.page_url)
    text = f"<b>{html.escape(repo.repo)}</b> — <a href='{url}'>{url}</a><br>"
    text += html.escape(_repo_facts(repo))
    if repo.gated:
        text += (
            "<br>This repository is gated: accept its license on the Hub, then set the"
            " HF_TOKEN environment variable to a token of that account before downloading."
        )
    return text


def _group_details(group: Any, repo: Any, installed: bool) -> str:
    size = human_bytes(group.size_bytes) if group.size_bytes else "unknown size"
    parts = f" in {group.shard_count} parts" if group.sharded else ""
    text = f"<b>{html.escape(group.label)}</b> · {size}{parts} · "
    text += f"<code>hanlin models pull {html.escape(group.ref)}</code>"
    if group.fit is not None:
        word = FIT_WORDS.get(group.fit.level, group.fit.level)
        text += f"<br><b>{word}</b>: {html.escape(group.fit.reason)}"
    if repo is not None:
        text += (
            f"<br>Family <b>{html.escape(repo.family)}</b>, roles"
            f" {html.escape(', '.join(repo.roles))}: guessed from the name; Hanlin checks the"
            " file's own header after the download."
        )
        if repo.gated:
            text += "<br>Gated: accept the license on the Hub and set HF_TOKEN first."
    if installed:
        text += "<br>Installed: it is in the catalog list; use it for chat from there."
    return text


__all__ = ["LABS", "SEARCH", "HubSearchPanel"]
