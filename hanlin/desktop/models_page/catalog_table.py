"""The catalog as a Qt table model: one row per model the user can see.

Rows are every catalog entry, followed by installed models that are not in the
catalog (GGUF imports, pulls by Hub name). Each row joins what the engine knows
from four places — the catalog entry, the store (installed / partial on disk),
the fit verdict for this machine, and a running download — and the chosen chat
and completion models from the settings file. Widgets hold no state of their
own: the detail pane, the delegate and the filter all read this model.

Rows are kept stable by id (updates emit `dataChanged`, new imports are inserted,
removed imports are removed) so the view keeps its selection and scroll position.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from hanlin.desktop.models_page.format import human_bytes, human_eta, human_rate, percent
from hanlin.engine.core.units import parse_parameter_count

_Index = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    NAME = 0
    FAMILY = 1
    PARAMETERS = 2
    QUANT = 3
    SIZE = 4
    ROLES = 5
    LICENSE = 6
    STATUS = 7
    FIT = 8
    USED_FOR = 9


HEADERS = {
    Column.NAME: "Name",
    Column.FAMILY: "Family",
    Column.PARAMETERS: "Params",
    Column.QUANT: "Quant",
    Column.SIZE: "Size",
    Column.ROLES: "Roles",
    Column.LICENSE: "License",
    Column.STATUS: "Status",
    Column.FIT: "Fit",
    Column.USED_FOR: "Used for",
}

# Custom item data roles (read by the proxy, the delegate, the page and the tests).
IdRole = Qt.ItemDataRole.UserRole + 1
FamilyRole = Qt.ItemDataRole.UserRole + 2
RolesRole = Qt.ItemDataRole.UserRole + 3
StatusRole = Qt.ItemDataRole.UserRole + 4
ProgressRole = Qt.ItemDataRole.UserRole + 5  # 0..100, or -1 when no progress applies
FitLevelRole = Qt.ItemDataRole.UserRole + 6
SearchTextRole = Qt.ItemDataRole.UserRole + 7
SortRole = Qt.ItemDataRole.UserRole + 8
RowRole = Qt.ItemDataRole.UserRole + 9  # the ModelRow itself

_N_COLUMNS = len(Column)
_COLUMNS = tuple(Column)
_HANDLED_ROLES = frozenset(
    {
        Qt.ItemDataRole.DisplayRole,
        Qt.ItemDataRole.ToolTipRole,
        Qt.ItemDataRole.ForegroundRole,
        Qt.ItemDataRole.FontRole,
        Qt.ItemDataRole.TextAlignmentRole,
        *range(IdRole, RowRole + 1),
    }
)

# Row statuses.
AVAILABLE = "available"
PARTIAL = "partial"
DOWNLOADING = "downloading"
INSTALLED = "installed"

FIT_LABELS = {"fits": "Fits", "tight": "Tight", "wont_fit": "Won't fit"}
_FIT_COLORS = {"fits": QColor("#2e9d4f"), "tight": QColor("#c98a00"), "wont_fit": QColor("#d0453a")}
_PHASE_LABELS = {
    "starting": "Starting…",
    "verifying": "Verifying…",
    "pausing": "Pausing…",
    "cancelling": "Cancelling…",
}


@dataclass(frozen=True, slots=True)
class DownloadState:
    """A download the page is running now (not yet installed, not yet stopped)."""

    model_id: str
    phase: str = "starting"  # starting | downloading | verifying | pausing | cancelling
    done: float = 0.0
    total: float | None = None
    rate: float | None = None
    eta: float | None = None

    @property
    def percent(self) -> int | None:
        return percent(self.done, self.total)


@dataclass(frozen=True, slots=True)
class ModelRow:
    """Everything one row shows. Built from a catalog entry or an installed model."""

    id: str
    name: str
    family: str
    parameters: str
    quantization: str
    size_bytes: int | None
    roles: tuple[str, ...]
    license: str
    description: str
    source: str  # "catalog" for catalog entries; the store's source for the rest
    repo: str | None = None
    file: str | None = None
    context_length: int | None = None
    installed_path: Path | None = None
    installed_size: int | None = None
    partial_done: int | None = None
    partial_total: int | None = None
    fit_level: str | None = None
    fit_reason: str = ""
    in_catalog: bool = True
    #: parameters × bits per weight, when the catalog has no exact size
    estimated_size: int | None = None


@dataclass(frozen=True, slots=True)
class _NotedPartial:
    """What the page knows of a partial file until the store is scanned again."""

    id: str
    bytes_done: int
    total: int | None
    repo: str | None = None
    file: str | None = None


def row_from_entry(entry: Any) -> ModelRow:
    """A row for a catalog entry (hanlin.engine.models.catalog.CatalogEntry)."""
    return ModelRow(
        id=entry.id,
        name=entry.name,
        family=entry.family,
        parameters=entry.parameters or "",
        quantization=entry.quantization or "",
        size_bytes=entry.size_bytes,
        roles=tuple(entry.roles),
        license=entry.license or "",
        description=entry.description or "",
        source="catalog",
        repo=entry.repo,
        file=entry.file,
        context_length=entry.context_length,
    )


def row_from_installed(model: Any) -> ModelRow:
    """A row for an installed model that has no catalog entry (an engine `InstalledModel`)."""
    entry = getattr(model, "catalog_entry", None)
    if entry is not None:
        return replace(row_from_entry(entry), id=model.id)
    path = Path(model.path)
    source = getattr(model, "source", "import") or "import"
    origin = getattr(model, "origin", None)
    description = (
        f"Imported from {path}"
        if source == "import"
        else f"Pulled from the Hub: {model.repo}/{model.file}"
    )
    if origin:  # found by a disk scan, registered in place
        description = (
            f"Found in {_origin_label(origin)}: {path} — removing it from Hanlin keeps the file"
        )
    return ModelRow(
        id=model.id,
        name=path.stem if source == "import" and origin != "ollama" else model.id,
        family=getattr(model, "family", None) or "unknown",
        parameters="",
        quantization="",
        size_bytes=getattr(model, "size_bytes", None),
        roles=("chat", "completion"),
        license="",
        description=description,
        source=source,
        repo=getattr(model, "repo", None),
        file=getattr(model, "file", None),
        in_catalog=False,
    )


def _origin_label(origin: str) -> str:
    """The words for where a scan found a model ("Ollama", …; engine/store/disk_scan.py)."""
    from hanlin.engine.store.disk_scan import ORIGIN_LABELS

    return ORIGIN_LABELS.get(origin, origin)


def _hub_ref(partial: Any) -> str | None:
    repo, file = getattr(partial, "repo", None), getattr(partial, "file", None)
    return f"hf.co/{repo}/{file}" if repo and file else None


def row_from_partial(partial: Any) -> ModelRow:
    """A row for a partial Hub download that has no catalog entry (Resume continues it)."""
    from hanlin.engine.store.shards import display_name

    return ModelRow(
        id=partial.id,
        name=Path(display_name(partial.file)).stem,
        family="unknown",
        parameters="",
        quantization="",
        size_bytes=partial.total,
        roles=("chat", "completion"),
        license="",
        description=f"Partly downloaded from the Hub: {partial.repo}/{partial.file}",
        source="hub",
        repo=partial.repo,
        file=partial.file,
        in_catalog=False,
    )


class CatalogTableModel(QAbstractTableModel):
    """Catalog entries + installed extras, with status, progress, fit and role choice."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._catalog_rows: list[ModelRow] = []
        self._rows: list[ModelRow] = []
        self._index_of: dict[str, int] = {}
        self._installed: dict[str, Any] = {}
        self._partials: dict[str, Any] = {}
        self._verdicts: dict[str, Any] = {}
        self._estimates: dict[str, int] = {}
        self._downloads: dict[str, DownloadState] = {}
        self._chat: str | None = None
        self._completion: str | None = None

    # ----- Qt model interface -------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else _N_COLUMNS

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            try:
                return HEADERS[Column(section)]
            except ValueError:
                return None
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # called thousands of times per paint (ResizeToContents asks every cell): be quick
        if role not in _HANDLED_ROLES:
            return None
        r, c = index.row(), index.column()
        if not (0 <= r < len(self._rows) and 0 <= c < _N_COLUMNS):
            return None
        row = self._rows[r]
        col = _COLUMNS[c]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == Column.FIT and row.fit_level in _FIT_COLORS:
                return QBrush(_FIT_COLORS[row.fit_level])
            return None
        if role == Qt.ItemDataRole.FontRole:
            chosen = row.id in (self._chat, self._completion)
            if chosen and col in (Column.NAME, Column.STATUS, Column.USED_FOR):
                font = QFont()
                font.setBold(True)
                return font
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if col in (Column.SIZE, Column.PARAMETERS):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return None
        if role == IdRole:
            return row.id
        if role == FamilyRole:
            return row.family
        if role == RolesRole:
            return row.roles
        if role == StatusRole:
            return self.status_of(row.id)
        if role == ProgressRole:
            value = self.progress_of(row.id)
            return -1 if value is None else value
        if role == FitLevelRole:
            return row.fit_level
        if role == SearchTextRole:
            fields = (row.id, row.name, row.family, row.parameters, row.quantization)
            return " ".join((*fields, row.description, row.license)).lower()
        if role == SortRole:
            return self._sort_key(row, col)
        if role == RowRole:
            return row
        return None

    # ----- reading ------------------------------------------------------------------------

    def row_for(self, model_id: str) -> int | None:
        return self._index_of.get(model_id)

    def model_row(self, model_id: str) -> ModelRow | None:
        i = self._index_of.get(model_id)
        return None if i is None else self._rows[i]

    def column_texts(self, column: Column) -> list[tuple[str, bool]]:
        """Each row's display text in `column` and whether it is bold (for sizing columns)."""
        chosen = {self._chat, self._completion}
        bold_columns = (Column.NAME, Column.STATUS, Column.USED_FOR)
        return [
            (self._display(r, column), column in bold_columns and r.id in chosen)
            for r in self._rows
        ]

    def ids(self) -> list[str]:
        return [r.id for r in self._rows]

    def families(self) -> list[str]:
        return sorted({r.family for r in self._rows})

    def download(self, model_id: str) -> DownloadState | None:
        return self._downloads.get(model_id)

    def chosen(self) -> tuple[str | None, str | None]:
        return self._chat, self._completion

    def status_of(self, model_id: str) -> str:
        row = self.model_row(model_id)
        if row is None:
            return AVAILABLE
        if model_id in self._downloads:
            return DOWNLOADING
        if row.installed_path is not None:
            return INSTALLED
        if row.partial_done is not None:
            return PARTIAL
        return AVAILABLE

    def progress_of(self, model_id: str) -> int | None:
        """Percent for a running or partial download, else None."""
        dl = self._downloads.get(model_id)
        if dl is not None:
            return dl.percent if dl.percent is not None else 0
        row = self.model_row(model_id)
        if row is not None and row.installed_path is None and row.partial_done is not None:
            return percent(row.partial_done, row.partial_total or row.size_bytes) or 0
        return None

    def status_text(self, model_id: str) -> str:
        row = self.model_row(model_id)
        return "" if row is None else self._status_text(row)

    # ----- writing (GUI thread only) ------------------------------------------------------

    def set_catalog(self, entries: Iterable[Any]) -> None:
        self._catalog_rows = [row_from_entry(e) for e in entries]
        self._rebuild()

    def set_store_state(self, installed: Iterable[Any], partials: Iterable[Any]) -> None:
        self._installed = {m.id: m for m in installed}
        self._partials = {p.id: p for p in partials}
        self._rebuild()

    def note_installed(self, model: Any) -> None:
        """A download finished: show it installed now, before the next store scan."""
        self._installed[model.id] = model
        self._partials.pop(model.id, None)
        self._rebuild()

    def note_partial(self, model_id: str, done: float, total: float | None) -> None:
        """A download paused: show its partial file now, before the next store scan."""
        row = self.model_row(model_id)
        self._partials[model_id] = _NotedPartial(
            model_id,
            int(done),
            int(total) if total else None,
            row.repo if row is not None else None,
            row.file if row is not None else None,
        )
        self._rebuild()

    def note_no_partial(self, model_id: str) -> None:
        """A partial download was discarded."""
        if self._partials.pop(model_id, None) is not None:
            self._rebuild()

    def set_estimates(self, estimates: dict[str, int]) -> None:
        """Sizes estimated from parameters × bits per weight, for entries with no exact size."""
        self._estimates = dict(estimates)
        self._rebuild()

    def set_verdicts(self, verdicts: dict[str, Any]) -> None:
        self._verdicts = dict(verdicts)
        self._rebuild()

    def set_chosen(self, chat: str | None, completion: str | None) -> None:
        if (chat, completion) == (self._chat, self._completion):
            return
        changed = {self._chat, self._completion, chat, completion} - {None}
        self._chat, self._completion = chat, completion
        for model_id in changed:
            self._emit_row_changed(model_id)

    def set_download(self, model_id: str, state: DownloadState | None) -> None:
        """Record (or clear, with None) a running download; emits dataChanged for its row."""
        if state is None:
            if self._downloads.pop(model_id, None) is None:
                return
        else:
            if self._downloads.get(model_id) == state:
                return
            self._downloads[model_id] = state
        self._emit_row_changed(model_id)

    # ----- internals ----------------------------------------------------------------------

    def _rebuild(self) -> None:
        catalog_ids = {r.id for r in self._catalog_rows}
        base = list(self._catalog_rows)
        extras = sorted(mid for mid in self._installed if mid not in catalog_ids)
        base.extend(row_from_installed(self._installed[mid]) for mid in extras)
        # partial pulls by Hub name (e.g. started with `hanlin models pull hf.co/...`)
        listed = catalog_ids | set(extras)
        hub_partials = sorted(
            pid for pid, p in self._partials.items() if pid not in listed and _hub_ref(p)
        )
        base.extend(row_from_partial(self._partials[pid]) for pid in hub_partials)
        self._sync([self._decorate(r) for r in base])

    def pull_ref(self, model_id: str) -> str:
        """What to pass to `ModelStore.pull` for this row: its catalog id, else its Hub name."""
        row = self.model_row(model_id)
        if row is None or row.in_catalog or not (row.repo and row.file):
            return model_id
        return f"hf.co/{row.repo}/{row.file}"

    def _decorate(self, row: ModelRow) -> ModelRow:
        inst = self._installed.get(row.id)
        part = self._partials.get(row.id)
        verdict = self._verdicts.get(row.id)
        return replace(
            row,
            installed_path=Path(inst.path) if inst is not None else None,
            installed_size=getattr(inst, "size_bytes", None) if inst is not None else None,
            partial_done=part.bytes_done if part is not None else None,
            partial_total=part.total if part is not None else None,
            fit_level=getattr(verdict, "level", None),
            fit_reason=getattr(verdict, "reason", "") or "",
            estimated_size=None if row.size_bytes else self._estimates.get(row.id),
        )

    def _sync(self, new_rows: Sequence[ModelRow]) -> None:
        """Move from the current rows to `new_rows` with fine-grained signals."""
        new_ids = [r.id for r in new_rows]
        new_set = set(new_ids)
        # 1. remove rows that went away (from the bottom, so indexes stay valid)
        for i in range(len(self._rows) - 1, -1, -1):
            if self._rows[i].id not in new_set:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows[i]
                self._reindex()
                self.endRemoveRows()
        # 2. if the surviving order differs from the wanted order, fall back to a reset
        survivors = [r.id for r in self._rows]
        survivor_set = set(survivors)
        wanted_survivors = [i for i in new_ids if i in survivor_set]
        if survivors != wanted_survivors:
            self.beginResetModel()
            self._rows = list(new_rows)
            self._reindex()
            self.endResetModel()
            return
        # 3. update changed rows in place, insert new ones where they belong
        by_id = {r.id: r for r in new_rows}
        for pos, model_id in enumerate(new_ids):
            if pos < len(self._rows) and self._rows[pos].id == model_id:
                if self._rows[pos] != by_id[model_id]:
                    self._rows[pos] = by_id[model_id]
                    self.dataChanged.emit(self.index(pos, 0), self.index(pos, len(Column) - 1))
            else:
                self.beginInsertRows(QModelIndex(), pos, pos)
                self._rows.insert(pos, by_id[model_id])
                self._reindex()  # before endInsertRows: slots on rowsInserted look rows up
                self.endInsertRows()
        self._reindex()

    def _reindex(self) -> None:
        self._index_of = {r.id: i for i, r in enumerate(self._rows)}

    def _emit_row_changed(self, model_id: str) -> None:
        i = self._index_of.get(model_id)
        if i is not None:
            self.dataChanged.emit(self.index(i, 0), self.index(i, len(Column) - 1))

    def _used_for(self, row: ModelRow) -> str:
        pairs = (("chat", self._chat), ("completion", self._completion))
        return ", ".join(name for name, chosen in pairs if chosen == row.id)

    def _size(self, row: ModelRow) -> int | None:
        return row.installed_size or row.size_bytes or row.partial_total or row.estimated_size

    def _size_text(self, row: ModelRow) -> str:
        exact = row.installed_size or row.size_bytes or row.partial_total
        if exact:
            return human_bytes(exact)
        if row.estimated_size:
            return f"~{human_bytes(row.estimated_size)}"
        return "—"

    def _status_text(self, row: ModelRow) -> str:
        dl = self._downloads.get(row.id)
        if dl is not None:
            if dl.phase != "downloading":
                return _PHASE_LABELS.get(dl.phase, dl.phase)
            parts = [f"{dl.percent}%" if dl.percent is not None else human_bytes(dl.done)]
            if dl.rate:
                parts.append(human_rate(dl.rate))
            if dl.eta is not None:
                parts.append(human_eta(dl.eta))
            return " · ".join(p for p in parts if p)
        if row.installed_path is not None:
            used = self._used_for(row)
            origin = getattr(self._installed.get(row.id), "origin", None)
            label = f"Installed ({_origin_label(origin)})" if origin else "Installed"
            return f"{label} · {used}" if used else label
        if row.partial_done is not None:
            pct = percent(row.partial_done, row.partial_total or row.size_bytes)
            if pct is None:
                return f"Partial {human_bytes(row.partial_done)}"
            return f"Partial {pct}%"
        return "Available"

    def _display(self, row: ModelRow, col: Column) -> str:
        if col == Column.NAME:
            return row.name
        if col == Column.FAMILY:
            return row.family
        if col == Column.PARAMETERS:
            return row.parameters
        if col == Column.QUANT:
            return row.quantization
        if col == Column.SIZE:
            return self._size_text(row)
        if col == Column.ROLES:
            return ", ".join(row.roles)
        if col == Column.LICENSE:
            return row.license
        if col == Column.STATUS:
            return self._status_text(row)
        if col == Column.FIT:
            if row.fit_level is None:
                return "…" if row.in_catalog else ""
            return FIT_LABELS.get(row.fit_level, row.fit_level)
        return self._used_for(row)

    def _tooltip(self, row: ModelRow, col: Column) -> str | None:
        if col == Column.FIT:
            return row.fit_reason or "Checking this machine…"
        if col == Column.NAME:
            return f"{row.id}\n{row.description}" if row.description else row.id
        if col == Column.STATUS and row.installed_path is not None:
            return str(row.installed_path)
        return None

    def _sort_key(self, row: ModelRow, col: Column) -> Any:
        if col == Column.SIZE:
            return float(self._size(row) or 0)
        if col == Column.PARAMETERS:
            return parse_parameter_count(row.parameters) or 0.0
        if col == Column.FIT:
            return {"fits": 0, "tight": 1, "wont_fit": 2}.get(row.fit_level or "", 3)
        if col == Column.STATUS:
            order = {INSTALLED: 0, DOWNLOADING: 1, PARTIAL: 2, AVAILABLE: 3}
            return order[self.status_of(row.id)]
        return self._display(row, col).lower()
