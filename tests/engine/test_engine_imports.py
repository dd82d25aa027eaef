"""`engine` imports with Qt and pygls unavailable: the engine never depends on a front end.

Runs in a fresh interpreter where a `sys.meta_path` finder refuses PySide6,
shiboken6, pygls and lsprotocol, then imports `engine` and every submodule.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    BLOCKED = ("PySide6", "shiboken6", "pygls", "lsprotocol", "PyQt5", "PyQt6")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: engine must not import front-end packages")
            return None

    sys.meta_path.insert(0, Block())
    try:
        import PySide6  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not work")

    import hanlin.engine as engine
    names = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "hanlin.engine."))
    for name in names:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if leaked:
        raise SystemExit(f"front-end modules were imported: {leaked}")
    print("\\n".join(names))
    """
)


def test_engine_imports_without_qt_or_pygls() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = set(result.stdout.split())
    # The runtime half must be among them (and so must be importable on its own).
    assert {
        "hanlin.engine.runtime.loader",
        "hanlin.engine.chat.stream",
        "hanlin.engine.runtime.hardware",
        "hanlin.engine.models.families",
        "hanlin.engine.runtime.llama_log",
        "hanlin.engine.runtime.session",
    } <= imported


@pytest.mark.parametrize(
    "module",
    ["hanlin.engine.chat.stream", "hanlin.engine.runtime.loader", "hanlin.engine.runtime.hardware"],
)
def test_importing_runtime_modules_prints_nothing(module: str) -> None:
    """Importing must not write to stdout (the language server's protocol channel)."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ""
