"""The completion benchmark's peer: llama.cpp's `llama-server`, driven as llama.vscode drives it.

Modelled on llama.vscode's `src/completion.ts`, `src/llama-server.ts` and
`src/extra-context.ts` (ggml-org/llama.vscode), with its default settings:

- the request: `POST /infill` with `input_prefix` (the 256 lines above the cursor),
  `input_suffix` (the rest of the line and 64 lines below), `prompt` (the line up to the
  cursor; empty on an indentation-only line), `input_extra` (the ring's chunks),
  `n_indent`, `cache_prompt: true`, `top_k: 40, top_p: 0.99, samplers [top_k, top_p,
  infill]`, `t_max_prompt_ms` (500) and `t_max_predict_ms`; no request when more than 8
  characters are right of the cursor (`max_line_suffix`);
- its result cache: an LRU of 250 answers keyed by prefix|suffix|prompt, also hit when
  the typed text is the start of a cached answer;
- its post-processing: trailing empty lines dropped, suggestions that repeat the next
  lines discarded, the line's suffix cut;
- its speculative requests after each shown hint (when nothing is right of the cursor):
  the completion the user gets after accepting the hint, computed at once in the
  background (the next request waits behind it on the server's one slot), and the
  "accept first line" one from the hint itself;
- its ring of extra context: 16 chunks of up to 32 lines, queued after a completion when
  the cursor moved more than 32 lines (one from above the prefix window, one below the
  suffix) and around the cursor of a file entered or left; a queued chunk enters the
  ring once a second when no completion started in the last 3 s, each time followed by
  an `n_predict: 0` request that evaluates the ring on the server.

What is matched to Hanlin, not llama.vscode's defaults: `n_predict` and the stop rules
(one line where Hanlin wants one line: `stop: ["\\n"]`, and at the end of a finished
line whose answer is only that newline, a second request for the line after it, as Hanlin
answers there; a multi-line answer cut where
Hanlin's stops, at the end of the cursor's block, on top of llama-server's `n_indent`
rule, sent to `/completion` too), and the time budget
(`t_max_predict_ms`). The server runs with `--cache-reuse 256`, one slot, the same
threads and context. A model without FIM tokens (SmolLM2) cannot `/infill`: the peer
then sends `/completion` with the prompt text Hanlin's prefix-only template builds
(the ring's chunks as comment-headed text, then the windowed prefix). On the shaped
random-weight models the `infill` sampler is left out (it would end every answer at its
first token: see `VscodePeer`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path
from typing import Any

from bench.completion_patterns import Answer, Editor
from hanlin.engine.completion.filters import BLOCK_END_FILTERS, FILTERS
from hanlin.engine.completion.filters.base import (
    FilterContext,
    text_right_of_cursor,
    wants_multiline,
)

__all__ = ["LlamaServer", "VscodePeer"]

N_PREFIX, N_SUFFIX = 256, 64
RING_N_CHUNKS, RING_CHUNK_SIZE, RING_SCOPE = 16, 64, 1024
MAX_LINE_SUFFIX = 8
T_MAX_PROMPT_MS = 500
MAX_LAST_PICK_LINE_DISTANCE = 32
RING_UPDATE_MIN_TIME_LAST_COMPL_S = 3.0
RING_UPDATE_S = 1.0
MAX_QUEUED_CHUNKS = 16
MAX_CACHE_KEYS = 250
DEFAULT_PARAMS = {
    "top_k": 40,
    "top_p": 0.99,
    "stream": False,
    "samplers": ["top_k", "top_p", "infill"],
    "cache_prompt": True,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """One `llama-server` process (the same llama.cpp as the binding, bench/llama_tools.py)."""

    def __init__(self, model: Path, *, threads: int, n_ctx: int, log_path: Path) -> None:
        self.model, self.threads, self.n_ctx, self.log_path = model, threads, n_ctx, log_path
        self.fim = False

    def start(self) -> None:
        from bench.llama_tools import ensure_tool

        binary = ensure_tool("llama-server")
        port = _free_port()
        self._log = self.log_path.open("w")
        argv = [str(binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(port)]
        argv += ["-c", str(self.n_ctx), "-t", str(self.threads), "-tb", str(self.threads)]
        argv += ["-np", "1", "--cache-reuse", "256", "--no-webui"]
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"llama-server did not start; see {self.log_path}")
            time.sleep(0.2)
        self.fim = self._has_fim()

    def _has_fim(self) -> bool:
        try:
            self.post("/infill", {"input_prefix": "a", "input_suffix": "", "n_predict": 0})
        except urllib.error.HTTPError:
            return False
        return True

    def post(self, path: str, body: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        req = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _key(prefix: str, suffix: str, prompt: str) -> str:
    return hashlib.sha256(f"{prefix}|{suffix}|{prompt}".encode()).hexdigest()


def _stop_at_block_end(text: str, prefix: str, suffix: str) -> str:
    """Hanlin's multi-line stop rule, applied to the peer's answer (same stop rules).

    llama-server stops a line indented less than `n_indent`; Hanlin also stops at the end
    of a block the cursor line opened, at a blank line on the top level, and where lines
    start repeating (its `_block_done`). Those it cannot do on the server, so the cut is
    made here: the peer's answers are then as long as Hanlin's would be, not longer.
    """
    ctx = FilterContext(prefix=prefix, suffix=suffix, multiline=True)
    for name in BLOCK_END_FILTERS:
        text = FILTERS[name](text, ctx)
    return text


def _ended_a_finished_line(reply: dict, prefix: str, suffix: str) -> bool:
    """A one-line answer that is only the model's newline, at the end of a line with code."""
    return (
        not reply.get("content", "x").strip()
        and reply.get("stop_type") == "word"
        and reply.get("stopping_word") == "\n"
        and not text_right_of_cursor(suffix).strip()
        and bool(prefix.rsplit("\n", 1)[-1].strip())
    )


