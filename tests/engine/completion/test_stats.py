"""hanlin.engine.completion.stats: private acceptance statistics on disk."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from hanlin.engine.completion.stats import (
    AcceptanceRecorder,
    load_completion_stats,
    stats_file,
)


def test_counts_are_added_to_the_file(hanlin_home: Path) -> None:
    rec = AcceptanceRecorder()
    assert rec.flush() is None  # nothing pending, nothing written
    assert not stats_file().exists()
    rec.offered("python")
    rec.offered("python")
    rec.shown("python")
    rec.accepted("python", 12)
    rec.partially_accepted("rust", 4)
    rec.flush()
    stats = load_completion_stats()
    assert stats.languages["python"].offered == 2
    assert stats.languages["python"].accepted == 1
    assert stats.languages["python"].chars_accepted == 12
    assert stats.languages["rust"].partially_accepted == 1
    assert stats.total.chars_accepted == 16
    assert stats.total.acceptance_rate == 1.0  # 2 taken / 1 shown, capped
    assert stats.since is not None and stats.updated is not None
    # a second recorder (another editor's server) adds, never overwrites
    other = AcceptanceRecorder()
    other.accepted("python", 3)
    other.flush()
    assert load_completion_stats().languages["python"].chars_accepted == 15


def test_concurrent_flushes_lose_nothing(hanlin_home: Path) -> None:
    recorders = [AcceptanceRecorder() for _ in range(4)]

    def work(rec: AcceptanceRecorder) -> None:
        for _ in range(50):
            rec.accepted("go", 1)
            rec.flush()

    threads = [threading.Thread(target=work, args=(r,)) for r in recorders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert load_completion_stats().languages["go"].accepted == 200


def test_damaged_file_is_moved_aside(hanlin_home: Path) -> None:
    path = stats_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json", encoding="utf-8")
    assert load_completion_stats().total.accepted == 0  # readers never raise
    rec = AcceptanceRecorder()
    rec.accepted("c", 2)
    rec.flush()
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["languages"]["c"]["accepted"] == 1
    assert list(path.parent.glob("completion_stats.json.broken-*"))


def test_servers_in_several_processes_flushing_at_once_lose_no_count(hanlin_home: Path) -> None:
    import subprocess
    import sys

    script = (
        "from hanlin.engine.completion.stats import AcceptanceRecorder\n"
        "rec = AcceptanceRecorder()\n"
        "for _ in range(25):\n"
        "    rec.offered('python')\n"
        "    rec.accepted('python', 2)\n"
        "    rec.flush()\n"
    )
    root = Path(__file__).resolve().parents[3]
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=root) for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    python = load_completion_stats().languages["python"]
    assert python.offered == 100
    assert python.chars_accepted == 200
