"""The window-decode benchmark drives the real window and the real `hanlin chat` and reports.

Its figures are a benchmark, not a test; what is tested is that one short repetition runs
both children on a real model (SmolLM2) and that what it reports comes from them: the
same answer length from both (greedy), decode speeds measured by the engine, a GUI
heartbeat that really ran while the window streamed, and the target line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_one_repetition_measures_window_and_cli(tmp_path: Path) -> None:
    out = tmp_path / "window.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.window_decode",
            "--reps",
            "1",
            "--tokens",
            "24",
            "--threads",
            "1",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Window decode vs `hanlin chat`" in proc.stdout
    assert "targets: window decode >= 0.95x hanlin chat:" in proc.stdout
    runs = json.loads(out.read_text())["runs"]
    cli, window = runs["cli@1"], runs["window@1"]
    assert len(cli) == len(window) == 1
    for run in (cli[0], window[0]):
        assert run["tokens_per_s"] > 0
        assert run["tokens"] == 24  # greedy, same length cap: both wrote the whole answer
    # the heartbeat ran on the GUI thread while the answer streamed, and it laid out text
    assert window[0]["max_gap_ms"] > 0
    assert window[0]["layouts"] >= 1
