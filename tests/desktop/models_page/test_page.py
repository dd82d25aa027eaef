"""The Models page against the real store, a real local Hub server and real widgets.

Every test drives the real `ModelsPage` offscreen (pytest-qt): the catalog rows,
the family / role / text filter, a download from the fake Hub with its progress
bar rising, pause and resume, cancel, delete, "Use for completion" writing
settings.toml, importing a good and a bad GGUF (file dialog path and drag and
drop), a partial download left on disk by an earlier run, and the editor
completion statistics panel.
"""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox

from hanlin.desktop.models_page.catalog_table import (
    AVAILABLE,
    DOWNLOADING,
    INSTALLED,
    PARTIAL,
    CatalogTableModel,
    Column,
    FamilyRole,
    IdRole,
    ProgressRole,
    RolesRole,
    SortRole,
)
from hanlin.desktop.models_page.page import ModelsPage
from hanlin.desktop.tasks import TaskRunner
from hanlin.engine.core import paths
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import Cancelled
from hanlin.engine.models.catalog import load_catalog
from hanlin.engine.store.model_store import ModelStore
from tests.support.fake_hub import FakeHub, make_gguf

TEST_ID = "tiny-test-q8"
TEST_REPO = "Qwen/Tiny-Test-GGUF"
TEST_FILE = "tiny-test-q8_0.gguf"
FILE_SIZE = 3_000_000

USER_CATALOG = f"""
schema_version = 1

[[model]]
id = "{TEST_ID}"
name = "Tiny Test"
publisher = "Hanlin tests"
family = "qwen2.5-coder"
parameters = "1M"
quantization = "Q8_0"
repo = "{TEST_REPO}"
file = "{TEST_FILE}"
context_length = 2048
roles = ["chat", "completion"]
license = "apache-2.0"
description = "A tiny GGUF served by the tests' local Hub."
"""


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        server.add_file(TEST_REPO, TEST_FILE, make_gguf(FILE_SIZE, name="Tiny Test"))
        yield server


@pytest.fixture
def catalog():
    user = paths.user_catalog_file()
    paths.ensure(user.parent)
    user.write_text(USER_CATALOG, encoding="utf-8")
    return load_catalog()


@pytest.fixture
def store(catalog):
    return ModelStore(catalog=catalog)


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    r.shutdown(10_000)


def _settle(qtbot, runner: TaskRunner) -> None:
    """Wait until every submitted task delivered its outcome."""
    qtbot.waitUntil(lambda: runner.active_count() == 0, timeout=15_000)


@pytest.fixture
def make_page(qtbot, runner, store, catalog):
    def make() -> ModelsPage:
        page = ModelsPage(runner, store, catalog, progress_interval_ms=100)
        qtbot.addWidget(page)
        page.resize(1200, 800)
        page.show()
        _settle(qtbot, runner)
        return page

    return make


def _visible_ids(page: ModelsPage) -> list[str]:
    proxy = page.proxy
    return [proxy.index(r, 0).data(IdRole) for r in range(proxy.rowCount())]


def _status(page: ModelsPage, model_id: str) -> str:
    return page.table_model.status_of(model_id)


# ----------------------------------------------------------------------------- the models


def test_table_and_proxy_pass_the_model_tester(qtmodeltester, catalog, store, tmp_path):
    good = tmp_path / "good.gguf"
    good.write_bytes(make_gguf(64 * 1024, name="Imported"))
    store.import_file(good, model_id="imported-one")
    model = CatalogTableModel()
    model.set_catalog(catalog.entries)
    model.set_store_state(store.installed(), store.partials())
    model.set_chosen(TEST_ID, "imported-one")
    qtmodeltester.check(model, force_py=True)
    assert model.rowCount() == len(catalog.entries) + 1  # the import is listed too
    assert model.status_of("imported-one") == INSTALLED
    assert model.data(model.index(model.row_for(TEST_ID), Column.USED_FOR)) == "chat"

    from hanlin.desktop.models_page.filter_proxy import CatalogFilterProxy

    proxy = CatalogFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_role("completion")
    qtmodeltester.check(proxy, force_py=True)
    assert 0 < proxy.rowCount() < model.rowCount()


