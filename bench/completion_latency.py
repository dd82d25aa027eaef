"""Completion latency against llama.vscode + llama-server, on real files no one here wrote.

Every keystroke of several edit patterns (bench/completion_patterns.py: typing at the
end of a file, a new line inside a function with code after it, jumping between two
files, deleting and retyping a line, typing through a shown completion, accepting one)
is replayed on files picked at run time by a seed (bench/completion_corpus.py: the
Python standard library, npm packages, llama.cpp's C sources), through:

1. `hanlin-lsp` over stdio, as shipped (only the model, threads, context length,
   `maxTokens` and `timeBudgetMs` are set): `didChange`, then
   `textDocument/inlineCompletion`, `textDocument/didShowCompletion` when something is
   shown, the item's `hanlin.acceptCompletion` command when it is accepted;
2. llama.cpp's own `llama-server` (same llama.cpp, bench/llama_tools.py) driven exactly
   as llama.vscode drives it (bench/completion_peer.py: `/infill` with its ring of
   chunks, its result cache, its speculative request after each shown hint).

The rows are interleaved: each action goes to every server in turn (the order
alternates), so both see the same load on cores shared with other work. Reported per
model, file and pattern: p50 and p95 of the client's wall-clock wait per request, the
share of requests that showed nothing, and characters per shown completion, with the
ratios against the peer; for `accept`, how often the completion after accepting was
ready within 50 ms. Then the first-ghost-text measurement: a fresh ~500-line file is
opened, left alone for 5 s, then typed into at 150 ms a keystroke (an editor sends the
request for the latest text; keys typed meanwhile are sent as changes only): the time
from the first keystroke to the first non-empty completion.

    python -m bench.completion_latency                        # SmolLM2 + shaped 0.5B
    python -m bench.completion_latency --models smollm2 --patterns fim,tail --max-keystrokes 6
    python -m bench.completion_latency --files a.py b.go --seed 3 --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from bench.completion_corpus import CorpusFile, pick_file, select_corpus
from bench.completion_patterns import (
    ACCEPT_READ_S,
    PATTERNS,
    Answer,
    Editor,
    Focus,
    Idle,
    Open,
    Sample,
    Step,
    _inner_sites,
    _keys_for,
    build_script,
)
from bench.completion_peer import LlamaServer, VscodePeer

ROOT = Path(__file__).resolve().parent.parent

#: a request answered within this is "ready" (the accept-then-type-on target)
READY_MS = 50.0
#: typing speed of the first-ghost measurement (about 400 characters a minute)
KEY_INTERVAL_S = 0.15


# ---------------------------------------------------------------------------- an LSP client


class LspClient:
    """A minimal JSON-RPC-over-stdio LSP client (what an editor does, no more)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], stderr: Any) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=ROOT,
            env=env,
        )
        self._ids = itertools.count(1)
        self._responses: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.settings: dict[str, Any] = {}
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _read_loop(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length is None:
                continue
            message = json.loads(stream.read(length))
            if "id" in message and "method" in message:  # a request from the server
                self._answer_server_request(message)
            elif "id" in message:
                with self._lock:
                    box = self._responses.get(message["id"])
                if box is not None:
                    box.put(message)

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        method = message["method"]
        result: Any = None
        if method == "workspace/configuration":
            items = message.get("params", {}).get("items", [])
            result = [self.settings for _ in items]
        self._send({"id": message["id"], "result": result})

    def request(self, method: str, params: Any, timeout: float = 600.0) -> Any:
        rid = next(self._ids)
        box: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._responses[rid] = box
        self._send({"id": rid, "method": method, "params": params})
        try:
            reply = box.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no answer to {method} within {timeout:.0f} s") from None
        finally:
            with self._lock:
                self._responses.pop(rid, None)
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        return reply.get("result")

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=30)
            self.notify("exit", None)
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------- hanlin-lsp