def remove_trailing_new_lines(lines: list[str]) -> list[str]:
    while lines and lines[-1].strip() == "":
        lines.pop()
    return lines


def should_discard(
    lines: list[str], doc: list[str], row: int, line_prefix: str, line_suffix: str
) -> bool:
    """llama.vscode's `shouldDiscardSuggestion`: suggestions that repeat the text after them."""
    if not lines or (len(lines) == 1 and lines[0].strip() == ""):
        return True
    if row == len(doc) - 1:
        return False
    if (
        len(lines) > 1
        and (lines[0].strip() == "" or lines[0].strip() == line_suffix.strip())
        and all(row + 1 + i < len(doc) and v == doc[row + 1 + i] for i, v in enumerate(lines[1:]))
    ):
        return True
    if len(lines) == 1 and lines[0] == line_suffix:
        return True
    first = row + 1
    while first < len(doc) and doc[first].strip() == "":
        first += 1
    if first >= len(doc):
        return False
    if line_prefix + lines[0] == doc[first]:
        if len(lines) == 1:
            return True
        if len(lines) == 2 and first + 1 < len(doc):
            return lines[1] == doc[first + 1][: len(lines[1])]
        if len(lines) > 2:
            return all(
                first + 1 + i < len(doc) and v == doc[first + 1 + i]
                for i, v in enumerate(lines[1:])
            )
    return False


def update_suggestion(lines: list[str], line_suffix: str) -> str:
    """llama.vscode's `updateSuggestion`: cut what repeats the rest of the line."""
    if line_suffix.strip() != "":
        if line_suffix and lines[0].endswith(line_suffix):
            return lines[0][: -len(line_suffix)]
        if len(lines) > 1:
            return lines[0]
    return "\n".join(lines)


def remove_leading_spaces(text: str, n: int) -> str:
    i = 0
    while i < len(text) and i < n and text[i] in " \t":
        i += 1
    return text[i:]