@pytest.mark.slow
def test_rows_show_catalog_facts_and_fit_verdict(qtbot, make_page, catalog):
    page = make_page()
    model = page.table_model
    assert model.rowCount() == len(catalog.entries)
    row = model.row_for(TEST_ID)
    cells = [model.index(row, c).data() for c in range(model.columnCount())]
    assert cells[Column.NAME] == "Tiny Test"
    assert cells[Column.QUANT] == "Q8_0"
    assert cells[Column.ROLES] == "chat, completion"
    assert cells[Column.LICENSE] == "apache-2.0"
    assert cells[Column.STATUS] == "Available"
    # the fit verdict is computed on a worker, with its reason as tooltip
    assert cells[Column.FIT] in ("Fits", "Tight", "Won't fit")
    tooltip = model.index(row, Column.FIT).data(Qt.ItemDataRole.ToolTipRole)
    assert "RAM" in tooltip or "memory" in tooltip.lower()
    big = next(e for e in catalog.entries if e.parameters == "32B")
    big_fit = model.index(model.row_for(big.id), Column.FIT).data()
    assert big_fit in ("Tight", "Won't fit", "Fits")


def test_filter_by_family_role_and_text(qtbot, make_page, catalog):
    page = make_page()
    all_rows = len(_visible_ids(page))
    assert all_rows == len(catalog.entries)

    page.family_combo.setCurrentIndex(page.family_combo.findData("qwen3"))
    ids = _visible_ids(page)
    assert ids and len(ids) == sum(1 for e in catalog.entries if e.family == "qwen3")
    assert all(page.table_model.model_row(i).family == "qwen3" for i in ids)

    page.family_combo.setCurrentIndex(0)
    page.role_combo.setCurrentIndex(page.role_combo.findData("completion"))
    ids = _visible_ids(page)
    assert ids and len(ids) < all_rows
    assert all("completion" in page.table_model.model_row(i).roles for i in ids)
    assert len(ids) == len(catalog.with_role("completion"))

    page.search_edit.setText("tiny")
    assert _visible_ids(page) == [TEST_ID]
    page.search_edit.setText("")
    page.role_combo.setCurrentIndex(0)
    assert len(_visible_ids(page)) == all_rows

    # sorting by size is numeric (GB after MB), not by the text
    page.view.sortByColumn(Column.SIZE, Qt.SortOrder.AscendingOrder)
    proxy = page.proxy
    keys = [proxy.index(r, Column.SIZE).data(SortRole) for r in range(proxy.rowCount())]
    assert keys == sorted(keys) and keys[0] < keys[-1]


# ----------------------------------------------------------------------------- downloads


