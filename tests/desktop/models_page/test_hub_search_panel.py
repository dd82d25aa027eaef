"""The Models page's "Search the Hub", "New from the labs" and "Scan disk", with real widgets.

The page runs offscreen (pytest-qt) against the tests' real local Hub server and a disk
that already holds models (tests/support/fake_disk.py); every engine call goes through
the page's TaskRunner, as in the app.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox

from hanlin.desktop.models_page.disk_scan_dialog import FAMILY, PICK
from hanlin.desktop.models_page.format import human_bytes
from hanlin.desktop.models_page.hub_search_panel import FIT, SIZE, STATUS
from hanlin.desktop.models_page.page import ModelsPage
from hanlin.desktop.tasks import TaskRunner
from hanlin.engine.models.catalog import load_catalog
from hanlin.engine.store.model_store import ModelStore
from tests.support import fake_hub_fixtures
from tests.support.fake_disk import BROKEN, EXPECTED, FakeDisk, build_fake_disk
from tests.support.fake_hub import FakeHub, make_gguf

fake_hub = fake_hub_fixtures.fake_hub  # the fixture, visible to pytest in this module

TINY = "Qwen/Tiny-Chat-GGUF"
SPLIT = "unsloth/Tiny-Big-GGUF"
GATED = "meta-lab/Gated-GGUF"


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_file(TINY, "Tiny-Chat-Q8_0.gguf", make_gguf(2_000_000, seed=1, name="Tiny"))
    fake_hub.add_file(TINY, "mmproj-Tiny-F16.gguf", make_gguf(10_000, seed=2))
    fake_hub.set_repo_info(TINY, downloads=1500, last_modified="2025-06-01T00:00:00.000Z")
    for i in (1, 2):
        name = f"Q4_K_M/Tiny-Big-Q4_K_M-0000{i}-of-00002.gguf"
        fake_hub.add_file(SPLIT, name, make_gguf(50_000, seed=10 + i))
    fake_hub.set_repo_info(SPLIT, downloads=20, last_modified="2025-09-01T00:00:00.000Z")
    fake_hub.add_file(GATED, "Gated-Q4_K_M.gguf", make_gguf(20_000, seed=3), gated_token="hf_x")
    return fake_hub


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    r.shutdown(10_000)


@pytest.fixture
def store() -> ModelStore:
    return ModelStore(catalog=load_catalog())


@pytest.fixture
def page(qtbot, runner, store) -> ModelsPage:
    widget = ModelsPage(runner, store, store.catalog, progress_interval_ms=100)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    qtbot.waitUntil(lambda: runner.active_count() == 0, timeout=15_000)
    return widget


def _settle(qtbot, runner: TaskRunner) -> None:
    qtbot.waitUntil(lambda: runner.active_count() == 0, timeout=15_000)


def test_nothing_is_asked_until_the_user_opens_it(qtbot, hub, page, runner) -> None:
    page.show_hub_search()
    _settle(qtbot, runner)
    assert page.stack.currentWidget() is page.hub_panel
    assert not page.search_edit.isVisible()  # the catalog's own filter is for the catalog
    assert hub.stats.requests == []
    page.show_new_from_labs()
    panel = page.hub_panel
    qtbot.waitUntil(lambda: len(panel.group_refs()) >= 2 and not panel.busy(), timeout=15_000)
    assert panel.repo_names() == [SPLIT, TINY]  # newest first (the gated repo's owner is not
    # a trusted publisher)
    assert any(r[1] == "/api/models" for r in hub.stats.requests)
    asked = len(hub.stats.requests)
    page.show_catalog()
    page.show_new_from_labs()  # back again: the Hub is asked again only on Refresh
    _settle(qtbot, runner)
    assert page.stack.currentWidget() is panel and len(hub.stats.requests) == asked
    qtbot.mouseClick(panel.refresh_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(panel.group_refs()) >= 2 and not panel.busy(), timeout=15_000)
    assert len(hub.stats.requests) > asked
    page.show_catalog()
    assert page.stack.currentWidget() is not panel and page.search_edit.isVisible()


def test_search_shows_file_groups_with_fit_and_one_click_downloads(
    qtbot, hub, page, runner, store
) -> None:
    page.show_hub_search()
    panel = page.hub_panel
    panel.query_edit.setText("tiny")
    qtbot.mouseClick(panel.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(panel.group_refs()) == 2 and not panel.busy(), timeout=15_000)
    assert panel.repo_names() == [TINY, SPLIT]  # most downloaded first
    single = f"hf.co/{TINY}/Tiny-Chat-Q8_0.gguf"
    split = f"hf.co/{SPLIT}/Q4_K_M/Tiny-Big-Q4_K_M-00001-of-00002.gguf"
    assert panel.group_refs() == [single, split]  # no projector
    split_item = panel.group_item(split)
    assert "(2 parts)" in split_item.text(0)
    parts = hub._repos[SPLIT].files.values()
    assert split_item.text(SIZE) == human_bytes(sum(f.size for f in parts))  # the whole set
    assert split_item.text(FIT) in ("Fits", "Tight", "Won't fit")
    assert split_item.toolTip(FIT)  # the reason
    # one click gets it, with its progress in the line, then "Installed"
    assert panel.select_group(single)
    assert "hanlin models pull" in panel.details_label.text()
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.group_item(single).text(STATUS) == "Installed", timeout=20_000)
    installed = {m.file: m for m in store.installed()}
    assert "Tiny-Chat-Q8_0.gguf" in installed
    assert not panel.download_button.isEnabled()
    # the catalog view lists the new model too
    qtbot.waitUntil(
        lambda: page.table_model.row_for(installed["Tiny-Chat-Q8_0.gguf"].id) is not None,
        timeout=15_000,
    )
    _settle(qtbot, runner)


def test_offline_and_gated_repos_say_what_to_do(
    qtbot, hub, page, runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = page.hub_panel
    page.show_hub_search()
    panel.query_edit.setText("gated")
    panel.search()
    qtbot.waitUntil(lambda: GATED in panel.repo_names() and not panel.busy(), timeout=15_000)
    repo_item = panel.tree.topLevelItem(0)
    assert "gated" in repo_item.text(STATUS)
    note = repo_item.child(0)
    assert "gated" in note.text(0) and "HF_TOKEN" in note.toolTip(0)
    assert f"https://huggingface.co/{GATED}" in note.toolTip(0)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.stats.requests)
    panel.query_edit.setText("tiny")
    panel.search()
    qtbot.waitUntil(lambda: panel.last_error is not None, timeout=15_000)
    assert "Offline mode is on" in panel.last_error
    assert panel.error_banner.isVisible() and panel.group_refs() == []
    assert len(hub.stats.requests) == asked
    panel.query_edit.setText("")
    panel.search()  # nothing typed: a hint, no request
    assert "Type what to look for" in panel.status_label.text()
    _settle(qtbot, runner)


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDisk:
    built = build_fake_disk(tmp_path / "disk")
    built.apply(monkeypatch)
    return built


def test_scan_disk_registers_in_place_with_a_corrected_family(
    qtbot, disk, page, runner, store
) -> None:
    qtbot.mouseClick(page.scan_button, Qt.MouseButton.LeftButton)
    dialog = page.disk_scan_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=15_000)
    ids = [dialog.table.item(r, 1).text() for r in range(dialog.table.rowCount())]
    assert sorted(ids) == sorted(EXPECTED)
    problems = dialog.problems_view.toPlainText().splitlines()
    assert len(problems) == len(BROKEN) and dialog.problems_view.isVisible()
    # correct the family of the folder model, leave the Ollama one out
    row_of = {model_id: r for r, model_id in enumerate(ids)}
    combo = dialog.table.cellWidget(row_of["tiny-folder-q8_0"], FAMILY)
    assert isinstance(combo, QComboBox)
    combo.setCurrentIndex(combo.findData("qwen3"))
    dialog.table.item(row_of["tiny-coder"], PICK).setCheckState(Qt.CheckState.Unchecked)
    qtbot.mouseClick(dialog.register_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(store.installed()) == 3, timeout=15_000)
    qtbot.waitUntil(
        lambda: page.table_model.row_for("tiny-folder-q8_0") is not None, timeout=15_000
    )
    _settle(qtbot, runner)
    models = {m.id: m for m in store.installed()}
    assert models["tiny-folder-q8_0"].family == "qwen3"
    assert {m.id: m.origin for m in models.values()} == {
        k: v for k, v in EXPECTED.items() if k != "tiny-coder"
    }
    assert page.table_model.status_text("tiny-chat-q8_0") == "Installed (Hugging Face cache)"
    row = page.table_model.model_row("tiny-split-q8_0")
    assert row is not None and "LM Studio" in row.description
    # the rescan after registering shows them as registered; the Ollama one is still new
    qtbot.waitUntil(lambda: dialog.register_button.isEnabled(), timeout=15_000)
    assert [f.model_id for f in dialog.report.new] == ["tiny-coder"]
    assert all(p.is_file() for p in disk.paths.values())
    dialog.close()
