"""The desktop app's look: light or dark palette plus one stylesheet, following the system.

Light or dark follows the system (Qt 6's `styleHints().colorScheme()`, updated live when the
system switches), unless the settings' `theme` key says `light` or `dark`; `HANLIN_THEME`
overrides both (screenshots, tests). Kept apart from app.py so the main window can re-apply
the theme (its View menu) without importing the start-up module that builds it.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["SchemeFollower", "apply_theme", "resolve_theme", "system_is_dark", "theme_mode"]

_STYLESHEET = """
#errorBanner { border-radius: 6px; margin: 4px 12px; }
#errorBanner[severity="error"] { background: %(err_bg)s; border: 1px solid %(err_border)s; }
#errorBanner[severity="info"] { background: %(info_bg)s; border: 1px solid %(info_border)s; }
#userMessage { background: %(user_bg)s; border-radius: 10px; }
#assistantMessage { background: transparent; }
#messageHeader { color: %(muted)s; }
#thinkingToggle { color: %(muted)s; font-style: italic; }
QTextBrowser#thinkingText { color: %(muted)s; border-left: 3px solid %(rule)s; padding-left: 8px; }
#emptyHint { color: %(muted)s; padding: 40px; }
QTextBrowser#messageContent, QTextBrowser#thinkingText { background: transparent; }
#sidebar QListView { border: none; background: transparent; }
#composer { border: 1px solid %(rule)s; border-radius: 8px; padding: 4px; }
QLabel#statusBackend[warning="true"] { color: %(warn)s; font-weight: bold; }
"""

_LIGHT = {
    "err_bg": "#fdecea",
    "err_border": "#f5c2c0",
    "info_bg": "#eef4fb",
    "info_border": "#c9dcf2",
    "user_bg": "#eef2f7",
    "muted": "#5f6b7a",
    "rule": "#d0d7de",
    "warn": "#b35900",
}
_DARK = {
    "err_bg": "#4a2323",
    "err_border": "#7a3a3a",
    "info_bg": "#1f3347",
    "info_border": "#2f4e6e",
    "user_bg": "#2b3340",
    "muted": "#9aa6b2",
    "rule": "#3d4652",
    "warn": "#ffb74d",
}


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def resolve_theme(mode: str) -> bool:
    """True for dark. `mode` is system | light | dark."""
    if mode == "dark":
        return True
    if mode == "light":
        return False
    return system_is_dark()


def _dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor("#1e2228"), QColor("#262b33"), QColor("#e6e8eb")
    roles = QPalette.ColorRole
    p.setColor(roles.Window, window)
    p.setColor(roles.WindowText, text)
    p.setColor(roles.Base, base)
    p.setColor(roles.AlternateBase, QColor("#2b313a"))
    p.setColor(roles.ToolTipBase, QColor("#2b313a"))
    p.setColor(roles.ToolTipText, text)
    p.setColor(roles.Text, text)
    p.setColor(roles.Button, QColor("#2f353e"))
    p.setColor(roles.ButtonText, text)
    p.setColor(roles.BrightText, QColor("#ff6b6b"))
    p.setColor(roles.Link, QColor("#6cb6ff"))
    p.setColor(roles.Highlight, QColor("#3d6fb6"))
    p.setColor(roles.HighlightedText, QColor("#ffffff"))
    p.setColor(roles.PlaceholderText, QColor("#8b949e"))
    disabled = QPalette.ColorGroup.Disabled
    for role in (roles.Text, roles.ButtonText, roles.WindowText):
        p.setColor(disabled, role, QColor("#6e7681"))
    return p


def _light_palette() -> QPalette:
    p = QApplication.style().standardPalette()
    p.setColor(QPalette.ColorRole.Link, QColor("#0b63c4"))
    return p


def apply_theme(mode: str, app: QApplication | None = None) -> bool:
    """Apply the palette and stylesheet for `mode`; returns True if dark is on."""
    app = app or QApplication.instance()  # type: ignore[assignment]
    assert isinstance(app, QApplication)
    dark = resolve_theme(mode)
    app.setPalette(_dark_palette() if dark else _light_palette())
    app.setStyleSheet(_STYLESHEET % (_DARK if dark else _LIGHT))
    app.setProperty("hanlinDark", dark)
    app.setProperty("hanlinThemeMode", mode)
    return dark


def theme_mode() -> str:
    env = os.environ.get("HANLIN_THEME", "").strip().lower()
    if env in ("system", "light", "dark"):
        return env
    from hanlin.engine.core.settings import load_settings

    return load_settings().settings.theme


class SchemeFollower(QObject):
    """Re-applies the theme when the system switches light/dark (mode "system" only)."""

    def __init__(self, window: QObject) -> None:
        super().__init__(window)
        self._window = window
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._changed)

    def _changed(self, *_: object) -> None:
        app = QApplication.instance()
        if app is None or app.property("hanlinThemeMode") != "system":
            return
        dark = apply_theme("system")
        self._window.sync_theme(dark, "system")  # type: ignore[attr-defined]
