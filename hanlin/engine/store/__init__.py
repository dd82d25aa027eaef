"""Installed models: pulls from the Hub (resumable, verified), imports, removal.

The names below are the package's public surface; each is imported on first use
(engine/core/lazy.py), so importing one module of the package never loads the others.
"""

from hanlin.engine.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "model_store": ["InstalledModel", "ModelStore", "PartialDownload"],
        "hub_download": ["DownloadOptions", "HubRef", "parse_hub_ref"],
    },
)