def _wait_ready(client: LspClient, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = client.request("hanlin/completionStats", None)
        state = stats.get("state")
        if state == "ready":
            return
        if state == "failed":
            raise SystemExit(f"hanlin-lsp could not load the model: {stats}")
        time.sleep(0.2)
    raise SystemExit("hanlin-lsp did not load the model in time")


class HanlinEditor(Editor):
    """An editor in front of one fresh `hanlin-lsp` process, speaking LSP over stdio."""

    name = "hanlin-lsp"

    def __init__(self, options: dict[str, Any], log_path: Path, workspace: Path) -> None:
        super().__init__()
        self.options, self.log_path, self.workspace = options, log_path, workspace
        self.home = Path(tempfile.mkdtemp(prefix="hanlin-bench-"))
        self.versions: dict[str, int] = {}
        self.item: dict[str, Any] | None = None

    def uri(self, doc: str) -> str:
        return (self.workspace / doc).as_uri()

    def start(self) -> None:
        env = {**os.environ, "HANLIN_HOME": str(self.home)}
        self._log = self.log_path.open("w")
        self.client = LspClient([sys.executable, "-m", "hanlin.lsp_server.main"], env, self._log)
        self.client.settings = dict(self.options)
        folder = self.workspace.as_uri()
        self.client.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": folder,
                "workspaceFolders": [{"uri": folder, "name": "bench"}],
                "capabilities": {
                    "textDocument": {"inlineCompletion": {"dynamicRegistration": False}},
                    "window": {"workDoneProgress": True},
                },
                "initializationOptions": self.options,
            },
        )
        self.client.notify("initialized", {})
        _wait_ready(self.client)
        self.client.request("hanlin/completionStats", None)  # start from an empty list

    def did_open(self, doc: str, text: str, language: str) -> None:
        self.versions[doc] = 1
        item = {"uri": self.uri(doc), "languageId": language, "version": 1, "text": text}
        self.client.notify("textDocument/didOpen", {"textDocument": item})

    def did_change(self, doc: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.versions[doc] += 1
        change = {
            "range": {
                "start": {"line": start[0], "character": start[1]},
                "end": {"line": end[0], "character": end[1]},
            },
            "text": text,
        }
        self.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri(doc), "version": self.versions[doc]},
                "contentChanges": [change],
            },
        )

    def did_close(self, doc: str) -> None:
        self.client.notify("textDocument/didClose", {"textDocument": {"uri": self.uri(doc)}})

    def did_accept(self) -> None:
        command = (self.item or {}).get("command")
        if command:
            self.client.request(
                "workspace/executeCommand",
                {"command": command["command"], "arguments": command.get("arguments", [])},
            )

    def complete(self) -> Answer:
        position = {"line": self.line, "character": self.character}
        started = time.perf_counter()
        answer = self.client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri(self.active)},
                "position": position,
                "context": {"triggerKind": 2},
            },
        )
        latency = (time.perf_counter() - started) * 1000
        items = answer.get("items", []) if isinstance(answer, dict) else (answer or [])
        self.item = items[0] if items else None
        text = self.item["insertText"] if self.item else ""
        if isinstance(text, dict):
            text = text.get("value", "")
        if self.item:
            self.client.notify("textDocument/didShowCompletion", {"item": self.item})
        results = self.client.request("hanlin/completionStats", None)["requests"]
        info = dict(results[-1]) if results else {}
        info.pop("text", None)
        return Answer(text, latency, info)

    def stop(self) -> None:
        try:
            self.client.close()
        finally:
            self._log.close()
            shutil.rmtree(self.home, ignore_errors=True)


# ---------------------------------------------------------------------------- models


def model_path(name: str) -> Path:
    if name == "smollm2":
        from tests.conftest import smollm2_gguf

        return smollm2_gguf()
    if name == "qwen0.5b":
        from bench.shaped_model import shaped_qwen_0_5b

        return shaped_qwen_0_5b()
    if name == "qwen1.5b":
        from bench.shaped_model import shaped_qwen_1_5b

        return shaped_qwen_1_5b()
    path = Path(name)
    if not path.is_file():
        raise SystemExit(f"--models: {name!r} is not smollm2, qwen0.5b, qwen1.5b or a GGUF file")
    return path


# ---------------------------------------------------------------------------- the replay


def _process(editor: Editor) -> psutil.Process | None:
    """The server process behind an editor (hanlin-lsp, or llama-server)."""
    proc = getattr(editor, "client", None) or getattr(getattr(editor, "server", None), "proc", None)
    proc = getattr(proc, "proc", proc)
    try:
        return psutil.Process(proc.pid) if proc is not None else None
    except psutil.Error:
        return None


