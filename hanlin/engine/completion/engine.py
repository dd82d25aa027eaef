"""Inline code completion on a loaded model: fast enough to run on every keystroke.

What makes it fast (after llama.vscode and Continue):

- **KV-cache reuse.** Prompts are prefix-stable (engine/fim.py puts other files
  first, then the file's prefix), and the model's `LlamaSession` remembers the
  tokens its KV cache holds: a new request drops only the tail after the longest
  common prefix (`llama_memory_seq_rm`) and evaluates only the new tokens.
- **A response cache.** Results are kept in an LRU keyed by a hash of the
  context; when the user types the characters a shown completion predicted
  (new prefix = old prefix + the start of the old completion), the rest of it
  is returned without running the model — all of its lines, also when the characters
  typed into a block's first line make the cursor's line a one-line context.
- **Shifted KV reuse.** When text is removed mid-prompt (a ring chunk evicted,
  the prefix window moved, a line deleted), cached runs of at least `reuse_chunk`
  tokens after it are shifted into place (engine/completion/kv_shift.py, what
  llama-server's `--cache-reuse` does) instead of being evaluated again.
- **Budgets that hold.** A cancel flag is checked between prompt chunks and between
  generated tokens (a newer keystroke cancels the older request). Before evaluating,
  the engine estimates what the prompt costs from the measured speed
  (engine/completion/budget.py); when it does not fit `time_budget_ms`, the answer
  comes from a small window (the lines nearest the cursor, sized to the time left)
  while the full prompt's evaluated part is parked and put back, and the result says
  `small_window` so the caller evaluates the full prompt in idle time (`warm`). After
  `EMPTY_STREAK_LIMIT` answers emptied by the budget in a row, the next one runs
  until it has a line. Work done before a cancel stays in the KV cache.
- **Idle work.** `warm(request)` evaluates a prompt without generating (a file just
  opened or focused, a cursor jump, the full prompt after a small-window answer), and
  `prefetch(request, shown)` computes the completion the user sees after accepting
  `shown` into the response cache (llama.vscode's request after a shown hint); both
  stop at the next chunk when their cancel token fires.
- **Prefetch from what is cached.** After a small-window answer the KV cache keeps the
  window (the full prompt's cells stay parked, `KvPark`, until a call needs them), so the
  prefetch builds the same window with `shown` appended and costs `shown`'s tokens plus
  decoding, not the thousands of tokens of a cold full prompt; it uses whichever of the
  two prompts has less left to evaluate. Its generation keeps the request's own budget,
  and its answer is cached even when that budget cut it (a real request would have shown
  the same). `request_key` names the request a prefetch answers, so the service can let
  a real request for exactly it wait for the prefetch instead of cancelling it: with an
  `IdleToken` (engine/completion/idle.py) the prefetch says when its prompt will be
  evaluated (`prompt_eta`) and stops generating at the waiting request's `finish_by`.
- **Drafts from context.** Generation verifies tokens drafted by prompt lookup
  (engine/runtime/speculative.py) — n-grams of the prompt, which holds the document,
  the suffix and the ring's chunks — several per llama_decode; the output is the same.
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

from hanlin.engine.completion.budget import KvPark, SpeedMeter, WindowShelf, window_limits
from hanlin.engine.completion.context_ring import ContextChunk
from hanlin.engine.completion.filters import (
    BLOCK_END_FILTERS,
    DEFAULT_FILTERS,
    FILTERS,
    postprocess,
)
from hanlin.engine.completion.filters.base import (
    FilterContext,
    current_line_before,
    text_right_of_cursor,
    wants_multiline,
)
from hanlin.engine.completion.fim import (
    FimPrompt,
    FimTemplate,
    LlamaVocab,
    PromptLimits,
    build_prompt,
)
from hanlin.engine.completion.fim import detect_template as _detect_template
from hanlin.engine.completion.idle import IdleToken
from hanlin.engine.completion.kv_shift import DEFAULT_MIN_CHUNK, apply_shift, plan_shift
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import Cancelled, GenerationError

if TYPE_CHECKING:
    from hanlin.engine.runtime.kv_state_store import KVStateStore
    from hanlin.engine.runtime.loader import LoadedModel
    from hanlin.engine.runtime.speculative import Speculator

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
#: prompt tokens per llama_decode in idle work (warm-up, prefetch): a real request waits
#: at most one such chunk for the model
IDLE_CHUNK = 64
#: ...and one such chunk should take about this long, by the measured speed
IDLE_CHUNK_MS = 150.0
#: smallest prompt chunk in a request (smaller batches waste the CPU's matrix units)
MIN_CHUNK = 32
#: answers emptied by the budget in a row before the next one may overrun it to get a line
EMPTY_STREAK_LIMIT = 3
#: small-window size (tokens) before the prompt speed was ever measured
UNMEASURED_WINDOW_TOKENS = 64
#: the budget share kept for generation before the decode speed is measured
GEN_SHARE = 0.35
#: tokens of generation the budget keeps room for once the decode speed is known
GEN_RESERVE_TOKENS = 12
#: share of the prompt time left that the small window may use
WINDOW_SHARE = 0.6
#: a shelved window is put back when it shares this many more tokens with the new window
#: than the KV cache does (and a window is shelved only when it holds that many more)
SHELF_MIN_GAIN = 16
#: the shortest cached run a small window shifts into place (its first line moved down, or
#: a line above the cursor changed): windows are small, so shorter runs than the full
#: prompt's `reuse_chunk` are worth keeping
WINDOW_SHIFT_MIN = 16


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
    #: answer from a small window when the full prompt does not fit the budget
    small_window: bool = True


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
    #: the answer came from the small window (the full prompt did not fit the budget)
    small_window: bool = False
    #: why the budget shaped this answer ("" when it did not): for the status line and log
    budget_note: str = ""
    #: cached tokens moved into place by shifted-KV reuse (part of `tokens_cached`)
    tokens_shifted: int = 0
    #: tokens drafted by prompt lookup and of those accepted by the model
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    #: the answer is a prefetched completion (computed before the user accepted the last one)
    prefetched: bool = False
    #: milliseconds the request waited for a prefetch of exactly it to finish (the service)
    waited_ms: float = 0.0

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
            "smallWindow": self.small_window,
            "budgetNote": self.budget_note,
            "tokensShifted": self.tokens_shifted,
            "draftedTokens": self.drafted_tokens,
            "acceptedTokens": self.accepted_tokens,
            "prefetched": self.prefetched,
            "waitedMs": round(self.waited_ms, 3),
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
    #: of `tokens_cached`, tokens reused by shifting them (kv_shift.py)
    tokens_shifted: int = 0
    #: answers from the small window, and answers the budget left empty
    small_window_answers: int = 0
    budget_empty: int = 0
    #: idle work: prompt tokens evaluated by warm-ups (and prefetches), prefetches run
    warm_tokens: int = 0
    prefetches: int = 0
    #: requests answered by a prefetched completion, over `prefetches`
    prefetch_hits: int = 0
    prefetch_hit_rate: float | None = None
    #: prompt-lookup drafts: tokens drafted, accepted, accepted / drafted
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    draft_acceptance_rate: float | None = None
    #: prompt tokens loaded from KV states saved on disk (instead of evaluated)
    restored_tokens: int = 0


@dataclass(frozen=True)
class _WindowMemo:
    """The last small-window answer: its request (header, prefix) and the window's limits."""

    header: str
    multiline: bool
    prefix: str
    limits: PromptLimits

    def after(self, header: str, prefix: str, shown: str) -> PromptLimits | None:
        """Limits giving the same window start for `prefix + shown` (None: another request).

        The window keeps the last `prefix_lines` lines and `prefix_chars` characters; both
        grow by what was added since, so the window's first line stays where it was and
        the KV cache holding the window stays a prefix of the new prompt.
        """
        if header != self.header or not prefix.startswith(self.prefix):
            return None
        added = prefix[len(self.prefix) :] + shown
        return replace(
            self.limits,
            prefix_lines=self.limits.prefix_lines + added.count("\n"),
            prefix_chars=self.limits.prefix_chars + len(added),
        )


