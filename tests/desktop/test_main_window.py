"""The main window: sidebar (new, search, rename, delete), export, pages, status line,
themes, the start-up probe, and kill-and-reopen with a real app process killed mid-answer."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from hanlin.desktop.chat.generation import ModelStatus
from hanlin.engine.chat.history import History
from hanlin.engine.core import paths
from tests.support.commands import HANLIN
from tests.support.desktop_chat import SMOL_ID, install_smollm2, short_answers

REPO = Path(__file__).resolve().parents[2]


def _titles(win) -> list[str]:
    m = win.controller.conversations
    return [m.data(m.index(i, 0)) for i in range(m.rowCount())]


def _seed(win, *pairs: tuple[str, str]) -> list[int]:
    ids = []
    for title, text in pairs:
        c = win.history.create(title)
        win.history.append(c.id, "user", text)
        win.history.append(c.id, "assistant", f"answer to {text}")
        ids.append(c.id)
    win.controller.conversations.refresh()
    return ids


def test_ctrl_n_starts_a_new_chat_and_reuses_an_empty_one(qtbot, window):
    _seed(window, ("first", "hello"))
    window.controller.open_conversation(window.history.list()[0].id)
    QTest.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert len(window.history.list()) == 2
    new_id = window.controller.current_id
    assert window.controller.messages.rowCount() == 0
    QTest.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert len(window.history.list()) == 2  # the empty one was reused
    assert window.controller.current_id == new_id
    assert window.chat_view.composer.hasFocus() or not window.isActiveWindow()


def test_search_filters_the_sidebar_by_message_text(qtbot, window):
    _seed(
        window, ("Rust", "borrow checker"), ("Python", "list comprehension"), ("Go", "goroutines")
    )
    assert len(_titles(window)) == 3
    QTest.keyClicks(window.search_box, "comprehension")
    assert _titles(window) == ["Python"]
    window.search_box.clear()
    assert len(_titles(window)) == 3


def test_open_rename_and_delete_conversations(qtbot, window):
    a, b = _seed(window, ("keep", "one"), ("drop", "two"))
    view = window.conversation_list
    model = window.controller.conversations
    view.clicked.emit(model.index(model.row_of(a), 0))
    assert window.controller.current_id == a
    assert [w.row.content for w in window.chat_view.message_widgets()] == ["one", "answer to one"]
    window.controller.rename_conversation(a, "kept and renamed")
    assert window.history.get(a).title == "kept and renamed"
    assert "kept and renamed" in _titles(window)
    view.setCurrentIndex(model.index(model.row_of(b), 0))
    window.controller.open_conversation(b)
    window.delete_selected(confirm=False)
    assert [c.id for c in window.history.list()] == [a]
    assert window.controller.current_id == a  # moved to what is left
    assert _titles(window) == ["kept and renamed"]


def test_export_markdown_and_json(qtbot, window, tmp_path):
    (cid,) = _seed(window, ("Export", "print a list"))
    window.controller.open_conversation(cid)
    md = window.controller.export(tmp_path / "chat.md")
    js = window.controller.export(tmp_path / "chat.json")
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Export") and "## User\n\nprint a list" in text
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["title"] == "Export"
    assert [m["content"] for m in data["messages"]] == ["print a list", "answer to print a list"]


def test_models_page_opens_and_its_changes_reach_the_picker(qtbot, window, smollm2_path):
    QTest.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    page = window.models_page
    assert page is not None and window.stack.currentWidget() is page
    assert type(page).__name__ == "ModelsPage"
    install_smollm2(smollm2_path, model_id="another-chat-model")
    page.modelsChanged.emit()
    picker = window.chat_view.model_picker
    ids = {picker.itemData(i) for i in range(picker.count())}
    assert ids == {SMOL_ID, "another-chat-model"}
    QTest.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.chat_view


def test_status_line_warns_when_a_gpu_load_fell_back_to_cpu(qtbot, window):
    # No GPU here: feed the status a load result as the runtime reports a failed GPU load.
    window.controller._show_model_status(
        ModelStatus(SMOL_ID, "cpu", "CUDA error: out of memory", 4096, 1.2)
    )
    assert window.backend_label.text().startswith("⚠ CPU")
    assert "out of memory" in window.backend_label.toolTip()
    assert window.backend_label.property("warning") is True
    banner = window.chat_view.banner
    assert banner.isVisibleTo(window) and "GPU" in banner.text()
    window.controller._show_model_status(ModelStatus(SMOL_ID, "cuda", None, 4096, 1.0))
    assert window.backend_label.text() == "CUDA"


def test_no_model_installed_explains_what_to_do(qtbot, hanlin_home):
    from hanlin.desktop.main_window import MainWindow
    from hanlin.desktop.tasks import TaskRunner
    from hanlin.engine.models.catalog import load_catalog
    from hanlin.engine.store.model_store import ModelStore

    history = History()
    win = MainWindow(history, TaskRunner(), ModelStore(catalog=load_catalog()), load_catalog())
    qtbot.addWidget(win)
    assert "Looking for models" in win.chat_view.model_picker.currentText()
    win.show()
    qtbot.waitUntil(lambda: win.ready, timeout=20000)
    assert win.chat_view.model_picker.currentText() == "No chat model installed"
    assert "No chat model" in win.chat_view.empty_label.text()
    win.chat_view.composer.setPlainText("hello?")
    win.chat_view.send()
    assert "No chat model is installed" in win.chat_view.banner.text()
    assert "Models" in win.chat_view.banner.text()
    assert win.chat_view.composer.toPlainText() == "hello?"  # nothing lost
    win.shutdown()
    history.close()


def _window_over_settings(qtbot, text: str):
    """The real window over a hand-written settings.toml (and an empty history)."""
    from hanlin.desktop.main_window import MainWindow
    from hanlin.desktop.tasks import TaskRunner
    from hanlin.engine.models.catalog import load_catalog
    from hanlin.engine.store.model_store import ModelStore

    paths.settings_file().parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file().write_text(text, encoding="utf-8")
    history = History()
    win = MainWindow(history, TaskRunner(), ModelStore(catalog=load_catalog()), load_catalog())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.ready, timeout=20000)
    return win, history


def test_hand_broken_settings_file_is_reported_and_kept(qtbot, hanlin_home):
    broken = 'theme = "dark"\nchat_model = \n'
    win, history = _window_over_settings(qtbot, broken)
    assert "not valid TOML" in win.chat_view.banner.text()
    assert str(paths.settings_file()) in win.chat_view.banner.text()
    assert paths.settings_file().read_text(encoding="utf-8") == broken  # the user's file is kept
    win.shutdown()
    history.close()


def test_unknown_per_model_key_is_shown_and_the_choice_kept(qtbot, hanlin_home):
    """A key this version does not know is a warning in the banner, not a lost file."""
    text = 'chat_model = "smollm2"\n\n[models."smollm2"]\ntemperature = 0.2\nn_batch = 256\n'
    win, history = _window_over_settings(qtbot, text)
    assert "n_batch" in win.chat_view.banner.text()
    assert "not valid TOML" not in win.chat_view.banner.text()
    assert paths.settings_file().read_text(encoding="utf-8") == text
    win.shutdown()
    history.close()


def test_theme_follows_settings_and_env_override(qtbot, chat_store, monkeypatch):
    from hanlin.desktop.app import build_window
    from hanlin.desktop.theme import apply_theme

    app = QApplication.instance()
    monkeypatch.setenv("HANLIN_THEME", "dark")
    win = build_window(app)
    qtbot.addWidget(win)
    try:
        assert app.property("hanlinDark") is True
        assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
        assert win.chat_view.renderer.dark is True
        checked = [a.data() for a in win.theme_group.actions() if a.isChecked()]
        assert checked == ["dark"]
        win.set_theme("light")
        assert app.property("hanlinDark") is False
        assert app.palette().color(QPalette.ColorRole.Window).lightness() > 150
        from hanlin.engine.core.settings import load_settings

        assert load_settings().settings.theme == "light"
    finally:
        win.shutdown()
        apply_theme("light", app)


@pytest.mark.slow
def test_startup_probe_reports_a_visible_responsive_window(chat_store):
    env = dict(os.environ, HANLIN_STARTUP_PROBE="1", QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [*HANLIN],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("HANLIN_STARTUP_PROBE"))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    assert float(fields["models_ms"]) >= float(fields["ready_ms"]) >= float(fields["shown_ms"]) > 0
    assert fields["llama_cpp_imported"] == "no"  # nothing heavy at start-up


_DRIVER = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from hanlin.desktop.app import build_window

    app = QApplication(sys.argv)
    window = build_window(app)
    window.show()

    def go():
        if not window.controller.models_ready:
            QTimer.singleShot(50, go)
            return
        window.controller.send("Write a very long story about a dragon who learns to code.")
        print("SENT", flush=True)

    QTimer.singleShot(0, go)
    app.exec()
    """
)


