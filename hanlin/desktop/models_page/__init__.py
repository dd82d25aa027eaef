"""Qt models and helpers behind the Models page (`desktop/models_page.py`).

Exports: `CatalogTableModel` (one row per catalog entry or installed model),
`CatalogFilterProxy` (family / role / text filter), `DownloadManager` (pulls on the
TaskRunner with timer-driven progress), `ModelDetailsPane` (the selected model's facts
and actions), `ProgressDelegate`, `CompletionStatsPanel`; `scan` holds the worker-side
engine reads (store scan, fit verdicts).
"""

from hanlin.desktop.models_page.catalog_table import (
    CatalogTableModel,
    Column,
    DownloadState,
    ModelRow,
)
from hanlin.desktop.models_page.delegates import ProgressDelegate
from hanlin.desktop.models_page.details import ModelDetailsPane
from hanlin.desktop.models_page.downloads import DownloadManager
from hanlin.desktop.models_page.filter_proxy import CatalogFilterProxy
from hanlin.desktop.models_page.stats_panel import CompletionStatsPanel

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
