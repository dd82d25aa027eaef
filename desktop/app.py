"""Starting the desktop app: `hanlin` with no arguments calls `run_app()`.

Why start-up is written with care: the window must be visible and responsive in
well under a second, with models installed. So nothing heavy happens here — no
model is loaded, `llama_cpp` is not imported (the first answer's worker does
that), the Models page is built the first time it is opened. Start-up reads the
settings, the catalog and the installed-models manifest (small files), opens the
history database, and shows the window.

Theme: light or dark following the system (Qt 6's `styleHints().colorScheme()`,
updated live when the system switches), unless the settings' `theme` key says
`light` or `dark`. The environment can override both, for screenshots and tests:

    HANLIN_THEME=light|dark|system    the theme, over the settings file
    HANLIN_CONVERSATION=ID            open this conversation (default: the latest)
    HANLIN_PAGE=chat|models           the page shown first
    HANLIN_STARTUP_PROBE=1            print "HANLIN_STARTUP_PROBE shown_ms=… ready_ms=…
                                      models_ms=…" once the window is shown, the event
                                      loop has done a round trip, and the model list is
                                      read; then quit (bench/desktop_startup.py)

On quit, running work (a generation, a download) is cancelled and waited for.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QStyleFactory

_T0 = time.perf_counter()

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
    from engine.settings import load_settings

    return load_settings().settings.theme


def app_icon() -> QIcon:
    """Drawn, so the app needs no image files: a rounded square with 翰 (Hanlin)."""
    icon = QIcon()
    for size in (16, 32, 64, 128, 256):
        pix = QPixmap(size, size)
        pix.fill(Qt.GlobalColor.transparent)
        p = QPainter(pix)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(QColor("#1f5fa8"))
        p.setPen(Qt.PenStyle.NoPen)
        r = size * 0.18
        p.drawRoundedRect(QRectF(0, 0, size, size), r, r)
        p.setPen(QColor("#ffffff"))
        font = QFont()
        font.setPixelSize(int(size * 0.62))
        font.setBold(True)
        p.setFont(font)
        p.drawText(QRectF(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, "翰")
        p.end()
        icon.addPixmap(pix)
    return icon


class DeferredStore:
    """The `ModelStore`, built on first use.

    `engine.store` pulls in the HTTP stack for downloads; importing it when the chat
    first lists models (on a worker thread) rather than before the window shows keeps
    start-up light. Attribute access is forwarded to the real store.
    """

    def __init__(self, catalog: Any) -> None:
        self._catalog = catalog
        self._store: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._store is None:
                from engine.store import ModelStore

                self._store = ModelStore(catalog=self._catalog)
            return self._store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


class _SchemeFollower(QObject):
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


class _StartupProbe(QObject):
    """HANLIN_STARTUP_PROBE: report when the window is shown and the loop answers, then quit.

    `shown_ms`: the window's Show event; `ready_ms`: the event loop ran an event posted at
    Show (the window responds to input); `models_ms`: the model picker is filled and
    answers render as Markdown (the background start-up work is done). All from the
    import of this module, i.e. after the interpreter and PySide6 started.
    """

    def __init__(self, window: QObject) -> None:
        super().__init__(window)
        self._window = window
        self.shown_ms: float | None = None
        self.ready_ms: float | None = None
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show and self.shown_ms is None:
            self.shown_ms = (time.perf_counter() - _T0) * 1000
            # one round trip through the event loop: posted now, runs once it is free
            QTimer.singleShot(0, self._round_trip)
        return False

    def _round_trip(self) -> None:
        self.ready_ms = (time.perf_counter() - _T0) * 1000
        self._wait_background()

    def _wait_background(self) -> None:
        if not self._window.ready:  # type: ignore[attr-defined]
            QTimer.singleShot(5, self._wait_background)
            return
        done = (time.perf_counter() - _T0) * 1000
        llama = "yes" if "llama_cpp" in sys.modules else "no"
        print(
            f"HANLIN_STARTUP_PROBE shown_ms={self.shown_ms:.1f} ready_ms={self.ready_ms:.1f}"
            f" models_ms={done:.1f} llama_cpp_imported={llama}",
            flush=True,
        )
        QApplication.quit()


def build_window(app: QApplication) -> QObject:
    """Everything `run_app` builds before the event loop starts (tests call it too)."""
    from desktop.main_window import MainWindow
    from desktop.tasks import TaskRunner
    from engine.catalog import load_catalog
    from engine.history import History

    mode = theme_mode()
    dark = apply_theme(mode, app)
    catalog = load_catalog()
    store = DeferredStore(catalog)
    history = History()
    runner = TaskRunner(app)
    window = MainWindow(history, runner, store, catalog)
    window.sync_theme(dark, mode)
    _SchemeFollower(window)
    conv = os.environ.get("HANLIN_CONVERSATION", "").strip()
    if conv.isdigit():
        from engine.errors import HanlinError

        try:
            window.controller.open_conversation(int(conv))
        except HanlinError as exc:
            window.chat_view.banner.show_error(exc)
    if os.environ.get("HANLIN_PAGE", "").strip().lower() == "models":
        window.show_models()
    return window


def run_app(argv: list[str] | None = None) -> int:
    """Open the desktop window; returns the exit code when it closes."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("Hanlin")
    app.setApplicationDisplayName("Hanlin")
    app.setOrganizationName("Hanlin")
    app.setOrganizationDomain("hanlin.local")
    app.setWindowIcon(app_icon())
    styles = QStyleFactory.keys()
    if "Fusion" in styles:
        app.setStyle("Fusion")

    from desktop.errors import install_excepthook, show_error_dialog
    from engine.errors import HanlinError

    install_excepthook()
    try:
        window = build_window(app)
    except HanlinError as exc:
        show_error_dialog(None, exc)
        return exc.exit_code
    if os.environ.get("HANLIN_STARTUP_PROBE"):
        _StartupProbe(window)
    app.aboutToQuit.connect(window.shutdown)  # type: ignore[attr-defined]
    window.show()  # type: ignore[attr-defined]
    return app.exec()
