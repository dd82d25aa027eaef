"""Where Hanlin keeps its files.

By default the platform's own places (platformdirs: ~/.config/hanlin,
~/.local/share/hanlin on Linux; ~/Library/Application Support/hanlin on macOS;
%APPDATA% on Windows). `HANLIN_HOME` relocates everything under one folder
(tests use it; so can a user with a portable install).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "hanlin"


def _home() -> Path | None:
    value = os.environ.get("HANLIN_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    """Settings and the user's own catalog entries."""
    home = _home()
    return home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME, False))


def data_dir() -> Path:
    """Chat history, model manifest, statistics."""
    home = _home()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME, False))


def models_dir() -> Path:
    """Downloaded and imported GGUF files live here, visible to the user."""
    return data_dir() / "models"


def cache_dir() -> Path:
    home = _home()
    return home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME, False))


def log_dir() -> Path:
    home = _home()
    return home / "logs" if home else Path(platformdirs.user_log_dir(APP_NAME, False))


def settings_file() -> Path:
    return config_dir() / "settings.toml"


def user_catalog_file() -> Path:
    return config_dir() / "catalog.toml"


def ensure(path: Path) -> Path:
    """Create a directory (and parents) if missing; return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
