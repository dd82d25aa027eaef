"""Engine reads behind the Models page, run on the TaskRunner's workers.

`scan_store` gathers what the page shows about the disk (installed models, partial
downloads, the chosen chat / completion models, disk use) and `fit_for_catalog`
asks engine.models.fit whether each catalog model fits this machine. Both are plain
functions of engine objects, so they never touch a widget and never run on the GUI
thread.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hanlin.engine.core import paths
from hanlin.engine.core.errors import HanlinError


@dataclass(slots=True)
class StoreSnapshot:
    """What one scan of the store and the settings file found (built on a worker)."""

    installed: list[Any]
    partials: list[Any]
    chat_model: str | None
    completion_model: str | None
    verdicts: dict[str, Any] = field(default_factory=dict)
    #: the models folder, the bytes its models and partial files take, and the disk's free bytes
    models_dir: Path | None = None
    used_bytes: int = 0
    free_bytes: int | None = None


def scan_store(store: Any, catalog_ids: set[str]) -> StoreSnapshot:
    """Installed models, partial downloads, chosen models, and fit of imports (worker)."""
    from hanlin.engine.core.settings import load_settings

    installed = list(store.installed())
    partials = list(store.partials())
    settings = load_settings().settings
    verdicts: dict[str, Any] = {}
    extras = [m for m in installed if m.id not in catalog_ids]
    if extras:
        verdicts = _fit_for_installed(extras)
    folder = Path(getattr(store, "models_dir", None) or paths.models_dir())
    used = sum(int(m.size_bytes or 0) for m in installed if _inside(Path(m.path), folder))
    used += sum(int(p.bytes_done) for p in partials)
    free = None
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(probe).free
    return StoreSnapshot(
        installed,
        partials,
        settings.chat_model,
        settings.completion_model,
        verdicts,
        folder,
        used,
        free,
    )


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def _fit_for_installed(models: list[Any]) -> dict[str, Any]:
    """Fit verdicts for installed models that have no catalog entry, from their GGUF header."""
    from hanlin.engine.models.fit import default_n_ctx, fit_for_entry, fit_for_file
    from hanlin.engine.models.gguf_info import read_gguf_info
    from hanlin.engine.runtime.hardware import detect_hardware

    hw = detect_hardware()
    out: dict[str, Any] = {}
    for model in models:
        entry = getattr(model, "catalog_entry", None)
        try:
            if entry is not None:
                out[model.id] = fit_for_entry(entry, hw)
                continue
            info = read_gguf_info(Path(model.path))
            n_ctx = default_n_ctx(info.context_length)
            out[model.id] = fit_for_file(info, int(model.size_bytes), hw, n_ctx)
        except HanlinError:
            continue  # the row simply shows no verdict; loading it will explain the problem
    return out


def fit_for_catalog(entries: list[Any]) -> dict[str, Any]:
    """Fit verdicts for every catalog entry on this machine (worker: detects hardware)."""
    from hanlin.engine.models.fit import fit_for_entry
    from hanlin.engine.runtime.hardware import detect_hardware

    hw = detect_hardware()
    return {entry.id: fit_for_entry(entry, hw) for entry in entries}


def estimate_sizes(entries: list[Any]) -> dict[str, int]:
    """Download sizes estimated from parameters × bits per weight, for entries without one."""
    from hanlin.engine.models.fit import estimate_file_size

    out: dict[str, int] = {}
    for entry in entries:
        if entry.size_bytes:
            continue
        size = estimate_file_size(entry.parameters or "", entry.quantization or "")
        if size:
            out[entry.id] = size
    return out