@pytest.mark.slow
def test_kill_mid_answer_then_reopen_keeps_the_conversation(qtbot, smollm2_path, hanlin_home):
    short_answers(2000)
    install_smollm2(smollm2_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    db = paths.data_dir() / "history.sqlite3"
    partial = ""
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if not db.exists():
                continue
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                row = con.execute(
                    "SELECT content FROM messages WHERE role = 'assistant' ORDER BY id DESC"
                ).fetchone()
                con.close()
            except sqlite3.OperationalError:
                continue
            if row and len(row[0]) > 40:
                partial = row[0]
                break
        assert partial, "the app never saved a partial answer"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    history = History()
    assert history.problem is None
    con = sqlite3.connect(history.path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    (conv,) = history.list()
    user, answer = history.messages(conv.id)
    assert user.content.startswith("Write a very long story")
    assert answer.content.startswith(partial)  # nothing committed was lost
    assert not answer.complete  # it was cut off, and says so

    from hanlin.desktop.main_window import MainWindow
    from hanlin.desktop.tasks import TaskRunner
    from hanlin.engine.models.catalog import load_catalog
    from hanlin.engine.store.model_store import ModelStore

    win = MainWindow(history, TaskRunner(), ModelStore(catalog=load_catalog()), load_catalog())
    qtbot.addWidget(win)
    widgets = win.chat_view.message_widgets()
    assert [w.row.role for w in widgets] == ["user", "assistant"]
    assert "interrupted" in widgets[1].header.text()
    assert widgets[1].row.content == answer.content
    win.shutdown()
    history.close()
