"""The TaskRunner: work off the GUI thread, outcomes on it, stale results dropped, clean exit."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time

import pytest
from PySide6.QtCore import QThread

from hanlin.desktop.tasks import TaskRunner
from hanlin.engine.core.errors import Cancelled, ModelLoadError


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    r.shutdown(5000)


def _gui_thread():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance().thread()


def test_result_arrives_on_gui_thread_and_work_runs_off_it(qtbot, runner):
    seen = {}

    def work(cancel, on_progress):
        seen["worker_is_gui"] = QThread.currentThread() == _gui_thread()
        return 41 + 1

    def done(value):
        seen["value"] = value
        seen["done_is_gui"] = QThread.currentThread() == _gui_thread()

    runner.submit(work, on_done=done)
    qtbot.waitUntil(lambda: "value" in seen, timeout=5000)
    assert seen == {"worker_is_gui": False, "value": 42, "done_is_gui": True}
    assert runner.active_count() == 0


def test_error_goes_to_on_error_and_cancelled_to_on_cancelled(qtbot, runner):
    got = []

    def fail(cancel, on_progress):
        raise ModelLoadError("broken file", "pick another model")

    def cancelled(cancel, on_progress):
        raise Cancelled()

    runner.submit(fail, on_error=got.append, on_done=lambda r: got.append("done"))
    runner.submit(cancelled, on_error=got.append, on_cancelled=lambda: got.append("cancelled"))
    qtbot.waitUntil(lambda: len(got) == 2, timeout=5000)
    assert "cancelled" in got
    errors = [g for g in got if isinstance(g, ModelLoadError)]
    assert len(errors) == 1 and errors[0].hint == "pick another model"


def test_cancel_stops_a_running_task(qtbot, runner):
    started = threading.Event()
    got = []

    def long(cancel, on_progress):
        started.set()
        while not cancel.wait(0.01):
            pass
        cancel.raise_if_cancelled()

    handle = runner.submit(long, on_cancelled=lambda: got.append("stopped"))
    assert started.wait(5)
    handle.cancel()
    qtbot.waitUntil(lambda: got == ["stopped"], timeout=5000)
    assert handle.finished and handle.cancelled


def test_newer_task_with_same_key_makes_older_result_stale(qtbot, runner):
    release = threading.Event()
    got = []

    def slow(cancel, on_progress):
        release.wait(5)
        return "old"

    def fast(cancel, on_progress):
        return "new"

    old = runner.submit(slow, on_done=got.append, key="search")
    runner.submit(fast, on_done=got.append, key="search")
    qtbot.waitUntil(lambda: got == ["new"], timeout=5000)
    assert not runner.is_current(old)
    release.set()
    qtbot.waitUntil(lambda: runner.active_count() == 0, timeout=5000)
    assert got == ["new"]  # "old" arrived and was dropped


def test_progress_is_coalesced_and_latest_value_wins(qtbot, runner):
    seen = []
    done = []

    def chatty(cancel, on_progress):
        for i in range(20000):
            on_progress(i)
        time.sleep(0.05)  # let the GUI drain the last report before `done`
        return "ok"

    runner.submit(chatty, on_progress=seen.append, on_done=done.append)
    qtbot.waitUntil(lambda: done == ["ok"], timeout=10000)
    assert seen, "no progress delivered"
    assert seen[-1] == 19999
    assert len(seen) < 20000  # coalesced, not one delivery per report
    assert seen == sorted(seen)


def test_shutdown_cancels_and_waits(qtbot):
    runner = TaskRunner()
    finished = threading.Event()
    delivered = []

    def long(cancel, on_progress):
        while not cancel.wait(0.01):
            pass
        finished.set()
        return "late"

    runner.submit(long, on_done=delivered.append)
    runner.submit(long, on_done=delivered.append)
    assert runner.shutdown(5000) is True
    assert finished.is_set()
    qtbot.wait(50)
    assert delivered == []  # nothing delivered after shutdown
    with pytest.raises(RuntimeError):
        runner.submit(long)


def test_busy_changed_reports_idle_and_busy(qtbot, runner):
    states = []
    runner.busyChanged.connect(states.append)
    runner.submit(lambda c, p: 1)
    qtbot.waitUntil(lambda: states == [True, False], timeout=5000)
