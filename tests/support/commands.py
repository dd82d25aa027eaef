"""The installed console scripts, so end-to-end tests run what `pip install` put on PATH.

Running `hanlin` / `hanlin-lsp` (not `python -m` from the checkout) proves the entry points
and the package data of the installed distribution, and keeps the checkout off `sys.path`.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path


def installed_script(name: str) -> str:
    """Absolute path of console script `name` from this interpreter's installation."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which(name, path=folder)
        if found:
            return found
    raise RuntimeError(
        f"`{name}` is not installed for {sys.executable}: run pip install -e '.[test]'"
    )


HANLIN = [installed_script("hanlin")]
HANLIN_LSP = [installed_script("hanlin-lsp")]