class Slices:
    """Time slices: only one server runs at a time, the others are suspended (SIGSTOP).

    Interleaving puts every server under the same load, but one server's background
    work (Hanlin's warm-up and prefetch, the peer's speculative requests) must neither
    slow down another's measured request nor get unlimited free time while the other
    works. So a server runs only while it replays a script: its requests, `think_s`
    on its own after each (the user's pause before the next key), and each pause of
    the script (`Idle`), alone; the servers take turns script by script.
    """

    def __init__(self, editors: Sequence[Editor], think_s: float = KEY_INTERVAL_S) -> None:
        self.editors, self.think_s = list(editors), think_s
        self.procs = {id(e): _process(e) for e in editors}
        self.running: set[int] = {id(e) for e in editors}

    def _set(self, editor: Editor, run: bool) -> None:
        proc = self.procs.get(id(editor))
        if proc is None or (id(editor) in self.running) == run:
            return
        try:
            proc.resume() if run else proc.suspend()
        except psutil.Error:
            return
        (self.running.add if run else self.running.discard)(id(editor))

    def only(self, editor: Editor) -> None:
        for e in self.editors:
            if e is not editor:
                self._set(e, False)
        self._set(editor, True)

    def all(self) -> None:
        for e in self.editors:
            self._set(e, True)


#: scripts replayed so far: which server goes first alternates from one to the next
_REPLAYS = itertools.count()


def replay(
    editors: Sequence[Editor], script: Sequence[Step], file: str, pattern: str, slices: Slices
) -> dict[str, list[Sample]]:
    """The whole script on each editor in turn (the first one alternates between scripts),
    each alone while it replays.

    Not keystroke by keystroke in turn: a suspended server's clocks run on, so every
    keystroke would arrive after what looks to it like a long pause (the other server's
    request) — its idle work (a warm-up waiting for a pause in typing) would start at
    every key, which a user typing steadily never causes.
    """
    out: dict[str, list[Sample]] = defaultdict(list)
    order = list(editors) if next(_REPLAYS) % 2 == 0 else list(reversed(editors))
    for e in order:
        slices.only(e)
        for step in script:
            if isinstance(step, Idle):
                e.idle(step.seconds)
                time.sleep(step.seconds)
                continue
            sample = e.apply(step, file, pattern)
            if sample is not None:
                out[e.name].append(sample)
                _trace(e.name, sample)
                time.sleep(slices.think_s)
    for e in editors:
        slices.only(e)
        if isinstance(e, VscodePeer):
            e.close()
    return out


VERBOSE = False


def _trace(name: str, s: Sample) -> None:
    if VERBOSE:
        info = s.info
        print(
            f"  {name[:12]:<12} {s.file[:14]:<14} {s.pattern:<7} {s.kind:<6} "
            f"{s.latency_ms:8.1f} ms eval {info.get('tokensEvaluated', '-')!s:>5} "
            f"gen {info.get('generatedTokens', '-')!s:>3} {info.get('stopReason', '-')!s:<8} "
            f"{s.text[:40]!r}",
            file=sys.stderr,
            flush=True,
        )


def first_ghost(editor: Editor, corpus_file: CorpusFile, seed: int, limit_s: float = 30.0) -> dict:
    """Open a fresh file, wait 5 s, type at 150 ms a key: time to the first non-empty answer."""
    import random

    lines = corpus_file.text().split("\n")
    sites = _inner_sites(lines)
    site = random.Random(f"{seed}:ghost").choice(sites)
    doc = f"ghost/{corpus_file.label}"
    text = "\n".join([*lines[:site], *lines[site + 1 :]])
    editor.apply(Open(doc, text, corpus_file.language), doc, "ghost")
    editor.apply(Focus(doc, site - 1, len(lines[site - 1])), doc, "ghost")
    editor.idle(5.0)
    time.sleep(5.0)
    keys = ["\n" + lines[site][: len(lines[site]) - len(lines[site].lstrip())]]
    keys += _keys_for(lines, site, 400)
    t0 = time.perf_counter()
    typed = requests = 0
    waits: list[float] = []
    first_full: float | None = None
    while typed < len(keys):
        due = min(len(keys), int((time.perf_counter() - t0) / KEY_INTERVAL_S) + 1)
        if due <= typed:
            time.sleep(t0 + typed * KEY_INTERVAL_S - time.perf_counter())
            continue
        while typed < due:  # keys typed while the last request ran: changes only
            editor._insert(keys[typed])
            typed += 1
        answer = editor.complete()
        requests += 1
        waits.append(answer.latency_ms)
        # A random-weight model writes noise that the filters may drop: also note the first
        # answer the model finished within the budget on the full prompt (not cut, not a
        # small window), which is when a real model's ghost text would show.
        if first_full is None and _finished(answer.info):
            first_full = time.perf_counter() - t0
        if answer.text:
            return {
                "first_ghost_s": time.perf_counter() - t0,
                "first_finished_s": first_full,
                "requests": requests,
                "keys": typed,
                "text": answer.text[:60],
                "waits_ms": [round(w) for w in waits],
            }
        if time.perf_counter() - t0 > limit_s:
            break
    return {
        "first_ghost_s": None,
        "first_finished_s": first_full,
        "requests": requests,
        "keys": typed,
        "waits_ms": waits,
    }