@pytest.mark.slow
def test_download_shows_rising_progress_then_installed(qtbot, hub, make_page, store):
    hub.faults.rate = 1_500_000  # ~2 s for the 3 MB file
    page = make_page()
    page.select_model(TEST_ID)
    assert page.download_button.isVisible()
    seen: list[int] = []
    statuses: list[str] = []
    row_updates: list[float] = []
    model = page.table_model
    row = model.row_for(TEST_ID)

    def on_change(top_left, bottom_right, *_):
        if top_left.row() <= row <= bottom_right.row():
            row_updates.append(time.monotonic())
            statuses.append(model.status_of(TEST_ID))
        if page.progress_bar.isVisible():
            seen.append(page.progress_bar.value())

    model.dataChanged.connect(on_change)
    # the GUI thread keeps answering while the transfer runs (a 10 ms timer's longest gap)
    ticks: list[float] = [time.monotonic()]
    heartbeat = QTimer(page)
    heartbeat.timeout.connect(lambda: ticks.append(time.monotonic()))
    heartbeat.start(10)
    qtbot.mouseClick(page.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == DOWNLOADING, timeout=5000)
    qtbot.waitUntil(lambda: 0 < page.progress_bar.value() < 100, timeout=10_000)
    assert page.pause_button.isVisible() and page.cancel_button.isVisible()
    assert "%" in page.table_model.status_text(TEST_ID)
    assert not page.grab().isNull()  # paints the in-table progress bar (ProgressDelegate)
    assert "/s" in page.progress_label.text()  # speed (and ETA) next to the bar
    with qtbot.waitSignal(page.modelsChanged, timeout=20_000):
        pass
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == INSTALLED, timeout=10_000)
    values = [v for v in seen if v > 0]
    assert len(set(values)) >= 2 and values == sorted(values)  # it rose, never went back
    # the row went straight from downloading to installed (no flicker through "available")
    first = statuses.index(DOWNLOADING)
    assert AVAILABLE not in statuses[first:] and statuses[-1] == INSTALLED
    # repainted on the 100 ms timer, not once per received chunk
    span = row_updates[-1] - row_updates[0]
    assert 3 <= len(row_updates) <= span / 0.1 + 8
    heartbeat.stop()
    worst = max(b - a for a, b in itertools.pairwise(ticks))
    print(f"longest GUI-thread gap during the download: {worst * 1000:.0f} ms")
    assert len(ticks) > 50 and worst < 1.0, "the download blocked the GUI thread"
    assert [m.id for m in store.installed()] == [TEST_ID]
    qtbot.waitUntil(lambda: "Models: 3.0 MB" in page.disk_label.text(), timeout=5000)
    assert "free" in page.disk_label.text()
    assert (
        page.table_model.index(page.table_model.row_for(TEST_ID), Column.STATUS).data()
        == "Installed"
    )
    assert page.use_chat_button.isVisible() and page.delete_button.isVisible()


@pytest.mark.slow
def test_pause_keeps_partial_and_resume_finishes(qtbot, hub, make_page, store):
    hub.faults.rate = 1_000_000
    page = make_page()
    page.select_model(TEST_ID)
    page.download(TEST_ID)
    qtbot.waitUntil(lambda: page.progress_bar.value() >= 20, timeout=15_000)
    statuses: list[str] = []
    page.table_model.dataChanged.connect(lambda *_: statuses.append(_status(page, TEST_ID)))
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == PARTIAL, timeout=10_000)
    _settle(qtbot, page._runner)
    assert AVAILABLE not in statuses  # downloading -> partial, never "available" in between
    partials = [p for p in store.partials() if p.id == TEST_ID]
    assert partials and 0 < partials[0].bytes_done < FILE_SIZE + 4096
    done_at_pause = partials[0].bytes_done
    assert page.table_model.status_text(TEST_ID).startswith("Partial ")
    assert page.resume_button.isVisible() and not page.download_button.isVisible()
    assert (
        page.table_model.data(
            page.table_model.index(page.table_model.row_for(TEST_ID), 0), ProgressRole
        )
        > 0
    )

    hub.faults.rate = None
    sent_before = hub.stats.body_bytes
    qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == INSTALLED, timeout=20_000)
    assert [m.id for m in store.installed()] == [TEST_ID]
    # Resume continued the .part with a Range request: far less than the file was re-sent
    resent = hub.stats.body_bytes - sent_before
    assert resent <= FILE_SIZE - done_at_pause + 2 * 1024 * 1024
    assert any(r[2] for r in hub.stats.gets())  # a ranged GET


@pytest.mark.slow
def test_cancel_stops_and_deletes_the_partial(qtbot, hub, make_page, store):
    hub.faults.rate = 1_000_000
    page = make_page()
    page.select_model(TEST_ID)
    page.download(TEST_ID)
    qtbot.waitUntil(lambda: page.progress_bar.value() >= 10, timeout=15_000)
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == AVAILABLE, timeout=10_000)
    _settle(qtbot, page._runner)
    assert not [p for p in store.partials() if p.id == TEST_ID]
    assert not list(paths.models_dir().rglob("*.part"))
    assert store.installed() == []


