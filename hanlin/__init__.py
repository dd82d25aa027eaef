"""Hanlin: a local, private workbench for the open-weight Qwen and DeepSeek models.

The distribution installs everything under this one name so it never clashes with other
software: `hanlin.engine` (what every front end needs; imports no front end's library),
`hanlin.desktop` (the Qt app and the `hanlin` command line) and `hanlin.lsp_server`
(`hanlin-lsp`). See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("hanlin")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