def _finished(info: dict[str, Any]) -> bool:
    """Whether an answer ran the model to a natural stop on the full prompt within budget."""
    if info.get("fromCache") or info.get("smallWindow") or info.get("error"):
        return False
    return str(info.get("stopReason", "")) not in ("time", "cancelled", "")


# ---------------------------------------------------------------------------- figures


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(samples: Sequence[Sample]) -> dict[str, float]:
    lat = [s.latency_ms for s in samples]
    shown = [len(s.text) for s in samples if s.text]
    n = len(samples)
    return {
        "n": n,
        "p50": statistics.median(lat) if lat else float("nan"),
        "p95": pct(lat, 0.95),
        "empty": (n - len(shown)) / n if n else float("nan"),
        "chars": statistics.fmean(shown) if shown else 0.0,
        "ready": sum(1 for v in lat if v <= READY_MS) / n if n else float("nan"),
    }


def _fmt_row(label: str, ours: dict[str, float], peer: dict[str, float] | None) -> str:
    line = (
        f"{label:<30} {ours['n']:>4} {ours['p50']:>8.0f} {ours['p95']:>8.0f} "
        f"{ours['empty']:>6.0%} {ours['chars']:>6.1f}"
    )
    if peer is None:
        return line
    r50 = ours["p50"] / peer["p50"] if peer["p50"] else float("nan")
    r95 = ours["p95"] / peer["p95"] if peer["p95"] else float("nan")
    return line + (
        f" | {peer['p50']:>8.0f} {peer['p95']:>8.0f} {peer['empty']:>6.0%} {peer['chars']:>6.1f}"
        f" | {r50:>5.2f}x {r95:>5.2f}x"
    )


def report(model: str, samples: dict[str, list[Sample]], peer_name: str | None) -> dict:
    """Print the tables of one model row; return the summaries (for --json)."""
    ours_all = [s for s in samples.get(HanlinEditor.name, []) if s.kind == "type"]
    peer_all = [s for s in samples.get(peer_name or "", []) if s.kind == "type"]
    head = f"{'':<30} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'empty':>6} {'chars':>6}"
    if peer_name:
        head += f" | {'peer p50':>8} {'p95':>8} {'empty':>6} {'chars':>6} | {'p50':>6} {'p95':>6}"
    print(
        f"\n== {model}: hanlin-lsp"
        + (" | llama-server as llama.vscode | ratio" if peer_name else "")
    )
    print(head)
    print("-" * len(head))
    out: dict[str, Any] = {"by": {}}

    def group(key: Callable[[Sample], str], title: str) -> None:
        keys = sorted({key(s) for s in ours_all})
        for k in keys:
            o = summarize([s for s in ours_all if key(s) == k])
            p = summarize([s for s in peer_all if key(s) == k]) if peer_name else None
            print(_fmt_row(f"{title} {k}"[:30], o, p))
            out["by"][f"{title} {k}"] = {"hanlin": o, "peer": p}

    group(lambda s: s.file, "file")
    group(lambda s: s.pattern, "pattern")
    o, p = summarize(ours_all), summarize(peer_all) if peer_name else None
    print(_fmt_row("all typing", o, p))
    out["all"] = {"hanlin": o, "peer": p}
    if peer_name and p:
        files = sorted({s.file for s in ours_all})
        wins = sum(
            1
            for f in files
            if summarize([s for s in ours_all if s.file == f])["p50"]
            <= 0.7 * summarize([s for s in peer_all if s.file == f])["p50"]
        )
        out["files_p50_le_0.7x"] = f"{wins}/{len(files)}"
        print(f"files with hanlin p50 <= 0.7x the peer's: {wins}/{len(files)}")
    ours_every = samples.get(HanlinEditor.name, [])
    drafted = sum(int(s.info.get("draftedTokens") or 0) for s in ours_every)
    accepted = sum(int(s.info.get("acceptedTokens") or 0) for s in ours_every)
    shifted = sum(int(s.info.get("tokensShifted") or 0) for s in ours_every)
    small = sum(1 for s in ours_every if s.info.get("smallWindow"))
    notes = sum(1 for s in ours_every if s.info.get("budgetNote"))
    print(
        f"hanlin drafts: {accepted}/{drafted} drafted tokens accepted"
        + (f" ({accepted / drafted:.0%})" if drafted else "")
        + f"; KV tokens shifted {shifted}; small-window answers {small}; budget notes {notes}"
    )
    out["drafts"] = {"drafted": drafted, "accepted": accepted, "shifted": shifted}
    acc = [s for s in samples.get(HanlinEditor.name, []) if s.kind == "accept"]
    if acc:
        a = summarize(acc)
        hits = sum(1 for s in acc if s.info.get("fromCache") or s.info.get("prefetched"))
        prefetched = sum(1 for s in acc if s.info.get("prefetched"))
        # answered by a prefetch that was still running: the request waited for it
        joined = [float(s.info.get("waitedMs") or 0) for s in acc if s.info.get("waitedMs")]
        shown = [s for s in acc if s.text]
        shown_ready = sum(1 for s in shown if s.latency_ms <= READY_MS)
        line = (
            f"accept then type on: {a['n']} accepts, next completion ready <= {READY_MS:.0f} ms "
            f"in {a['ready']:.0%}, p50 {a['p50']:.0f} ms; prefetch hits {prefetched}/{len(acc)}"
            f" (served from cache/prefetch {hits}/{len(acc)}; waited for a running prefetch "
            f"{len(joined)}x"
            + (f", p50 {statistics.median(joined):.0f} ms" if joined else "")
            + f"); non-empty answers ready {shown_ready}/{len(shown)}"
        )
        pa = [s for s in samples.get(peer_name or "", []) if s.kind == "accept"]
        if pa:
            b = summarize(pa)
            line += f"  (peer: ready {b['ready']:.0%}, p50 {b['p50']:.0f} ms)"
        print(line)
        out["accept"] = {
            "hanlin": a,
            "prefetch_hits": prefetched,
            "cache_or_prefetch": hits,
            "joined": len(joined),
            "non_empty": len(shown),
            "non_empty_ready": shown_ready,
            "peer": summarize(pa) if pa else None,
        }
    return out