class VscodePeer(Editor):
    """llama.vscode's completion logic in front of one `llama-server`."""

    name = "llama-server (llama.vscode)"

    def __init__(
        self,
        server: LlamaServer,
        *,
        n_predict: int,
        budget_ms: int,
        seed: int = 0,
        infill_sampler: bool = True,
    ) -> None:
        """`infill_sampler=False` for a random-weight model: llama-server's `infill` sampler
        picks end-of-generation whenever the EOG tokens together outweigh the best other
        token, which a flat random distribution always does, so every answer would be empty
        (Hanlin has no such rule; without it both write until a stop rule or the budget)."""
        super().__init__()
        self.server, self.n_predict, self.budget_ms = server, n_predict, budget_ms
        self.samplers = list(DEFAULT_PARAMS["samplers"])
        if not infill_sampler:
            self.samplers.remove("infill")
        self.cache: OrderedDict[str, str] = OrderedDict()
        self.chunks: list[dict[str, Any]] = []
        self.chunk_lines: list[list[str]] = []
        self.queued: list[dict[str, Any]] = []
        self.queued_lines: list[list[str]] = []
        self.last_pick = -9999
        self.last_start = 0.0
        self.rng = random.Random(seed)
        self._background: threading.Thread | None = None
        self._lock = threading.Lock()  # the ring, between the replay and the background
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ editor hooks
    def did_open(self, doc: str, text: str, language: str) -> None:
        pass

    def did_change(self, doc: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        pass

    def did_focus(self, previous: str, doc: str) -> None:
        # onDidChangeActiveTextEditor: a chunk around the cursor of the file left and entered
        for name in (previous, doc):
            if name and name in self.docs:
                self._pick_around_cursor(name, self.line if name == doc else 0)

    def idle(self, seconds: float) -> None:
        """The periodic ring update (every second, once 3 s passed since the last completion)."""
        self._join_background()
        end = time.monotonic() + seconds
        tick = max(time.monotonic(), self.last_start + RING_UPDATE_MIN_TIME_LAST_COMPL_S)

        def run() -> None:
            nonlocal tick
            while tick < end:
                time.sleep(max(0.0, tick - time.monotonic()))
                with self._lock:
                    if not self.queued:
                        return
                    self.chunk_lines.append(self.queued_lines.pop(0))
                    self.chunks.append(self.queued.pop(0))
                    while len(self.chunks) > RING_N_CHUNKS:
                        self.chunks.pop(0)
                        self.chunk_lines.pop(0)
                    chunks = list(self.chunks)
                self._update_extra_context(chunks)
                tick += RING_UPDATE_S

        self._background = threading.Thread(target=run, daemon=True)
        self._background.start()

    def close(self) -> None:
        self._join_background()

    # ------------------------------------------------------------------ completion
    def complete(self) -> Answer:
        started = time.perf_counter()
        text, info = self._complete()
        return Answer(text, (time.perf_counter() - started) * 1000, info)

    def _complete(self) -> tuple[str, dict[str, Any]]:
        doc, row, col = self.lines, self.line, self.character
        line = doc[row]
        line_prefix, line_suffix = line[:col], line[col:]
        if len(line_suffix) > MAX_LINE_SUFFIX:
            return "", {"skipped": "max_line_suffix"}
        nindent = len(line) - len(line.lstrip())
        prompt, spaces = line_prefix, 0
        if line_prefix.strip(" \t") == "":
            prompt, spaces = "", len(line_prefix)
        prefix_lines = doc[max(0, row - N_PREFIX) : row]
        suffix_lines = doc[row + 1 : row + 1 + N_SUFFIX]
        input_prefix = "\n".join(prefix_lines) + "\n"
        input_suffix = line_suffix + "\n" + "\n".join(suffix_lines) + "\n"
        info: dict[str, Any] = {}
        completion = self._cached(input_prefix, input_suffix, prompt)
        cached = completion is not None
        if not cached:
            self.last_start = time.monotonic()
            try:
                reply = self._fim(input_prefix, input_suffix, prompt, nindent)
            except urllib.error.HTTPError as exc:  # e.g. a prompt over the context: no hint
                return "", {"error": f"HTTP {exc.code}", "fromCache": False}
            completion = reply.get("content", "")
            timings = reply.get("timings", {})
            info = {
                "tokensEvaluated": timings.get("prompt_n"),
                "generatedTokens": timings.get("predicted_n"),
                "stopReason": reply.get("stop_type", ""),
            }
        info["fromCache"] = cached
        assert completion is not None
        if completion.strip() == "":
            return "", info
        lines = remove_trailing_new_lines(completion.split("\n"))
        if should_discard(lines, doc, row, line_prefix, line_suffix):
            return "", {**info, "discarded": True}
        completion = update_suggestion(lines, line_suffix)
        if not cached:
            self._put(_key(input_prefix, input_suffix, prompt), completion)
        shown = remove_leading_spaces(completion, spaces)
        # setTimeout(..., 0) after showing: speculative requests, then ring chunks
        self._join_background()
        args = (input_prefix, input_suffix, prompt, lines, line_suffix, row, self.active)
        self._background = threading.Thread(target=self._after_shown, args=args, daemon=True)
        self._background.start()
        return shown, info

    def _after_shown(
        self,
        input_prefix: str,
        input_suffix: str,
        prompt: str,
        lines: list[str],
        line_suffix: str,
        row: int,
        doc: str,
    ) -> None:
        if line_suffix.strip() == "":
            self._cache_future(input_prefix, input_suffix, prompt, lines)
            if len(lines) > 1:  # cacheFutureAcceptLineSuggestion: no request
                key_prefix = input_prefix + prompt + lines[0] + "\n"
                key = _key(key_prefix, input_suffix, "")
                if self._cached(key_prefix, input_suffix, "") is None:
                    self._put(key, "\n".join(lines[1:]))
        self._add_fim_chunks(doc, row)

    def _cache_future(
        self, input_prefix: str, input_suffix: str, prompt: str, lines: list[str]
    ) -> None:
        future_prefix, future_prompt = input_prefix, prompt + lines[0]
        if len(lines) > 1:
            future_prefix = input_prefix + prompt + "\n".join(lines[:-1]) + "\n"
            future_prompt = lines[-1]
            kept = future_prefix[:-1].split("\n")
            if len(kept) > N_PREFIX:
                future_prefix = "\n".join(kept[-N_PREFIX:]) + "\n"
        key = _key(future_prefix, input_suffix, future_prompt)
        with self._cache_lock:
            if key in self.cache:
                return
        nindent = len(prompt) - len(prompt.lstrip())
        try:
            reply = self._fim(future_prefix, input_suffix, future_prompt, nindent)
        except (urllib.error.URLError, OSError):  # HTTPError is a URLError
            return
        content = reply.get("content", "")
        if content.strip():
            self._put(key, "\n".join(remove_trailing_new_lines(content.split("\n"))))

    def _cached(self, prefix: str, suffix: str, prompt: str) -> str | None:
        """llama.vscode's `getCachedCompletion`, including typed-through answers."""
        with self._cache_lock:
            hit = self.cache.get(_key(prefix, suffix, prompt))
            if hit is not None:
                return hit
            for i in range(len(prompt), -1, -1):
                cut = prompt[i:]
                found = self.cache.get(_key(prefix, suffix, prompt[:i]))
                if found is not None and cut == found[: len(cut)]:
                    return found[len(prompt) - i :]
        return None

    def _put(self, key: str, value: str) -> None:
        with self._cache_lock:
            self.cache[key] = value
            self.cache.move_to_end(key)
            while len(self.cache) > MAX_CACHE_KEYS:
                self.cache.popitem(last=False)

    def _fim(self, input_prefix: str, input_suffix: str, prompt: str, nindent: int) -> dict:
        multiline = wants_multiline(input_prefix + prompt, input_suffix)
        reply = self._post_fim(input_prefix, input_suffix, prompt, nindent, multiline)
        if multiline and "content" in reply:
            # the model continued `input_prefix + prompt` (on an indentation-only line the
            # prompt is empty and the answer starts with the indentation)
            reply["content"] = _stop_at_block_end(
                reply["content"], input_prefix + prompt, input_suffix
            )
        elif _ended_a_finished_line(reply, input_prefix + prompt, input_suffix):
            # Hanlin's one-line rule at the end of a finished line: the line after it. The
            # server cannot stop at the second newline, so a second request writes it.
            ended = prompt + reply["content"] + "\n"
            after = self._post_fim(input_prefix, input_suffix, ended, nindent, False)
            if "content" in after:
                timings, more = reply.get("timings", {}), after.get("timings", {})
                for name in ("prompt_n", "predicted_n"):
                    timings[name] = (timings.get(name) or 0) + (more.get(name) or 0)
                reply = {**after, "content": "\n" + after["content"], "timings": timings}
        return reply

    def _post_fim(
        self, input_prefix: str, input_suffix: str, prompt: str, nindent: int, multiline: bool
    ) -> dict:
        with self._lock:
            chunks = list(self.chunks)
        body: dict[str, Any] = {
            "n_predict": self.n_predict,
            **DEFAULT_PARAMS,
            "samplers": self.samplers,
            "t_max_prompt_ms": T_MAX_PROMPT_MS,
            "t_max_predict_ms": self.budget_ms,
        }
        if not multiline:
            body["stop"] = ["\n"]
        if nindent:
            body["n_indent"] = nindent  # llama.vscode sends it with every request
        if self.server.fim:
            body.update(
                input_prefix=input_prefix,
                input_suffix=input_suffix,
                input_extra=chunks,
                prompt=prompt,
            )
            return self.server.post("/infill", body)
        body["samplers"] = ["top_k", "top_p"]
        body["prompt"] = self._prefix_only_prompt(chunks, input_prefix + prompt)
        return self.server.post("/completion", body)

    def _prefix_only_prompt(self, chunks: list[dict[str, Any]], prefix: str) -> str:
        """Hanlin's prefix-only prompt text: comment-headed chunks, then the windowed prefix."""
        from hanlin.engine.completion.fim import PromptLimits, comment_marker, window_prefix

        limits = PromptLimits()
        language = self.languages.get(self.active)
        mark = comment_marker(language, self.active)
        end = " -->" if mark == "<!--" else ""
        kept: list[dict[str, Any]] = []
        used = 0
        for chunk in reversed(chunks):
            if used + len(chunk["text"]) > limits.context_chars:
                break
            kept.insert(0, chunk)
            used += len(chunk["text"])
        lead = "".join(f"{mark} {c['filename']}{end}\n{c['text'].rstrip()}\n\n" for c in kept)
        if kept:
            lead += f"{mark} {self.active}{end}\n"
        return lead + window_prefix(prefix, limits)

    # ------------------------------------------------------------------ the ring
    def _update_extra_context(self, chunks: list[dict[str, Any]]) -> None:
        body = {
            "input_prefix": "",
            "input_suffix": "",
            "input_extra": chunks,
            "prompt": "",
            "n_predict": 0,
            "samplers": [],
            "cache_prompt": True,
            "t_max_prompt_ms": T_MAX_PROMPT_MS,
            "t_max_predict_ms": 1,
        }
        if not self.server.fim:
            body = {
                "prompt": self._prefix_only_prompt(chunks, ""),
                "n_predict": 0,
                "cache_prompt": True,
            }
        with contextlib.suppress(urllib.error.URLError, OSError):
            self.server.post("/infill" if self.server.fim else "/completion", body)

    def _add_fim_chunks(self, doc: str, row: int) -> None:
        if abs(row - self.last_pick) <= MAX_LAST_PICK_LINE_DISTANCE:
            return
        lines = self.docs.get(doc)
        if lines is None:
            return
        last = len(lines) - 1
        above = lines[max(0, row - RING_SCOPE) : max(0, row - N_PREFIX) + 1]
        self._pick(doc, above, no_mod=False, evict=False)
        below = lines[min(last, row + N_SUFFIX) : min(last, row + N_SUFFIX + RING_CHUNK_SIZE) + 1]
        self._pick(doc, below, no_mod=False, evict=False)
        self.last_pick = row

    def _pick_around_cursor(self, doc: str, row: int) -> None:
        lines = self.docs[doc]
        half = RING_CHUNK_SIZE // 2
        self._pick(doc, lines[max(0, row - half) : min(row + half, len(lines) - 1) + 1], True, True)

    def _pick(self, doc: str, lines: list[str], no_mod: bool, evict: bool) -> None:
        if (no_mod and doc in self.dirty) or len(lines) < 3:
            return
        if len(lines) + 1 < RING_CHUNK_SIZE:
            chunk_lines = list(lines)
        else:
            start = self.rng.randrange(max(1, len(lines) - RING_CHUNK_SIZE // 2 + 1))
            chunk_lines = lines[start : min(start + RING_CHUNK_SIZE // 2, len(lines))]
        text = "\n".join(chunk_lines) + "\n"
        with self._lock:
            if evict and any(c["text"] == text for c in self.chunks + self.queued):
                return
            if evict:
                pools = ((self.chunks, self.chunk_lines), (self.queued, self.queued_lines))
                for pool, pool_lines in pools:
                    for i in range(len(pool) - 1, -1, -1):
                        a, b = set(pool_lines[i]), set(chunk_lines)
                        if a | b and len(a & b) / len(a | b) > 0.9:
                            del pool[i], pool_lines[i]
            if len(self.queued) >= MAX_QUEUED_CHUNKS:
                del self.queued[0], self.queued_lines[0]
            self.queued.append({"text": text, "time": int(time.time() * 1000), "filename": doc})
            self.queued_lines.append(chunk_lines)

    def _join_background(self) -> None:
        if self._background is not None:
            self._background.join()
            self._background = None
