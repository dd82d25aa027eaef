"""Inline code completion on a loaded model: fast enough to run on every keystroke.

What makes it fast (after llama.vscode and Continue):

- **KV-cache reuse.** Prompts are prefix-stable (engine/fim.py puts other files
  first, then the file's prefix), and the model's `LlamaSession` remembers the
  tokens its KV cache holds: a new request drops only the tail after the longest
  common prefix (`llama_memory_seq_rm`) and evaluates only the new tokens.
- **A response cache.** Results are kept in an LRU keyed by a hash of the
  context; when the user types the characters a shown completion predicted
  (new prefix = old prefix + the start of the old completion), the rest of it
  is returned without running the model.
- **Budgets.** A cancel flag is checked between prompt chunks and between
  generated tokens (a newer keystroke cancels the older request), and time
  budgets cap prompt processing and prediction (llama.vscode's
  `t_max_prompt_ms` / `t_max_predict_ms`). Work done before a cancel or a
  timeout stays in the KV cache, so the next request starts from there.
- **Early stops.** Generation stops at the end of the line when only one line
  is wanted, and at the end of the cursor's block (indentation scope) or a
  repetition when several are; special tokens (by id: the vocabulary's CONTROL
  tokens and the template's own) end it and are never shown.

The text is then cleaned by the named filters of engine/completion/filters/; the
only texts they cut at as "special" are the vocabulary's own special tokens
(`LlamaVocab.special_texts`), so `<s>strike</s>` in HTML survives.
`CompletionEngine.complete` is blocking and thread-safe (it holds the model's
lock while it touches llama.cpp); call it from a worker thread.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hanlin.engine.completion.context_ring import ContextChunk
from hanlin.engine.completion.filters import DEFAULT_FILTERS, FILTERS, postprocess
from hanlin.engine.completion.filters.base import FilterContext, wants_multiline
from hanlin.engine.completion.fim import (
    FimPrompt,
    FimTemplate,
    LlamaVocab,
    PromptLimits,
    build_prompt,
)
from hanlin.engine.completion.fim import detect_template as _detect_template
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import Cancelled, GenerationError

if TYPE_CHECKING:
    from hanlin.engine.runtime.loader import LoadedModel

__all__ = [
    "CompletionEngine",
    "CompletionRequest",
    "CompletionResult",
    "EngineTotals",
    "ResponseCache",
]

#: prompt tokens evaluated per llama_decode call; the cancel flag and the prompt
#: budget are checked between chunks
PROMPT_CHUNK = 256
#: how many characters a user may type through a shown completion and still hit the cache
TYPE_AHEAD_CHARS = 512


@dataclass
class CompletionRequest:
    """One completion at a cursor: the text before (`prefix`) and after (`suffix`) it."""

    prefix: str
    suffix: str = ""
    language: str | None = None
    filename: str | None = None
    extra_context: Sequence[ContextChunk] = ()
    #: None: decide from the context (multi-line only with nothing but closers right of the cursor)
    multiline: bool | None = None
    max_tokens: int = 64
    #: overall cap for the request in milliseconds
    time_budget_ms: int = 2000
    #: cap for prompt processing; None = `time_budget_ms`
    t_max_prompt_ms: int | None = None
    #: cap for generation; None = `time_budget_ms`
    t_max_predict_ms: int | None = None
    #: workspace folder name (Qwen2.5-Coder's `<|repo_name|>`)
    repo_name: str | None = None


@dataclass
class CompletionResult:
    """What one request produced, with the figures the benchmark and the LSP report."""

    text: str
    tokens_evaluated: int
    tokens_cached: int
    generated_tokens: int
    from_cache: bool
    elapsed_ms: float
    #: "stop" (end of generation / special token), "length" (max_tokens), "eol" (end of line
    #: in single-line mode), "scope" (end of block / repetition), "time" (budget), "cache"
    stop_reason: str
    template: str = ""
    prompt_tokens: int = 0
    #: the model's text before post-processing
    raw_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokensEvaluated": self.tokens_evaluated,
            "tokensCached": self.tokens_cached,
            "generatedTokens": self.generated_tokens,
            "fromCache": self.from_cache,
            "elapsedMs": round(self.elapsed_ms, 3),
            "stopReason": self.stop_reason,
            "template": self.template,
            "promptTokens": self.prompt_tokens,
        }


@dataclass
class EngineTotals:
    """Running totals over an engine's life (requests, cache hits, tokens): benchmarks read them."""

    requests: int = 0
    cache_hits: int = 0
    cancelled: int = 0
    tokens_evaluated: int = 0
    tokens_cached: int = 0
    generated_tokens: int = 0