@pytest.mark.slow
def test_partial_from_an_earlier_run_shows_percent_and_resumes(qtbot, hub, make_page, store):
    # an earlier process got 40-60% of the way and was stopped
    hub.faults.rate = 2_000_000
    token = CancelToken()

    def stop_midway(progress) -> None:
        if progress.total and progress.done >= 0.4 * progress.total:
            token.cancel("stopped by the test")

    with pytest.raises(Cancelled):
        store.pull(TEST_ID, cancel=token, on_progress=stop_midway)
    hub.faults.rate = None

    page = make_page()  # "after a restart"
    assert _status(page, TEST_ID) == PARTIAL
    text = page.table_model.status_text(TEST_ID)
    pct = int(text.removeprefix("Partial ").removesuffix("%"))
    assert 30 <= pct < 100
    page.select_model(TEST_ID)
    assert page.progress_bar.isVisible() and page.progress_bar.value() == pct
    assert page.resume_button.isVisible()
    qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == INSTALLED, timeout=20_000)
    assert store.get(TEST_ID) is not None


@pytest.mark.slow
def test_download_error_is_shown_and_page_keeps_working(qtbot, hub, make_page):
    hub.faults.resolve_status = 404
    page = make_page()
    page.download(TEST_ID)
    qtbot.waitUntil(lambda: page.error_banner.isVisible(), timeout=20_000)
    assert page.last_error
    assert _status(page, TEST_ID) != DOWNLOADING
    hub.reset()
    page.download(TEST_ID)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == INSTALLED, timeout=20_000)


# ----------------------------------------------------------------------------- delete, use


def _install(qtbot, page: ModelsPage) -> None:
    page.download(TEST_ID)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == INSTALLED, timeout=20_000)
    _settle(qtbot, page._runner)


@pytest.mark.slow
def test_delete_asks_then_removes(qtbot, hub, make_page, store, monkeypatch):
    page = make_page()
    _install(qtbot, page)
    path = store.get(TEST_ID).path
    assert Path(path).exists()
    page.select_model(TEST_ID)

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    _settle(qtbot, page._runner)
    assert store.get(TEST_ID) is not None  # "No" keeps it

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == AVAILABLE, timeout=10_000)
    assert store.installed() == []
    assert not Path(path).exists()


@pytest.mark.slow
def test_use_for_completion_writes_settings_toml(qtbot, hub, make_page):
    page = make_page()
    _install(qtbot, page)
    page.select_model(TEST_ID)
    assert page.use_completion_button.isEnabled()
    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        qtbot.mouseClick(page.use_completion_button, Qt.MouseButton.LeftButton)
    data = tomllib.loads(paths.settings_file().read_text(encoding="utf-8"))
    assert data["completion_model"] == TEST_ID
    assert "chat_model" not in data
    row = page.table_model.row_for(TEST_ID)
    assert page.table_model.index(row, Column.USED_FOR).data() == "completion"
    assert not page.use_completion_button.isEnabled()  # shows "✓ Completion model"
    assert "Completion" in page.use_completion_button.text()
    assert "Tiny Test" in page.chosen_label.text()

    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        qtbot.mouseClick(page.use_chat_button, Qt.MouseButton.LeftButton)
    data = tomllib.loads(paths.settings_file().read_text(encoding="utf-8"))
    assert data["chat_model"] == TEST_ID and data["completion_model"] == TEST_ID
    assert page.table_model.index(row, Column.USED_FOR).data() == "chat, completion"


# ----------------------------------------------------------------------------- imports


def test_bad_gguf_import_shows_error_and_page_keeps_working(qtbot, make_page, store, tmp_path):
    page = make_page()
    bad = tmp_path / "random.gguf"
    bad.write_bytes(os.urandom(200_000))
    page.import_paths([bad])
    qtbot.waitUntil(lambda: page.error_banner.isVisible(), timeout=10_000)
    assert "random.gguf" in page.error_banner.text()
    assert store.installed() == []

    good = tmp_path / "good-model.gguf"
    good.write_bytes(make_gguf(128 * 1024, name="Good Model"))
    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        page.import_paths([good])
    _settle(qtbot, page._runner)
    installed = store.installed()
    assert len(installed) == 1
    new_id = installed[0].id
    assert page.table_model.status_of(new_id) == INSTALLED
    assert page.selected_id() == new_id  # the import is selected, ready to "Use for chat"
    # its fit verdict comes from its own GGUF header (it has no catalog entry)
    assert page.table_model.model_row(new_id).fit_level in ("fits", "tight", "wont_fit")


