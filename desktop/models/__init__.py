"""Qt models and helpers behind the Models page (`desktop/models_page.py`).

Exports: `CatalogTableModel` (one row per catalog entry or installed model),
`CatalogFilterProxy` (family / role / text filter), `DownloadManager` (pulls on the
TaskRunner with timer-driven progress), `ModelDetailsPane` (the selected model's facts
and actions), `ProgressDelegate`, `CompletionStatsPanel`; `scan` holds the worker-side
engine reads (store scan, fit verdicts).
"""

from desktop.models.catalog_model import CatalogTableModel, Column, DownloadState, ModelRow
from desktop.models.delegates import ProgressDelegate
from desktop.models.details import ModelDetailsPane
from desktop.models.downloads import DownloadManager
from desktop.models.filter_proxy import CatalogFilterProxy
from desktop.models.stats_panel import CompletionStatsPanel

__all__ = [
    "CatalogFilterProxy",
    "CatalogTableModel",
    "Column",
    "CompletionStatsPanel",
    "DownloadManager",
    "DownloadState",
    "ModelDetailsPane",
    "ModelRow",
    "ProgressDelegate",
]
