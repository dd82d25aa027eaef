"""Foundations every other package uses: errors, cancellation and progress, paths,
atomic writes, file locks, settings, units.

The names below are the package's public surface; each is imported on first use
(engine/core/lazy.py), so importing one module of the package never loads the others.
"""

from hanlin.engine.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "errors": ["errors", "HanlinError", "Cancelled"],
        "cancel": ["CancelToken", "Progress", "ProgressCallback"],
        "paths": ["paths"],
        "atomic": ["write_bytes_atomic", "write_text_atomic"],
        "locks": ["FileLock"],
        "settings": [
            "ModelSettings",
            "Settings",
            "load_settings",
            "save_settings",
            "update_settings",
        ],
        "units": ["format_bytes", "format_duration", "format_rate"],
    },
)