@dataclass
class _CacheEntry:
    text: str
    raw_text: str
    #: made by `prefetch`; `used` once a request was answered from it
    prefetched: bool = False
    used: bool = False
    #: the answer is the line after a finished cursor line (`FilterContext.next_line`)
    next_line: bool = False


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
        hit = self.lookup_entry(header, prefix)
        return None if hit is None else (hit[0], hit[1])

    def lookup_entry(self, header: str, prefix: str) -> tuple[str, str, _CacheEntry] | None:
        """`lookup` plus the entry that answered."""
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
                    return entry.text, "", entry
                if entry.text.startswith(chars) and len(entry.text) > typed:
                    self._entries.move_to_end(key)
                    return entry.text[typed:], chars, entry
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
    drafted: int = 0
    accepted: int = 0
    #: a one-line answer at the end of a finished line: the model's newline, then the line
    #: after it (`FilterContext.next_line`)
    next_line: bool = False


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
        reuse_chunk: int = DEFAULT_MIN_CHUNK,
        drafts: bool = True,
        kv_store: KVStateStore | None = None,
    ) -> None:
        from hanlin.engine.runtime.session import build_sampler

        unknown = [f for f in filters if f not in FILTERS]
        if unknown:
            raise ValueError(f"unknown post-processing filters: {', '.join(unknown)}")
        self.model = model
        self.kv_reuse = kv_reuse
        self.response_cache = response_cache
        #: shortest cached run that shifted-KV reuse moves (0: prefix reuse only)
        self.reuse_chunk = reuse_chunk
        self.limits = limits or PromptLimits()
        self.filters = tuple(filters)
        self.vocab = LlamaVocab(model.llama)
        self.template = template or _detect_template(self.vocab, getattr(model, "family", None))
        #: the texts the filters may cut at as special tokens: the vocabulary's own, nothing else
        self.special_texts: tuple[str, ...] = self.vocab.special_texts()
        self.cache = ResponseCache(cache_size)
        self.totals = EngineTotals()
        self.speed = SpeedMeter()
        self._stats_lock = threading.Lock()
        self._sampler = build_sampler(model.session.vocab, temperature=temperature)
        self._stop_ids: frozenset[int] = frozenset()
        self._n_vocab = self.vocab.n_vocab
        self._empty_streak = 0
        #: the full prompt's KV cells while the cache holds a small window (put back lazily)
        self._parked: KvPark | None = None
        self._window: _WindowMemo | None = None
        #: the KV cache holds a small window (not a prefix of the full prompt), of this file
        self._kv_holds_window = False
        self._window_key: str | None = None
        #: the small windows of the last files left, to put back on return (`_enter_window`)
        self._shelf = WindowShelf()
        #: saved KV states on disk (engine/runtime/kv_state_store.py): warm after a restart
        self.kv_store = kv_store
        self._saved_at = 0
        self.speculator: Speculator | None = None
        if drafts:
            from hanlin.engine.runtime.speculative import PromptLookupDrafter, Speculator

            # the engine's own (not the chat's): its policy learns how code drafts fare
            self.speculator = Speculator(
                PromptLookupDrafter(), backend=getattr(model, "backend", "cpu") or "cpu"
            )

    # ------------------------------------------------------------------ public

    @property
    def template_name(self) -> str:
        return self.template.name

    def complete(
        self, request: CompletionRequest, *, cancel: CancelToken | None = None
    ) -> CompletionResult:
        """Complete at the cursor; `Cancelled` if `cancel` fires (the KV cache stays valid)."""
        return self._complete(request, cancel or NEVER_CANCELLED, prefetch=False)

    def warm(self, request: CompletionRequest, *, cancel: CancelToken | None = None) -> int:
        """Evaluate `request`'s full prompt into the KV cache without generating (idle time).

        Returns the tokens evaluated; stops quietly at the next chunk once `cancel` fires
        (what was evaluated stays cached for the next request).
        """
        cancel = cancel or NEVER_CANCELLED
        if cancel.cancelled:
            return 0
        multiline = self.filter_context(request).multiline
        with self.model.lock:
            if getattr(self.model, "closed", False):
                return 0
            prompt = self._build_prompt(request, multiline)
            self._unpark()
            self._restore_saved(prompt.tokens)
            cached, shifted = self._reuse(prompt.tokens)
            chunk = self._chunk_for(IDLE_CHUNK_MS, IDLE_CHUNK, floor=8)
            try:
                reached = self._eval_range(
                    prompt.tokens, cached, cancel, None, chunk, measure=False
                )
            except Cancelled:
                reached = len(self.model.session.tokens)
        evaluated = max(0, reached - cached)
        with self._stats_lock:
            self.totals.warm_tokens += evaluated
            self.totals.tokens_shifted += shifted
        if reached == len(prompt.tokens) and not cancel.cancelled:
            self._save_state()
        return evaluated

    def _restore_saved(self, tokens: Sequence[int]) -> None:
        """Load a saved KV state when it spares more of `tokens` than the cache holds."""
        store = self.kv_store
        if store is None or not self.kv_reuse:
            return
        session = self.model.session
        if session.common_prefix(session.tokens, tokens) >= len(tokens) // 2:
            return
        restored = store.restore(self.model, tokens)
        if restored is not None:
            self._saved_at = restored.stored_tokens
            with self._stats_lock:
                self.totals.restored_tokens += restored.matched_tokens

    def _save_state(self) -> None:
        """Save what the cache holds (idle time), when it grew enough since the last save."""
        store = self.kv_store
        held = len(self.model.session.tokens)
        if store is None or abs(held - self._saved_at) < store.min_save_tokens:
            return
        saved = store.save(self.model)
        if saved is not None:
            self._saved_at = saved.tokens

    def after_accept(self, request: CompletionRequest, shown: str) -> CompletionRequest:
        """The request an editor sends once `shown` is accepted at `request`'s cursor."""
        return replace(request, prefix=request.prefix + shown)

    def request_key(self, request: CompletionRequest) -> bytes:
        """The response cache's key for `request`: a prefetch for it is stored under it."""
        multiline = self.filter_context(request).multiline
        return self.cache.key(self._cache_header(request, multiline), request.prefix)

    def prefetch(
        self, request: CompletionRequest, shown: str, *, cancel: CancelToken | None = None
    ) -> CompletionResult | None:
        """Compute the completion seen after accepting `shown` at `request`'s cursor.

        The result goes into the response cache (marked prefetched), so the request that
        follows the acceptance is answered at once; None when it was cancelled, when
        `shown` is empty or when that completion is cached already. When `request` was
        answered from the small window, the same window with `shown` appended is used if
        it has less left to evaluate than the full prompt (it usually is in the KV cache).
        """
        cancel = cancel or NEVER_CANCELLED
        if not shown or not self.response_cache or cancel.cancelled:
            return None
        after = replace(
            self.after_accept(request, shown),
            # nobody waits for the prompt: interrupted only by a real request; generation
            # keeps the request's budget (what a real request would have shown)
            time_budget_ms=max(request.time_budget_ms * 10, 30_000),
            t_max_prompt_ms=None,
            t_max_predict_ms=request.t_max_predict_ms or request.time_budget_ms,
            small_window=False,
        )
        header = self._cache_header(after, self.filter_context(after).multiline)
        if self.cache.lookup(header, after.prefix) is not None:
            return None
        window = None
        memo = self._window
        if memo is not None:
            window = memo.after(self._cache_header(request, memo.multiline), request.prefix, shown)
        try:
            return self._complete(after, cancel, prefetch=True, window=window)
        except Cancelled:
            return None

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

    def cached(self, request: CompletionRequest) -> CompletionResult | None:
        """The answer from the response cache (no model needed), counted as a request;
        None when nothing cached answers `request`."""
        if not self.response_cache:
            return None
        started = time.perf_counter()
        fctx = self.filter_context(request)
        hit = self.cache.lookup_entry(self._cache_header(request, fctx.multiline), request.prefix)
        block = self._typed_through_block(request, fctx)
        if block is not None and (hit is None or len(block[1]) < len(hit[1])):
            hit, fctx = block, replace(fctx, multiline=True, continues_block=True)
        if hit is None:
            return None
        text, _typed, entry = hit
        if entry.next_line and not _typed:
            fctx = replace(fctx, next_line=True)
        first_use = entry.prefetched and not entry.used
        entry.used = True
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
            prefetched=entry.prefetched,
        )
        self._count(result, prefetch_hit=first_use)
        return result

    def _typed_through_block(
        self, request: CompletionRequest, fctx: FilterContext
    ) -> tuple[str, str, _CacheEntry] | None:
        """A multi-line completion the user is typing through, when the typing made the
        request a one-line one (the first characters of the block's first line on a blank
        line): the rest of the block, as the editor keeps showing it. None otherwise.

        The entry was made where the context called for several lines (the same text right
        of the cursor, since typing inserts before it), so its lines are still wanted;
        answering from it anew, one line at a time, would cut what is on screen.
        """
        if fctx.multiline or request.multiline is False:
            return None
        hit = self.cache.lookup_entry(self._cache_header(request, True), request.prefix)
        if hit is None or not hit[1] or "\n" not in hit[0]:
            return None
        return hit

    def _complete(
        self,
        request: CompletionRequest,
        cancel: CancelToken,
        *,
        prefetch: bool,
        window: PromptLimits | None = None,
    ) -> CompletionResult:
        started = time.perf_counter()
        fctx = self.filter_context(request)
        multiline = fctx.multiline
        header = self._cache_header(request, multiline)
        if not prefetch and (hit := self.cached(request)) is not None:
            return hit

        cancel.raise_if_cancelled()
        with self.model.lock:
            if getattr(self.model, "closed", False):
                raise GenerationError(
                    "The completion model was closed", "load a model again to get completions"
                )
            prompt = self._build_prompt(request, multiline)
            try:
                run = None
                if prefetch and window is not None:
                    run = self._prefetch_window(prompt, request, multiline, cancel, started, window)
                if run is None and not prefetch:
                    run = self._keep_window(prompt, request, multiline, cancel, started)
                if run is None:
                    self._unpark()
                    if not self.model.session.tokens:  # a fresh start: a saved state may be there
                        self._restore_saved(prompt.tokens)
                    run = self._run(prompt, request, multiline, cancel, started, idle=prefetch)
            except Cancelled:
                with self._stats_lock:
                    self.totals.cancelled += int(not prefetch)  # idle work is not counted
                raise
        gen = run.gen
        if gen.stop_reason == "cancelled":
            with self._stats_lock:
                if prefetch:
                    self.totals.warm_tokens += run.evaluated
                else:
                    self.totals.cancelled += 1
                    self.totals.tokens_evaluated += run.evaluated
                self.totals.tokens_cached += run.cached
            raise Cancelled(cancel.reason or "Cancelled: a newer request replaced this one.")

        if gen.next_line:
            fctx = replace(fctx, next_line=True)
        text = postprocess(gen.raw, fctx, self.filters)
        note = run.note
        if not prefetch:
            if not text.strip() and gen.stop_reason == "time":
                self._empty_streak += 1
                note = note or "the time budget ran out before the model wrote anything"
            else:
                self._empty_streak = 0
        result = CompletionResult(
            text=text,
            tokens_evaluated=run.evaluated,
            tokens_cached=run.cached,
            generated_tokens=gen.tokens,
            from_cache=False,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            stop_reason=gen.stop_reason,
            template=self.template.name,
            prompt_tokens=run.prompt_tokens,
            raw_text=gen.raw,
            small_window=run.small_window,
            budget_note=note,
            tokens_shifted=run.shifted,
            drafted_tokens=gen.drafted,
            accepted_tokens=gen.accepted,
            prefetched=prefetch,
        )
        # a prefetch cut by the request's own budget is what that request would have shown
        if self.response_cache and (gen.stop_reason != "time" or (prefetch and text.strip())):
            self.cache.put(
                self.cache.key(header, request.prefix),
                _CacheEntry(text, gen.raw, prefetched=prefetch, next_line=gen.next_line),
            )
        self._count(result, prefetch=prefetch)
        return result

    def _count(
        self, result: CompletionResult, *, prefetch: bool = False, prefetch_hit: bool = False
    ) -> None:
        with self._stats_lock:
            s = self.totals
            if prefetch:
                s.prefetches += 1
                s.warm_tokens += result.tokens_evaluated
            else:
                s.requests += 1
                s.cache_hits += int(result.from_cache)
                s.tokens_evaluated += result.tokens_evaluated
                s.small_window_answers += int(result.small_window)
                s.budget_empty += int(result.stop_reason == "time" and not result.text.strip())
            s.tokens_cached += result.tokens_cached
            s.tokens_shifted += result.tokens_shifted
            s.generated_tokens += result.generated_tokens
            s.prefetch_hits += int(prefetch_hit)
            if s.prefetches:
                s.prefetch_hit_rate = round(s.prefetch_hits / s.prefetches, 4)
            s.drafted_tokens += result.drafted_tokens
            s.accepted_tokens += result.accepted_tokens
            if s.drafted_tokens:
                s.draft_acceptance_rate = round(s.accepted_tokens / s.drafted_tokens, 4)

    def stats_dict(self) -> dict[str, Any]:
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

    def _build_prompt(
        self, request: CompletionRequest, multiline: bool, limits: PromptLimits | None = None
    ) -> FimPrompt:
        """The prompt, shrunk until it and the answer fit the context window.

        `multiline` picks the mode of templates that declare one (CodeGeeX4's LINE/BLOCK).
        """
        n_ctx = int(getattr(self.model, "n_ctx", 0) or self.model.session.n_ctx)
        room = n_ctx - max(1, request.max_tokens) - 1
        limits = limits or self.limits
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

    # -- evaluating within the budget ---------------------------------------------------

    def _reuse(self, tokens: Sequence[int]) -> tuple[int, int]:
        """Make the KV cache a prefix of `tokens` (prefix + shifted reuse): (cached, shifted)."""
        session = self.model.session
        self._kv_holds_window = False
        self._window_key = None
        if not self.kv_reuse:
            session.truncate(0)
            return 0, 0
        plan = apply_shift(session, tokens, self.reuse_chunk)
        keep = len(session.tokens)
        if keep >= len(tokens):
            keep = session.truncate(len(tokens) - 1)  # the last token runs again for its logits
        return keep, min(plan.shifted, keep)

    def _chunk_for(self, ms: float, ceiling: int, floor: int = MIN_CHUNK) -> int:
        """Prompt tokens per llama_decode so that one chunk takes about `ms`."""
        return max(min(floor, ceiling), min(ceiling, self.speed.tokens_within(ms, ceiling)))

    def _eval_range(
        self,
        tokens: Sequence[int],
        pos: int,
        cancel: CancelToken,
        deadline: _Deadline | None,
        chunk: int,
        *,
        at_least_one: bool = False,
        measure: bool = True,
    ) -> int:
        """Evaluate `tokens[pos:]` in chunks; returns the position reached (the deadline
        stops it before a chunk it predicts would end past it; `at_least_one` evaluates
        one chunk whatever the deadline says). `measure=False` for idle work: its chunks
        run while the editor may be busy or suspended, and a request's budget must be
        planned with the speed requests get."""
        session = self.model.session
        start = pos
        while pos < len(tokens):
            if cancel.cancelled:
                raise Cancelled(cancel.reason or "Cancelled: a newer request replaced this one.")
            end = min(len(tokens), pos + chunk)
            if deadline is not None and not (at_least_one and pos == start):
                cost = self.speed.prompt_ms(end - pos)
                ahead = time.perf_counter() + (cost or 0.0) / 1000.0
                if deadline.passed() or (cost is not None and ahead > deadline.at):
                    return pos
            t0 = time.perf_counter()
            session.evaluate(tokens[:end], reuse=True)
            if measure:
                self.speed.prompt_measured(end - pos, time.perf_counter() - t0)
            pos = end
        return pos

    def _gen_reserve_ms(self, request: CompletionRequest) -> float:
        per = self.speed.decode_ms_per_token
        share = request.time_budget_ms * GEN_SHARE
        if per is None:
            return share
        return min(share, per * min(GEN_RESERVE_TOKENS, max(1, request.max_tokens)))

    def _prompt_allowance(self, request: CompletionRequest) -> tuple[float, float]:
        """(the prompt's own cap, the time the prompt may take leaving room to generate),
        in ms from the request's start."""
        budget = float(request.time_budget_ms)
        prompt_budget = min(float(request.t_max_prompt_ms or budget), budget)
        return prompt_budget, min(prompt_budget, budget - self._gen_reserve_ms(request))

    def _run(
        self,
        prompt: FimPrompt,
        request: CompletionRequest,
        multiline: bool,
        cancel: CancelToken,
        started: float,
        *,
        idle: bool = False,
    ) -> _Run:
        """Evaluate and generate within the budget: the full prompt when it fits (by the
        measured speed), else the small window around the cursor."""
        tokens = prompt.tokens
        budget = float(request.time_budget_ms)
        prompt_budget, allowed = self._prompt_allowance(request)
        must_answer = self._empty_streak >= EMPTY_STREAK_LIMIT
        if not request.small_window:
            cached, shifted = self._reuse(tokens)
            if idle:
                self._note_eta(cancel, len(tokens) - cached)
            chunk = (
                self._chunk_for(IDLE_CHUNK_MS, IDLE_CHUNK, floor=8)
                if idle
                else self._chunk_for(budget / 6, PROMPT_CHUNK)
            )
            reached = self._eval_range(
                tokens,
                cached,
                cancel,
                _Deadline(started, prompt_budget),
                chunk,
                at_least_one=True,
                measure=not idle,
            )
            run = _Run(
                evaluated=reached - cached,
                cached=cached,
                shifted=shifted,
                prompt_tokens=len(tokens),
            )
            if idle:
                self._note_eta(cancel, len(tokens) - reached)
            if reached < len(tokens):
                run.gen = _Generation(stop_reason="time")
                run.note = (
                    f"the prompt ({len(tokens)} tokens) did not fit the time budget of "
                    f"{request.time_budget_ms} ms; {reached} tokens are evaluated"
                )
            else:
                run.gen = self._generate(
                    prompt, request, multiline, cancel, started, must_answer, measure=not idle
                )
            return run

        cached, shifted = self._reuse(tokens)
        run = _Run(cached=cached, shifted=shifted, prompt_tokens=len(tokens))
        todo = len(tokens) - cached
        pos = cached
        if self.speed.prompt_ms_per_token is None and todo > MIN_CHUNK:
            # never measured: a first small chunk of the full prompt tells the speed
            pos = self._eval_range(tokens[: pos + MIN_CHUNK], pos, cancel, None, MIN_CHUNK)
        estimate = self.speed.prompt_ms(len(tokens) - pos) or 0.0
        elapsed = (time.perf_counter() - started) * 1000
        if elapsed + estimate <= allowed:
            chunk = self._chunk_for(budget / 6, PROMPT_CHUNK)
            pos = self._eval_range(tokens, pos, cancel, _Deadline(started, allowed), chunk)
            if pos == len(tokens):
                run.evaluated = pos - cached
                run.gen = self._generate(prompt, request, multiline, cancel, started, must_answer)
                return run
        run.evaluated = pos - cached
        return self._answer_from_window(run, request, multiline, cancel, started, todo)

    def _answer_from_window(
        self,
        run: _Run,
        request: CompletionRequest,
        multiline: bool,
        cancel: CancelToken,
        started: float,
        todo: int,
    ) -> _Run:
        """The full prompt (`todo` tokens not cached) does not fit: answer from the lines
        nearest the cursor."""
        tokens_total = run.prompt_tokens
        must_answer = self._empty_streak >= EMPTY_STREAK_LIMIT
        elapsed = (time.perf_counter() - started) * 1000
        window_ms = max(0.0, self._prompt_allowance(request)[1] - elapsed)
        # at most WINDOW_SHARE of what is left: the answer comes sooner, and the idle time
        # before the next keystroke goes to the full prompt
        window_ms *= WINDOW_SHARE
        cap = max(MIN_CHUNK // 2, self.speed.tokens_within(window_ms, UNMEASURED_WINDOW_TOKENS))
        window, limits = self._window_prompt(request, multiline, cap)
        keep, shifted = self._enter_window(window.tokens, request.filename or "")
        run.shifted += shifted
        reached = self._eval_range(
            window.tokens, keep, cancel, None, self._chunk_for(window_ms / 2, PROMPT_CHUNK)
        )
        run.evaluated += reached - keep
        run.cached = max(run.cached, keep)
        run.gen = self._generate(window, request, multiline, cancel, started, must_answer)
        self._window = _WindowMemo(
            self._cache_header(request, multiline), multiline, request.prefix, limits
        )
        run.small_window = True
        estimate = self.speed.prompt_ms(todo) or 0.0
        run.note = (
            f"the full prompt ({tokens_total} tokens, {todo} not cached) needs ~{estimate:.0f} ms"
            f", over the "
            f"{request.time_budget_ms} ms budget: answered from the {len(window.tokens)}-token "
            "window around the cursor; the rest is evaluated in idle time"
        )
        return run

    def _keep_window(
        self,
        prompt: FimPrompt,
        request: CompletionRequest,
        multiline: bool,
        cancel: CancelToken,
        started: float,
    ) -> _Run | None:
        """While the KV holds the last small window (the full prompt's evaluated part, if
        any, parked) and the full prompt still does not fit the budget, answer from the
        window without swapping the full prompt in and out: the window's cells are reused,
        so a keystroke on the same line reads only its new characters. None: the full
        prompt is worth putting back (or no window was answered from yet)."""
        parked = self._parked
        no_window = parked is None and self._window is None
        if no_window or not request.small_window or not self.kv_reuse:
            return None
        session = self.model.session
        tokens = prompt.tokens
        full_kv = parked.tokens if parked is not None else session.tokens
        todo = len(tokens) - session.common_prefix(full_kv, tokens)
        estimate = self.speed.prompt_ms(todo)
        if estimate is None:
            return None
        if (time.perf_counter() - started) * 1000 + estimate <= self._prompt_allowance(request)[1]:
            return None
        run = _Run(cached=0, shifted=0, prompt_tokens=len(tokens))
        return self._answer_from_window(run, request, multiline, cancel, started, todo)

    def _window_prompt(
        self, request: CompletionRequest, multiline: bool, cap: int
    ) -> tuple[FimPrompt, PromptLimits]:
        """The small window's prompt (the nearest lines, halved until what is not in the KV
        cache yet fits `cap` tokens) and the limits that made it. While the user types on a
        line, the window of the last keystroke is still cached, so the widest window costs
        only the new characters: the answer gets 48 lines of context, not the 4 lines a
        cold cap allows."""
        lines = None
        prompt: FimPrompt | None = None
        limits = window_limits(self.limits)
        for _ in range(8):
            limits = (
                window_limits(self.limits) if lines is None else window_limits(self.limits, lines)
            )
            prompt = self._build_prompt(request, multiline, limits)
            todo = len(prompt.tokens) - self._window_reusable(prompt.tokens)
            if todo <= cap or limits.prefix_lines <= 1:
                break
            lines = max(1, limits.prefix_lines // 2)
        assert prompt is not None
        return prompt, limits

    def _window_reusable(self, tokens: Sequence[int]) -> int:
        """How many of a window prompt's `tokens` the cache or a shelved window holds."""
        held = self.model.session.tokens
        if not self.kv_reuse:
            return 0
        now = plan_shift(held, tokens, WINDOW_SHIFT_MIN).kept
        return max(now, self._shelf.best_kept(tokens, WINDOW_SHIFT_MIN))

    def _enter_window(self, tokens: Sequence[int], key: str) -> tuple[int, int]:
        """Make the KV cache a prefix of the window prompt `tokens` (of file `key`);
        returns its length and how many of those tokens were shifted into place.

        The full prompt's cells are parked first (kept until a call needs them, then put
        back by `_unpark`), so the window's cells stay cached for a prefetch or the next
        window; a window already in the cache (the full prompt is parked) is reused. The
        window of another file is shelved, and a shelved window that shares more with
        `tokens` than the cache does is put back: typing in two files in turn re-reads
        only what changed in each since.
        """
        session = self.model.session
        if not self.kv_reuse:
            self._kv_holds_window, self._window_key = True, key
            return session.truncate(0), 0
        keep = plan_shift(session.tokens, tokens, WINDOW_SHIFT_MIN).kept
        shelved = self._shelf.take_best(tokens, keep + SHELF_MIN_GAIN, WINDOW_SHIFT_MIN)
        if self._kv_holds_window:
            leaving = self._window_key
            if (
                leaving is not None
                and (leaving != key or shelved is not None)
                and len(session.tokens) > keep + SHELF_MIN_GAIN
            ):
                self._shelf.shelve(session, leaving)
        elif self._parked is None and len(session.tokens) > keep:
            park = KvPark(session)
            if park.take():
                self._parked = park
        if shelved is not None:
            shelved.restore()  # an empty cache if llama.cpp refused: nothing is wrong
        self._kv_holds_window = True
        self._window_key = key
        plan = apply_shift(session, tokens, WINDOW_SHIFT_MIN)  # the cache: a prefix of `tokens`
        keep = session.truncate(len(tokens) - 1)
        return keep, min(plan.shifted, keep)

    def _unpark(self) -> None:
        """Put the parked full prompt back into the KV cache (the model's lock held); the
        window it replaces is shelved."""
        park, self._parked = self._parked, None
        if park is not None:
            session = self.model.session
            if self._kv_holds_window and self._window_key is not None and session.tokens:
                self._shelf.shelve(session, self._window_key)
            park.restore()
            self._kv_holds_window = False
            self._window_key = None

    def _note_eta(self, cancel: CancelToken, todo: int) -> None:
        """Tell a request that may join this idle work when its prompt will be evaluated
        (`todo` tokens left; unknown before the prompt speed was measured)."""
        if isinstance(cancel, IdleToken):
            ms = self.speed.prompt_ms(todo) if todo > 0 else 0.0
            cancel.prompt_eta = None if ms is None else time.perf_counter() + ms / 1000

    def _prefetch_window(
        self,
        prompt: FimPrompt,
        request: CompletionRequest,
        multiline: bool,
        cancel: CancelToken,
        started: float,
        limits: PromptLimits,
    ) -> _Run | None:
        """A prefetch from the shown answer's window with the accepted text appended, when
        that has less left to evaluate than the full prompt (None: use the full prompt)."""
        session = self.model.session
        window = self._build_prompt(request, multiline, limits)
        full_kv = self._parked.tokens if self._parked is not None else session.tokens
        full_todo = len(prompt.tokens) - session.common_prefix(full_kv, prompt.tokens)
        window_todo = len(window.tokens) - self._window_reusable(window.tokens)
        if window_todo + MIN_CHUNK >= full_todo:
            return None
        keep, shifted = self._enter_window(window.tokens, request.filename or "")
        self._note_eta(cancel, len(window.tokens) - keep)
        chunk = self._chunk_for(IDLE_CHUNK_MS, IDLE_CHUNK, floor=8)
        reached = self._eval_range(window.tokens, keep, cancel, None, chunk, measure=False)
        self._note_eta(cancel, 0)
        run = _Run(
            evaluated=reached - keep,
            cached=keep,
            shifted=shifted,
            prompt_tokens=len(prompt.tokens),
            small_window=True,
            note=(
                f"prefetched from the {len(window.tokens)}-token window the shown answer used "
                f"({keep} tokens cached; the full prompt has {full_todo} not cached)"
            ),
        )
        run.gen = self._generate(window, request, multiline, cancel, started, measure=False)
        self._window = _WindowMemo(
            self._cache_header(request, multiline), multiline, request.prefix, limits
        )
        return run

    def _generate(
        self,
        prompt: FimPrompt,
        request: CompletionRequest,
        multiline: bool,
        cancel: CancelToken,
        started: float,
        must_answer: bool = False,
        *,
        measure: bool = True,
    ) -> _Generation:
        """Sample the completion; `must_answer` ignores the deadlines until a line is written
        (`measure=False`: idle work, whose speed does not plan budgets)."""
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
        # one line wanted at the end of a line with code on it: when the model ends that
        # line (its answer starts with a newline), the line after it is the answer
        next_line_ok = (
            not multiline
            and request.multiline is not False
            and not text_right_of_cursor(request.suffix).strip()
            and bool(current_line_before(request.prefix).strip())
        )

        def is_stop(token: int) -> bool:
            return token in stop_ids or vocab.is_control(token)

        # idle work a real request joined: done by the time that request set
        hurry = cancel if isinstance(cancel, IdleToken) else None

        def out_of_time() -> bool:
            if predict.passed() or overall.passed():
                return True
            by = hurry.finish_by if hurry is not None else None
            return by is not None and time.perf_counter() >= by

        speculator = self.speculator
        if speculator is not None:
            speculator.drafter.begin(session.tokens)
        gen.stop_reason = "length"
        tokens = session.generate(
            self._sampler,
            max_tokens=max(1, request.max_tokens),
            cancel=cancel,
            stop_tokens=is_stop,
            speculator=speculator,
        )
        calls = session.decode_calls
        try:
            for token in tokens:
                gen.tokens += 1
                piece = decoder.feed(session.token_bytes(token, special=False))
                gen.raw += piece
                if "\n" in piece:
                    if not multiline:  # one line wanted: it is over
                        head, _, rest = gen.raw.partition("\n")
                        if next_line_ok and not gen.next_line and not head.strip():
                            gen.next_line, gen.raw = True, "\n" + rest
                        if not gen.next_line:
                            gen.raw = head
                            gen.stop_reason = "eol"
                            break
                        if "\n" in rest:
                            gen.raw = "\n" + rest.split("\n", 1)[0]
                            gen.stop_reason = "eol"
                            break
                    if multiline and self._block_done(gen.raw, fctx):
                        gen.stop_reason = "scope"
                        break
                if out_of_time() and not (must_answer and "\n" not in gen.raw.lstrip("\n")):
                    gen.stop_reason = "time"
                    break
            else:
                reason = getattr(session, "last_stop_reason", "stop")
                gen.stop_reason = {"cancelled": "cancelled", "length": "length"}.get(reason, "stop")
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()  # the speculator removes drafted tokens nobody took
        elapsed = time.perf_counter() - now
        calls = session.decode_calls - calls
        if gen.tokens and calls and measure:
            self.speed.decode_measured(calls, elapsed)
        if speculator is not None:
            gen.drafted, gen.accepted = speculator.last.drafted, speculator.last.accepted
        gen.raw += decoder.flush()
        return gen

    @staticmethod
    def _block_done(raw: str, fctx: FilterContext) -> bool:
        """True once the complete lines so far end the cursor's block or start repeating."""
        complete = raw.rsplit("\n", 1)[0]
        if "\n" not in raw or not complete.strip():
            return False
        return any(len(FILTERS[n](complete, fctx)) < len(complete) for n in BLOCK_END_FILTERS)


@dataclass
class _Run:
    """What `_run` did: its tokens, the generation, and how the budget shaped it."""

    evaluated: int = 0
    cached: int = 0
    shifted: int = 0
    prompt_tokens: int = 0
    gen: _Generation = field(default_factory=_Generation)
    small_window: bool = False
    note: str = ""