@dataclass
class _CacheEntry:
    text: str
    raw_text: str


class ResponseCache:
    """LRU of finished completions keyed by a hash of (template, context, prefix, suffix, mode).

    `lookup` also finds an entry made a few characters earlier whose completion
    starts with the characters typed since (the user is typing the ghost text).
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, _CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @staticmethod
    def _base(header: str) -> Any:
        h = hashlib.blake2b(digest_size=20)
        h.update(header.encode("utf-8"))
        h.update(b"\x00")
        return h

    def key(self, header: str, prefix: str) -> bytes:
        h = self._base(header)
        h.update(prefix.encode("utf-8"))
        return h.digest()

    def put(self, key: bytes, entry: _CacheEntry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def lookup(self, header: str, prefix: str) -> tuple[str, str] | None:
        """(remaining completion, typed chars) for an exact or typed-ahead hit, else None."""
        with self._lock:
            if not self._entries:
                return None
        n = min(len(prefix), TYPE_AHEAD_CHARS)
        h = self._base(header)
        h.update(prefix[: len(prefix) - n].encode("utf-8"))
        digests: list[tuple[int, bytes]] = []  # (typed chars, key of prefix[:-typed])
        for j in range(len(prefix) - n, len(prefix)):
            digests.append((len(prefix) - j, h.copy().digest()))
            h.update(prefix[j].encode("utf-8"))
        digests.append((0, h.digest()))
        with self._lock:
            for typed, key in reversed(digests):  # the most recent (shortest typed) first
                entry = self._entries.get(key)
                if entry is None:
                    continue
                chars = prefix[len(prefix) - typed :] if typed else ""
                if typed == 0:
                    self._entries.move_to_end(key)
                    return entry.text, ""
                if entry.text.startswith(chars) and len(entry.text) > typed:
                    self._entries.move_to_end(key)
                    return entry.text[typed:], chars
        return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _Deadline:
    def __init__(self, start: float, ms: float) -> None:
        self.at = start + ms / 1000.0

    def passed(self) -> bool:
        return time.perf_counter() >= self.at


@dataclass
class _Generation:
    raw: str = ""
    tokens: int = 0
    stop_reason: str = "stop"
    pieces: list[bytes] = field(default_factory=list)


class CompletionEngine:
    """Completes code at a cursor with one loaded model (see the module docstring)."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        kv_reuse: bool = True,
        response_cache: bool = True,
        cache_size: int = 256,
        template: FimTemplate | None = None,
        limits: PromptLimits | None = None,
        filters: Sequence[str] = DEFAULT_FILTERS,
        temperature: float = 0.0,
    ) -> None:
        from hanlin.engine.runtime.session import build_sampler

        unknown = [f for f in filters if f not in FILTERS]
        if unknown:
            raise ValueError(f"unknown post-processing filters: {', '.join(unknown)}")
        self.model = model
        self.kv_reuse = kv_reuse
        self.response_cache = response_cache
        self.limits = limits or PromptLimits()
        self.filters = tuple(filters)
        self.vocab = LlamaVocab(model.llama)
        self.template = template or _detect_template(self.vocab, getattr(model, "family", None))
        #: the texts the filters may cut at as special tokens: the vocabulary's own, nothing else
        self.special_texts: tuple[str, ...] = self.vocab.special_texts()
        self.cache = ResponseCache(cache_size)
        self.totals = EngineTotals()
        self._stats_lock = threading.Lock()
        self._sampler = build_sampler(model.session.vocab, temperature=temperature)
        self._stop_ids: frozenset[int] = frozenset()
        self._n_vocab = self.vocab.n_vocab

    # ------------------------------------------------------------------ public

    @property
    def template_name(self) -> str:
        return self.template.name

    def complete(
        self, request: CompletionRequest, *, cancel: CancelToken | None = None
    ) -> CompletionResult:
        """Complete at the cursor; `Cancelled` if `cancel` fires (the KV cache stays valid)."""
        cancel = cancel or NEVER_CANCELLED
        started = time.perf_counter()
        fctx = self.filter_context(request)
        multiline = fctx.multiline
        header = self._cache_header(request, multiline)
        if self.response_cache:
            hit = self.cache.lookup(header, request.prefix)
            if hit is not None:
                text, _typed = hit
                text = postprocess(text, fctx, self.filters) if text else ""
                result = CompletionResult(
                    text=text,
                    tokens_evaluated=0,
                    tokens_cached=0,
                    generated_tokens=0,
                    from_cache=True,
                    elapsed_ms=(time.perf_counter() - started) * 1000,
                    stop_reason="cache",
                    template=self.template.name,
                    raw_text=hit[0],
                )
                self._count(result)
                return result

        cancel.raise_if_cancelled()
        with self.model.lock:
            if getattr(self.model, "closed", False):
                raise GenerationError(
                    "The completion model was closed", "load a model again to get completions"
                )
            prompt = self._build_prompt(request, multiline)
            try:
                evaluated, cached, timed_out = self._evaluate(prompt, request, cancel, started)
            except Cancelled:
                with self._stats_lock:
                    self.totals.cancelled += 1
                raise
            if timed_out:
                gen = _Generation(stop_reason="time")
            else:
                gen = self._generate(prompt, request, multiline, cancel, started)
        if gen.stop_reason == "cancelled":
            with self._stats_lock:
                self.totals.cancelled += 1
                self.totals.tokens_evaluated += evaluated
                self.totals.tokens_cached += cached
            raise Cancelled(cancel.reason or "Cancelled: a newer request replaced this one.")

        text = postprocess(gen.raw, fctx, self.filters)
        result = CompletionResult(
            text=text,
            tokens_evaluated=evaluated,
            tokens_cached=cached,
            generated_tokens=gen.tokens,
            from_cache=False,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            stop_reason=gen.stop_reason,
            template=self.template.name,
            prompt_tokens=len(prompt.tokens),
            raw_text=gen.raw,
        )
        if self.response_cache and gen.stop_reason != "time":
            self.cache.put(self.cache.key(header, request.prefix), _CacheEntry(text, gen.raw))
        self._count(result)
        return result

    def filter_context(self, request: CompletionRequest) -> FilterContext:
        """What the post-processing filters see for `request`.

        Multi-line only where the context calls for it (and the request allows it);
        the special texts are this model's vocabulary's, nothing else.
        """
        wanted = wants_multiline(request.prefix, request.suffix)
        return FilterContext(
            prefix=request.prefix,
            suffix=request.suffix,
            multiline=wanted if request.multiline is None else request.multiline and wanted,
            language=request.language,
            special_texts=self.special_texts,
        )

    def clear_cache(self) -> None:
        """Forget cached responses (e.g. after settings that change completions)."""
        self.cache.clear()

    # ------------------------------------------------------------------ internals

    def _count(self, result: CompletionResult) -> None:
        with self._stats_lock:
            s = self.totals
            s.requests += 1
            s.cache_hits += int(result.from_cache)
            s.tokens_evaluated += result.tokens_evaluated
            s.tokens_cached += result.tokens_cached
            s.generated_tokens += result.generated_tokens

    def stats_dict(self) -> dict[str, int]:
        with self._stats_lock:
            return asdict(self.totals)

    def _cache_header(self, request: CompletionRequest, multiline: bool) -> str:
        """Everything but the prefix that decides a completion, as one string for hashing."""
        ctx = hashlib.blake2b(digest_size=16)
        for chunk in request.extra_context:
            ctx.update(chunk.filename.encode("utf-8", "replace") + b"\x00")
            ctx.update(chunk.text.encode("utf-8", "replace") + b"\x01")
        suffix = (
            request.suffix[: self.limits.suffix_chars]
            if self.template.is_fim
            else (request.suffix.split("\n", 1)[0])
        )
        return "\x00".join(
            (
                self.template.name,
                ctx.hexdigest(),
                str(int(multiline)),
                str(request.max_tokens),
                request.filename or "",
                suffix,
            )
        )

    def _build_prompt(self, request: CompletionRequest, multiline: bool) -> FimPrompt:
        """The prompt, shrunk until it and the answer fit the context window.

        `multiline` picks the mode of templates that declare one (CodeGeeX4's LINE/BLOCK).
        """
        n_ctx = int(getattr(self.model, "n_ctx", 0) or self.model.session.n_ctx)
        room = n_ctx - max(1, request.max_tokens) - 1
        limits = self.limits
        for _ in range(6):
            prompt = build_prompt(
                self.vocab,
                self.template,
                prefix=request.prefix,
                suffix=request.suffix,
                filename=request.filename,
                language=request.language,
                extra_context=request.extra_context,
                repo_name=request.repo_name,
                limits=limits,
                multiline=multiline,
            )
            if len(prompt.tokens) <= room:
                return prompt
            # Drop other files first, then halve the prefix and suffix windows.
            if limits.context_chars > 0:
                limits = replace(limits, context_chars=0)
            else:
                limits = replace(
                    limits,
                    prefix_lines=max(8, limits.prefix_lines // 2),
                    prefix_chars=max(256, limits.prefix_chars // 2),
                    prefix_step=max(1, min(limits.prefix_step, limits.prefix_lines // 4)),
                    suffix_lines=max(2, limits.suffix_lines // 2),
                    suffix_chars=max(128, limits.suffix_chars // 2),
                )
        raise GenerationError(
            f"The code around the cursor does not fit the model's context window ({n_ctx} tokens)",
            "load the completion model with a larger context, or lower maxTokens",
        )

    def _evaluate(
        self, prompt: FimPrompt, request: CompletionRequest, cancel: CancelToken, started: float
    ) -> tuple[int, int, bool]:
        """Bring the KV cache to `prompt.tokens`; (evaluated, cached, timed out)."""
        session = self.model.session
        tokens = prompt.tokens
        if self.kv_reuse:
            keep = session.common_prefix(session.tokens, tokens)
            if keep == len(tokens):
                keep -= 1  # the last token runs again to produce fresh logits
        else:
            keep = 0
        keep = session.truncate(keep)  # llama_memory_seq_rm of the diverging tail
        cached = keep
        budget_ms = min(request.t_max_prompt_ms or request.time_budget_ms, request.time_budget_ms)
        deadline = _Deadline(started, budget_ms)
        pos = keep
        while pos < len(tokens):
            if cancel.cancelled:
                raise Cancelled(cancel.reason or "Cancelled: a newer request replaced this one.")
            if pos > keep and deadline.passed():
                return pos - keep, cached, True
            end = min(len(tokens), pos + PROMPT_CHUNK)
            session.evaluate(tokens[:end], reuse=True)
            pos = end
        return len(tokens) - keep, cached, False

    def _generate(
        self,
        prompt: FimPrompt,
        request: CompletionRequest,
        multiline: bool,
        cancel: CancelToken,
        started: float,
    ) -> _Generation:
        from hanlin.engine.runtime.session import PieceDecoder

        session = self.model.session
        vocab = self.vocab
        stop_ids = prompt.stop_ids
        predict_ms = request.t_max_predict_ms or request.time_budget_ms
        now = time.perf_counter()
        overall = _Deadline(started, request.time_budget_ms)
        predict = _Deadline(now, predict_ms)
        decoder = PieceDecoder()
        gen = _Generation()
        fctx = FilterContext(prefix=request.prefix, suffix=request.suffix, multiline=multiline)

        def is_stop(token: int) -> bool:
            return token in stop_ids or vocab.is_control(token)

        gen.stop_reason = "length"
        tokens = session.generate(
            self._sampler, max_tokens=max(1, request.max_tokens), cancel=cancel, stop_tokens=is_stop
        )
        for token in tokens:
            gen.tokens += 1
            piece = decoder.feed(session.token_bytes(token, special=False))
            gen.raw += piece
            if "\n" in piece:
                if not multiline:  # one line wanted: it is over
                    gen.raw = gen.raw.split("\n", 1)[0]
                    gen.stop_reason = "eol"
                    break
                if multiline and self._block_done(gen.raw, fctx):
                    gen.stop_reason = "scope"
                    break
            if predict.passed() or overall.passed():
                gen.stop_reason = "time"
                break
        else:
            reason = getattr(session, "last_stop_reason", "stop")
            gen.stop_reason = {"cancelled": "cancelled", "length": "length"}.get(reason, "stop")
        gen.raw += decoder.flush()
        return gen

    @staticmethod
    def _block_done(raw: str, fctx: FilterContext) -> bool:
        """True once the complete lines so far end the cursor's block or start repeating."""
        complete = raw.rsplit("\n", 1)[0]
        if "\n" not in raw or not complete.strip():
            return False
        for name in ("limit_scope_by_indentation", "remove_repetitive_lines"):
            if len(FILTERS[name](complete, fctx)) < len(complete):
                return True
        return False