def test_import_button_uses_file_dialog(qtbot, make_page, store, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    good = tmp_path / "dialog-model.gguf"
    good.write_bytes(make_gguf(64 * 1024, name="Dialog Model"))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(good), "GGUF"))
    page = make_page()
    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        qtbot.mouseClick(page.import_button, Qt.MouseButton.LeftButton)
    _settle(qtbot, page._runner)
    assert len(store.installed()) == 1


def test_drag_and_drop_of_gguf_files(qtbot, make_page, store, tmp_path):
    page = make_page()
    good = tmp_path / "dropped.gguf"
    good.write_bytes(make_gguf(64 * 1024, name="Dropped"))
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(good)), QUrl.fromLocalFile(str(text))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    page.dropEvent(event)
    qtbot.waitUntil(lambda: len(store.installed()) == 1, timeout=10_000)
    _settle(qtbot, page._runner)
    assert "notes.txt" in (page.last_error or "")  # the non-GGUF file is refused, readably
    assert page.table_model.row_for(store.installed()[0].id) is not None


# ----------------------------------------------------------------------------- stats, health


def test_completion_stats_panel_shows_recorded_numbers(qtbot, make_page):
    from hanlin.engine.completion.stats import AcceptanceRecorder

    recorder = AcceptanceRecorder()
    for _ in range(4):
        recorder.offered("python")
        recorder.shown("python")
    recorder.accepted("python", 42)
    recorder.flush()
    page = make_page()
    panel = page.stats_panel
    qtbot.waitUntil(lambda: panel.shown.text() == "4", timeout=5000)
    assert panel.accepted.text().startswith("1")
    assert panel.rate.text() == "25%"
    assert panel.chars.text() == "42"


def test_page_does_not_leak_none_references(qtbot, make_page):
    """PySide6 6.12.0 drops a reference to None on every void call (fatal after ~10k).

    Guard the installed Qt binding: the page's own routine must not drain None.
    """
    page = make_page()
    before = sys.getrefcount(None)
    for _ in range(400):
        page.proxy.set_text("qwen")
        page.proxy.set_text("")
    qtbot.wait(10)
    assert sys.getrefcount(None) > before - 500, "broken PySide6 build: use PySide6 != 6.12.0"


def test_worker_thread_does_the_engine_work(qtbot, runner, store, catalog, monkeypatch):
    """The page never scans the store on the GUI thread."""
    gui = threading.current_thread()
    threads: list[threading.Thread] = []
    real = store.installed

    def spy():
        threads.append(threading.current_thread())
        return real()

    monkeypatch.setattr(store, "installed", spy)
    page = ModelsPage(runner, store, catalog)
    qtbot.addWidget(page)
    _settle(qtbot, runner)
    assert threads and all(t is not gui for t in threads)
    assert page.table_model.rowCount() == len(catalog.entries)


def test_row_roles_for_filtering(catalog):
    model = CatalogTableModel()
    model.set_catalog(catalog.entries)
    row = model.row_for(TEST_ID)
    index = model.index(row, 0)
    assert model.data(index, FamilyRole) == "qwen2.5-coder"
    assert model.data(index, RolesRole) == ("chat", "completion")
    assert model.data(index, ProgressRole) == -1


