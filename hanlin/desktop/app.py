"""Starting the desktop app: `hanlin` with no arguments calls `run_app()`.

Why start-up is written with care: the window must be visible and responsive in
well under a second, with models installed. So nothing heavy happens here — no
model is loaded, `llama_cpp` is not imported (the first answer's worker does
that), the Models page is built the first time it is opened. Start-up reads the
settings, the catalog and the installed-models manifest (small files), opens the
history database, and shows the window.

The theme (desktop/theme.py) follows the system unless settings or the environment
say otherwise. The environment can steer start-up, for screenshots and tests:

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
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QApplication, QStyleFactory

from hanlin.desktop.theme import SchemeFollower, apply_theme, theme_mode

_T0 = time.perf_counter()

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

    `hanlin.engine.store` pulls in the HTTP stack for downloads; importing it when the chat
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
                from hanlin.engine.store.model_store import ModelStore

                self._store = ModelStore(catalog=self._catalog)
            return self._store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


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
    from hanlin.desktop.main_window import MainWindow
    from hanlin.desktop.tasks import TaskRunner
    from hanlin.engine.chat.history import History
    from hanlin.engine.models.catalog import load_catalog

    mode = theme_mode()
    dark = apply_theme(mode, app)
    catalog = load_catalog()
    store = DeferredStore(catalog)
    history = History()
    runner = TaskRunner(app)
    window = MainWindow(history, runner, store, catalog)
    window.sync_theme(dark, mode)
    SchemeFollower(window)
    conv = os.environ.get("HANLIN_CONVERSATION", "").strip()
    if conv.isdigit():
        from hanlin.engine.core.errors import HanlinError

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

    from hanlin.desktop.errors import install_excepthook, show_error_dialog
    from hanlin.engine.core.errors import HanlinError

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
