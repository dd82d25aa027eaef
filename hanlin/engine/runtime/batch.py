"""Several sequences in one llama.cpp context: continuous batching for concurrent requests.

Why: `LlamaSession` owns sequence 0 of a model's context, so two requests on one model
take turns. A decode step on a CPU costs nearly the same for one token as for four
(the weights are read once per step either way), so running the sequences of several
requests *in one batch* raises the total throughput: on SmolLM2-135M, 2 threads,
2-core VM, one sequence decoded 98 tok/s, four together 157 tok/s in total (1.6×),
eight 174 tok/s. This module is what llama.cpp's own server does with its slots:

- one `llama_context` with `n_seq_max` sequences, each with its own KV cells
  (`kv_unified=False`, so sequence i never attends over another's cache);
- a thread that repeatedly builds one `llama_batch` from the next token of every
  generating sequence plus chunks of prompts still being read (continuous batching
  with chunked prefill: a long prompt never stalls the others for more than a step),
  calls `llama_decode` once, and samples every sequence with its own sampler chain
  (`llama_sampler_sample(chain, ctx, i)`, all in C);
- per-sequence KV reuse: a new job goes to the idle sequence whose cached tokens share
  the longest prefix with its prompt (a follow-up turn of a conversation finds its
  own history there), and only the rest is evaluated;
- a `CancelToken` per job checked before every step: a cancelled job (a client gone)
  stops within one step and its sequence keeps what it had decoded, for reuse.

Text work (detokenizing, stop strings, the reasoning split) stays with the caller:
`on_token(token, piece)` is called on the decoder thread for each sampled token and
answers True to stop. The model's own context and `LlamaSession` are left alone;
this context shares the model's weights. Engine code: it imports no front end.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import llama_cpp

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import GenerationError, ModelLoadError
from hanlin.engine.runtime.compute_thread import run_compute
from hanlin.engine.runtime.session import Sampler

if TYPE_CHECKING:
    from hanlin.engine.runtime.loader import LoadedModel

__all__ = ["BatchDecoder", "BatchJob", "DecoderStats"]

#: what `on_token` receives: the token id and its text piece (bytes); True = stop now
TokenCallback = Callable[[int, bytes], bool]


@dataclass(eq=False)
class BatchJob:
    """One generation: a prompt as token ids, its sampler, and where its tokens go."""

    tokens: Sequence[int]
    sampler: Sampler
    max_tokens: int
    on_token: TokenCallback
    cancel: CancelToken = field(default_factory=lambda: NEVER_CANCELLED)
    #: token ids that end the generation (besides the vocabulary's end-of-generation ones)
    stop_ids: frozenset[int] = frozenset()
    #: called on the decoder thread once the job is finished (after `done` is set)
    on_done: Callable[[BatchJob], None] | None = None
    # ---- filled in by the decoder
    cached_tokens: int = 0
    generated_tokens: int = 0
    #: "stop" | "length" | "cancelled" | "error"
    stop_reason: str = ""
    error: BaseException | None = None
    submitted_at: float = 0.0
    started_at: float = 0.0
    prompt_done_at: float = 0.0
    first_token_at: float = 0.0
    last_token_at: float = 0.0
    finished_at: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def prompt_tokens(self) -> int:
        return len(self.tokens)

    @property
    def tokens_per_s(self) -> float:
        """Decode speed after the first token (comparable to `GenerationStats.tokens_per_s`)."""
        span = self.last_token_at - self.first_token_at
        return (self.generated_tokens - 1) / span if self.generated_tokens > 1 and span else 0.0


@dataclass(frozen=True)
class DecoderStats:
    sequences: int
    active: int
    waiting: int
    jobs_done: int
    cancelled: int
    generated_tokens: int


@dataclass(eq=False)
class _Slot:
    seq: int
    #: tokens whose keys/values this sequence holds, in position order
    tokens: list[int] = field(default_factory=list)
    job: BatchJob | None = None
    #: prompt tokens still to evaluate
    todo: list[int] = field(default_factory=list)
    #: the last sampled token, to be decoded in the next step
    pending: int | None = None
    last_used: float = 0.0
    #: prompt tokens put into the batch being decoded
    chunk: int = 0


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class BatchDecoder:
    """`n_seq` sequences of up to `n_ctx_seq` tokens each, decoded together on one thread."""

    def __init__(
        self, model: LoadedModel, *, n_seq: int, n_ctx_seq: int, n_batch: int = 512
    ) -> None:
        if n_seq < 1 or n_ctx_seq < 16:
            raise ValueError("need at least one sequence of 16 tokens")
        self.model = model
        self.n_seq = n_seq
        self.n_batch = max(n_batch, n_seq)
        self.vocab = model.vocab
        self._ctx = self._create_context(model, n_seq, n_ctx_seq, self.n_batch)
        per_seq = int(llama_cpp.llama_n_ctx_seq(self._ctx))
        self.n_ctx_seq = per_seq if per_seq > 0 else n_ctx_seq
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._slots = [_Slot(seq=i) for i in range(n_seq)]
        self._waiting: deque[BatchJob] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._jobs_done = 0
        self._cancelled = 0
        self._generated = 0
        self._thread = threading.Thread(
            target=self._run, name=f"hanlin-batch-{model.model_id}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------ set-up

    @staticmethod
    def _create_context(model: LoadedModel, n_seq: int, n_ctx_seq: int, n_batch: int) -> Any:
        attempts = [llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED] if model.options.flash_attn else []
        attempts.append(llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        for flash in attempts:
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = n_ctx_seq * n_seq
            params.n_batch = n_batch
            params.n_ubatch = n_batch
            params.n_seq_max = n_seq
            params.n_threads = model.threads
            params.n_threads_batch = model.threads
            params.flash_attn_type = flash
            params.kv_unified = False
            params.no_perf = True
            ctx = llama_cpp.llama_init_from_model(model.model_handle, params)
            if ctx:
                return ctx
        raise ModelLoadError(
            f"llama.cpp could not create a context for {n_seq} sequences of {n_ctx_seq} tokens "
            f"on {model.path.name}",
            "lower --parallel or --ctx (the KV cache may not fit in memory)",
        )

    # ------------------------------------------------------------ API

    def submit(self, job: BatchJob) -> None:
        """Queue `job`; it starts as soon as a sequence is free. Never blocks."""
        if not job.tokens:
            raise GenerationError("Nothing to evaluate: the prompt is empty")
        if len(job.tokens) >= self.n_ctx_seq:
            raise GenerationError(
                f"The prompt has {len(job.tokens)} tokens; the context holds {self.n_ctx_seq}",
                "shorten it, or start the server with a larger --ctx",
            )
        job.submitted_at = time.perf_counter()
        with self._cond:
            if self._closing:
                raise GenerationError("The model is being unloaded", "send the request again")
            self._waiting.append(job)
            self._cond.notify()

    def stats(self) -> DecoderStats:
        with self._cond:
            return DecoderStats(
                sequences=self.n_seq,
                active=sum(1 for s in self._slots if s.job is not None),
                waiting=len(self._waiting),
                jobs_done=self._jobs_done,
                cancelled=self._cancelled,
                generated_tokens=self._generated,
            )

    def close(self, timeout: float = 10.0) -> None:
        """Cancel what runs, stop the thread, free the context. Idempotent."""
        with self._cond:
            if self._closing and self._ctx is None:
                return
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._thread.is_alive():
            return  # stuck inside llama_decode: leave the memory rather than free it under it
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while (
                        not self._closing
                        and not self._waiting
                        and not any(s.job for s in self._slots)
                    ):
                        self._cond.wait()
                    if self._closing:
                        break
                    self._admit()
                self._step()
        finally:
            with self._cond:
                leftovers = [s for s in self._slots if s.job is not None]
                waiting = list(self._waiting)
                self._waiting.clear()
            reason = GenerationError("The server is shutting down", "send the request again")
            for slot in leftovers:
                self._finish(slot, "cancelled")
            for job in waiting:
                job.error = reason
                self._complete(job, "error")

    def _admit(self) -> None:
        """Give waiting jobs to free sequences (the one caching most of the prompt). Under lock."""
        while self._waiting:
            free = [s for s in self._slots if s.job is None]
            if not free:
                return
            job = self._waiting.popleft()
            if job.cancel.cancelled:
                self._complete(job, "cancelled")
                continue
            tokens = list(job.tokens)
            slot = max(free, key=lambda s: (_common_prefix(s.tokens, tokens), -s.last_used))
            keep = _common_prefix(slot.tokens, tokens)
            if keep == len(tokens):
                keep -= 1  # the last prompt token must run again for fresh logits
            if keep < len(slot.tokens):
                memory = llama_cpp.llama_get_memory(self._ctx)
                if not llama_cpp.llama_memory_seq_rm(memory, slot.seq, keep, -1):
                    llama_cpp.llama_memory_seq_rm(memory, slot.seq, -1, -1)
                    keep = 0
                del slot.tokens[keep:]
            job.cached_tokens = keep
            job.started_at = time.perf_counter()
            slot.job = job
            slot.todo = tokens[keep:]
            slot.pending = None

    def _step(self) -> None:
        active = [s for s in self._slots if s.job is not None]
        for slot in active:
            assert slot.job is not None
            if slot.job.cancel.cancelled:
                self._finish(slot, "cancelled")
        active = [s for s in active if s.job is not None]
        if not active:
            return
        batch = self._batch
        n = 0
        outputs: list[tuple[_Slot, int]] = []

        def add(token: int, pos: int, seq: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq
            batch.logits[n] = logits
            n += 1

        for slot in active:
            slot.chunk = 0
            if slot.pending is not None:
                add(slot.pending, len(slot.tokens), slot.seq, True)
                outputs.append((slot, n - 1))
        budget = self.n_batch - n
        for slot in active:
            if not slot.todo or budget <= 0:
                continue
            take = min(budget, len(slot.todo))
            base = len(slot.tokens)
            last = take == len(slot.todo)
            for i in range(take):
                add(slot.todo[i], base + i, slot.seq, last and i == take - 1)
            if last:
                outputs.append((slot, n - 1))
            slot.chunk = take
            budget -= take
        if n == 0:
            return
        batch.n_tokens = n
        rc = run_compute(llama_cpp.llama_decode, self._ctx, batch)  # one OpenMP team
        if rc != 0:
            self._decode_failed(active, rc)
            return
        now = time.perf_counter()
        for slot in active:
            if slot.pending is not None:
                slot.tokens.append(slot.pending)
                slot.pending = None
            if slot.chunk:
                slot.tokens.extend(slot.todo[: slot.chunk])
                del slot.todo[: slot.chunk]
                if not slot.todo and slot.job is not None:
                    slot.job.prompt_done_at = now
        for slot, index in outputs:
            self._sample(slot, index)

    def _sample(self, slot: _Slot, index: int) -> None:
        job = slot.job
        assert job is not None
        token = int(llama_cpp.llama_sampler_sample(job.sampler.handle, self._ctx, index))
        now = time.perf_counter()
        if job.generated_tokens == 0:
            job.first_token_at = now
        if llama_cpp.llama_vocab_is_eog(self.vocab, token) or token in job.stop_ids:
            self._finish(slot, "stop")
            return
        job.generated_tokens += 1
        job.last_token_at = now
        try:
            stop = job.on_token(token, self._piece(token))
        except BaseException as exc:  # the caller's text pipeline failed: end this job only
            job.error = exc
            self._finish(slot, "error")
            return
        if stop:
            self._finish(slot, "stop")
        elif job.cancel.cancelled:
            self._finish(slot, "cancelled")
        elif job.generated_tokens >= job.max_tokens or len(slot.tokens) + 1 >= self.n_ctx_seq:
            self._finish(slot, "length")
        else:
            slot.pending = token

    def _decode_failed(self, active: list[_Slot], rc: int) -> None:
        memory = llama_cpp.llama_get_memory(self._ctx)
        for slot in active:
            llama_cpp.llama_memory_seq_rm(memory, slot.seq, -1, -1)
            slot.tokens = []
            assert slot.job is not None
            slot.job.error = GenerationError(
                f"llama.cpp could not evaluate the batch (llama_decode returned {rc})",
                "send the request again; if it keeps failing, lower --parallel or --ctx",
            )
            self._finish(slot, "error")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = self._piece_buf
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
            if n < 0:
                big = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, big, len(big), 0, True)
                piece = big.raw[:n]
            else:
                piece = buf.raw[:n]
            self._pieces[token] = piece
        return piece

    def _finish(self, slot: _Slot, reason: str) -> None:
        job = slot.job
        slot.job = None
        slot.todo = []
        slot.pending = None  # a sampled, undecoded token is not in the cache
        slot.last_used = time.perf_counter()
        if job is not None:
            self._complete(job, reason)

    def _complete(self, job: BatchJob, reason: str) -> None:
        job.stop_reason = reason
        job.finished_at = time.perf_counter()
        self._jobs_done += 1
        self._generated += job.generated_tokens
        if reason == "cancelled":
            self._cancelled += 1
        job.done.set()
        if job.on_done is not None:
            with contextlib.suppress(Exception):
                job.on_done(job)