# ---------------------------------------------------------------------------- main


def run_model(args: argparse.Namespace, model: str, corpus: list[CorpusFile]) -> dict:
    path = model_path(model)
    logs = args.logs / model
    logs.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix="hanlin-bench-ws-"))
    options = {
        "model": str(path),
        "threads": args.threads,
        "contextLength": args.ctx,
        "maxTokens": args.max_tokens,
        "timeBudgetMs": args.budget_ms,
    }
    hanlin = HanlinEditor(options, logs / "hanlin-lsp.log", workspace)
    editors: list[Editor] = []
    server: LlamaServer | None = None
    result: dict[str, Any] = {"model": path.name}
    slices: Slices | None = None
    try:
        hanlin.start()
        editors.append(hanlin)
        if not args.no_peer:
            server = LlamaServer(
                path, threads=args.threads, n_ctx=args.ctx, log_path=logs / "llama-server.log"
            )
            server.start()
            editors.append(
                VscodePeer(
                    server,
                    n_predict=args.max_tokens,
                    budget_ms=args.budget_ms,
                    seed=args.seed,
                    infill_sampler=not path.name.startswith("shaped-"),
                )
            )
        print(
            f"\n{model}: {path.name}; threads {args.threads}, ctx {args.ctx}, "
            f"n_predict {args.max_tokens}, budget {args.budget_ms} ms; peer "
            f"{('/infill' if server.fim else '/completion') if server else 'none'}; "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        slices = Slices(editors)
        if args.first_ghost:
            ghost_file = pick_file(args.seed)
            result["first_ghost"] = {"file": str(ghost_file.path)}
            for e in editors:
                slices.only(e)
                g = first_ghost(e, ghost_file, args.seed)
                result["first_ghost"][e.name] = g
                shown = f"{g['first_ghost_s']:.2f} s" if g["first_ghost_s"] else "none in 30 s"
                if g["first_finished_s"] is not None:
                    shown += f" (first answer finished in budget: {g['first_finished_s']:.2f} s)"
                print(
                    f"  first ghost text, {ghost_file.label} "
                    f"({len(ghost_file.text().splitlines())} lines), {e.name}: {shown} "
                    f"after {g['requests']} requests, {g['keys']} keys",
                    flush=True,
                )
        samples: dict[str, list[Sample]] = defaultdict(list)
        started = time.perf_counter()
        if not args.no_replay:
            # pattern by pattern over all files: a time limit still covers every file
            stop_at = started + args.time_limit_min * 60 if args.time_limit_min else None
            for pattern in args.patterns:
                if stop_at is not None and time.perf_counter() > stop_at:
                    print(f"  time limit: patterns from {pattern!r} on not run", flush=True)
                    result["skipped_patterns"] = args.patterns[args.patterns.index(pattern) :]
                    break
                for k, f in enumerate(corpus):
                    script = build_script(
                        corpus,
                        pattern,
                        k,
                        seed=args.seed,
                        max_keystrokes=args.max_keystrokes,
                        read_s=args.read_s,
                    )
                    got_all = replay(editors, script, f.label, pattern, slices)
                    for name, got in got_all.items():
                        samples[name] += got
                elapsed = time.perf_counter() - started
                print(f"  {pattern}: done on {len(corpus)} files ({elapsed:.0f} s)", flush=True)
                if args.json:  # what ran so far survives a crash or a kill
                    partial = {k: [asdict(s) for s in v] for k, v in samples.items()}
                    args.json.with_suffix(".partial.json").write_text(
                        json.dumps({model: partial}, default=str)
                    )
            peer_name = VscodePeer.name if server else None
            result.update(report(model, samples, peer_name))
        result["samples"] = {k: [asdict(s) for s in v] for k, v in samples.items()}
        result["load_end"] = os.getloadavg()
    finally:
        if slices is not None:
            slices.all()
        if hanlin in editors:
            hanlin.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(workspace, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        default="smollm2,qwen0.5b",
        help="comma-separated: smollm2, qwen0.5b, qwen1.5b (shaped, Q8_0) or GGUF paths",
    )
    parser.add_argument(
        "--patterns", default=",".join(PATTERNS), help=f"comma-separated: {', '.join(PATTERNS)}"
    )
    parser.add_argument("--files", nargs="+", type=Path, help="replay these files instead")
    parser.add_argument("--seed", type=int, default=1, help="picks the files and the sites")
    parser.add_argument(
        "--max-keystrokes", type=int, default=12, help="keystrokes per file and pattern"
    )
    parser.add_argument(
        "--time-limit-min",
        type=float,
        help="per model: start no new pattern after this many minutes (report what ran)",
    )
    parser.add_argument(
        "--read-s",
        type=float,
        default=ACCEPT_READ_S,
        help="seconds the accept pattern reads a shown completion before accepting it",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=8192, help="context window for every server")
    parser.add_argument("--max-tokens", type=int, default=64, help="n_predict (Hanlin's default)")
    parser.add_argument(
        "--budget-ms", type=int, default=1500, help="timeBudgetMs / t_max_predict_ms (default)"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip llama-server")
    parser.add_argument("--no-replay", action="store_true", help="only the first-ghost figure")
    parser.add_argument(
        "--no-first-ghost", dest="first_ghost", action="store_false", help="skip that figure"
    )
    parser.add_argument("--json", type=Path, help="write every sample and summary here")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per request")
    parser.add_argument(
        "--logs",
        type=Path,
        default=ROOT
        / ".bench-cache"
        / "completion-logs"
        / time.strftime(f"%Y%m%d-%H%M%S-{os.getpid()}"),
        help="where the servers' logs go (default: a new folder per run)",
    )
    args = parser.parse_args(argv)
    # a `kill` ends the run through the `finally`s: no server is left behind (or suspended)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    global VERBOSE
    VERBOSE = args.verbose
    args.patterns = [p.strip() for p in args.patterns.split(",") if p.strip()]
    unknown = [p for p in args.patterns if p not in PATTERNS]
    if unknown:
        known = ", ".join(PATTERNS)
        raise SystemExit(f"--patterns: unknown {', '.join(unknown)}; known: {known}")
    corpus = select_corpus(args.seed, args.files)
    print(f"seed {args.seed}; {len(corpus)} files:")
    for f in corpus:
        print(f"  {f.label:<24} {f.language:<11} {len(f.text().splitlines()):>5} lines  {f.origin}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    results = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        results[model] = run_model(args, model, corpus)
    if args.json:
        meta = {"seed": args.seed, "files": [str(f.path) for f in corpus], "argv": sys.argv[1:]}
        args.json.write_text(json.dumps({"meta": meta, "models": results}, indent=1, default=str))
    print(f"\nload average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