def test_page_inside_the_main_window_updates_the_chat_model_picker(
    qtbot, runner, store, catalog, tmp_path
):
    """The main window embeds the page; an import there reaches the chat model list."""
    from hanlin.desktop.main_window import MainWindow
    from hanlin.engine.chat.history import History

    history = History()
    window = MainWindow(history, runner, store, catalog)
    qtbot.addWidget(window)
    window.show()
    window.show_models()
    page = window.models_page
    assert isinstance(page, ModelsPage)
    _settle(qtbot, runner)
    good = tmp_path / "window-model.gguf"
    good.write_bytes(make_gguf(64 * 1024, name="Window Model"))
    with qtbot.waitSignal(window.controller.modelsChanged, timeout=10_000):
        page.import_paths([good])
    _settle(qtbot, runner)
    new_id = store.installed()[0].id
    assert new_id in [m.id for m in window.controller.available_models()]
    window.shutdown()
    history.close()


def test_keyboard_enter_downloads_and_delete_asks(qtbot, hub, make_page, store, monkeypatch):
    page = make_page()
    page.select_model(TEST_ID)
    page.view.setFocus()
    qtbot.keyClick(page.view, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == INSTALLED, timeout=20_000)
    _settle(qtbot, page._runner)
    asked: list[str] = []

    def answer(*args, **kwargs):
        asked.append(args[1])
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    page.select_model(TEST_ID)
    qtbot.keyClick(page.view, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: _status(page, TEST_ID) == AVAILABLE, timeout=10_000)
    assert asked == ["Delete model"] and store.installed() == []


def test_partial_pull_by_hub_name_is_listed_and_resumes(qtbot, hub, make_page, store):
    """A `hanlin models pull hf.co/...` stopped part-way shows up and Resume finishes it."""
    hub.add_file("someone/Other-GGUF", "other-model-q4_k_m.gguf", make_gguf(2_000_000))
    ref = "hf.co/someone/Other-GGUF/other-model-q4_k_m.gguf"
    hub.faults.rate = 2_000_000
    token = CancelToken()

    def stop_midway(progress) -> None:
        if progress.total and progress.done >= 0.3 * progress.total:
            token.cancel("stopped by the test")

    with pytest.raises(Cancelled):
        store.pull(ref, cancel=token, on_progress=stop_midway)
    hub.faults.rate = None
    [partial] = store.partials()

    page = make_page()
    assert _status(page, partial.id) == PARTIAL
    row = page.table_model.model_row(partial.id)
    assert row.name == "other-model-q4_k_m" and not row.in_catalog
    assert page.table_model.pull_ref(partial.id) == ref
    page.select_model(partial.id)
    qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _status(page, partial.id) == INSTALLED, timeout=20_000)
    assert store.get(partial.id) is not None


def test_numbers_are_formatted_for_people():
    from hanlin.desktop.models_page.format import human_bytes, human_eta, human_rate, percent

    assert human_bytes(None) == "—"
    assert human_bytes(999) == "999 B"
    assert human_bytes(1_536_000) == "1.5 MB"
    assert human_bytes(986_000_000) == "986 MB"
    assert human_bytes(19_400_000_000) == "19.4 GB"
    assert human_rate(40e6) == "40 MB/s" and human_rate(3.1e6) == "3.1 MB/s"
    assert human_rate(0) == "" and human_rate(None) == ""
    assert human_eta(65) == "1:05 left" and human_eta(3723) == "1:02:03 left"
    assert human_eta(None) == "" and human_eta(float("nan")) == ""
    assert percent(50, 200) == 25 and percent(5, None) is None and percent(300, 200) == 100


def test_deleting_an_import_keeps_the_file(qtbot, make_page, store, tmp_path, monkeypatch):
    page = make_page()
    mine = tmp_path / "my-own.gguf"
    mine.write_bytes(make_gguf(64 * 1024, name="Mine"))
    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        page.import_paths([mine])
    _settle(qtbot, page._runner)
    model_id = store.installed()[0].id
    questions: list[str] = []

    def answer(*args, **kwargs):
        questions.append(args[2])
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    page.delete(model_id)
    qtbot.waitUntil(lambda: page.table_model.row_for(model_id) is None, timeout=10_000)
    assert "stays where it is" in questions[0]
    assert mine.exists() and store.installed() == []
