"""Helpers for the installer tests: installers/build.py as a module; "nothing was lost"."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def build_script() -> ModuleType:
    """installers/build.py, under a name of its own (PyPA's `build` may be importable)."""
    name = "hanlin_installers_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "installers" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def kept(now: object, old: object) -> bool:
    """Everything `old` had is in `now`, unchanged; a newer version may add keys of its own."""
    if isinstance(old, dict):
        return isinstance(now, dict) and all(k in now and kept(now[k], v) for k, v in old.items())
    if isinstance(old, list):
        return isinstance(now, list) and len(now) == len(old) and all(map(kept, now, old))
    return now == old
