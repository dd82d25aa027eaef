"""hanlin.engine.core.locks: a cross-process lock with a bounded wait that names its holder.

Real processes hold the lock (a child interpreter), because that is the case the lock is
for: the desktop app and the command line pulling the same model at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import BusyError, Cancelled
from hanlin.engine.core.locks import FileLock

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hanlin.engine.core.locks import FileLock

    lock = FileLock(Path(sys.argv[1]), "A download of `smol`", {"id": "smol"}).acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    lock.release()
    print("released", flush=True)
    """
)


def _hold_in_child(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), str(seconds), "pull", "smol"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_refuses_after_the_bounded_wait_and_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "smol.lock"
    proc = _hold_in_child(path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(BusyError) as err:
            FileLock(path, "A download of `smol`").acquire(wait=0.5)
        waited = time.monotonic() - started
        assert 0.4 <= waited < 3.0
        message = str(err.value)
        assert message.startswith("A download of `smol` is already in progress")
        assert f"process {proc.pid}" in message and "30 pull" in message  # its command line
        assert "wait for it to finish" in message
    finally:
        proc.kill()
        proc.wait()


def test_waiting_ends_when_the_holder_releases(tmp_path: Path) -> None:
    path = tmp_path / "manifest.lock"
    proc = _hold_in_child(path, 0.5)
    try:
        with FileLock(path, "An update of the model list").acquire(wait=20) as lock:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "released"
            assert lock.holder() is not None and lock.holder()["pid"] == os.getpid()
        assert lock.holder() is None  # the note goes with the lock
    finally:
        proc.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "smol.lock"
    proc = _hold_in_child(path, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    FileLock(path, "A download of `smol`").acquire(wait=0).release()


def test_cancel_stops_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "smol.lock"
    proc = _hold_in_child(path, 30)
    try:
        token = CancelToken()
        threading.Timer(0.2, token.cancel, args=("the user pressed Stop",)).start()
        started = time.monotonic()
        with pytest.raises(Cancelled, match="pressed Stop"):
            FileLock(path, "A download of `smol`").acquire(wait=20, cancel=token)
        assert time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()


def test_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "stats.lock"
    inside = 0
    overlaps: list[int] = []

    def worker() -> None:
        nonlocal inside
        for _ in range(20):
            with FileLock(path, "Saving completion statistics").acquire(wait=20):
                inside += 1
                if inside > 1:
                    overlaps.append(inside)
                time.sleep(0.001)
                inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []


def test_release_is_idempotent_and_the_lock_can_be_taken_again(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock", "Something")
    with lock, pytest.raises(BusyError):
        FileLock(tmp_path / "x.lock", "Something").acquire(wait=0)
    lock.release()
    with lock:
        pass
