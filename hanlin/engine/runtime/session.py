"""Low-level llama.cpp generation: KV-cache ownership, tokenizing, sampling, decoding.

Why: llama-cpp-python's high-level `Llama.create_completion` does per-token
Python and numpy work (it copies the full logits row into numpy every token)
and reaches only ~0.78× of llama.cpp's own decode speed on a small model. Here
generation goes straight through the C API: `llama_decode` on a batch,
llama.cpp's sampler chain (`llama_sampler_chain_init` + top-k/top-p/min-p/
temperature/penalties/dist, all in C), `llama_sampler_sample` and
`llama_token_to_piece` (cached per token). What is left in Python per token is
a handful of ctypes calls.

`LlamaSession` owns the KV cache of one context (sequence 0) and remembers
which tokens it holds, so a new prompt that shares a prefix with what is
already evaluated only evaluates the new suffix (the diverging tail is removed
with `llama_memory_seq_rm`). Chat (engine/chat.py) and code completion
(engine/completion.py) both drive generation through it. Do not mix it with
the high-level `Llama.eval/create_completion` on the same context (they keep a
token record of their own); if something else touched the context, call
`session.reset()`.

All methods expect the caller to hold `LoadedModel.lock`.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import llama_cpp

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken, Progress, ProgressCallback
from hanlin.engine.core.errors import Cancelled, GenerationError
from hanlin.engine.runtime.compute_thread import run_compute

if TYPE_CHECKING:
    from hanlin.engine.runtime.speculative import Speculator

__all__ = [
    "EvalResult",
    "LlamaSession",
    "PieceDecoder",
    "Sampler",
    "StopMatcher",
    "build_sampler",
]


@dataclass(frozen=True, slots=True)
class EvalResult:
    """What `LlamaSession.evaluate` did: tokens reused from the KV cache vs newly decoded."""

    prompt_tokens: int
    cached_tokens: int
    evaluated_tokens: int
    seconds: float


class Sampler:
    """A llama.cpp sampler chain (owned; freed by `close()` or garbage collection)."""

    def __init__(self, chain: Any, description: str) -> None:
        self._chain = chain
        self.description = description

    @property
    def handle(self) -> Any:
        return self._chain

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """Sample from the logits of output `idx` (-1: the last); also accepts the token."""
        return llama_cpp.llama_sampler_sample(self._chain, ctx, idx)

    def accept(self, token: int) -> None:
        """Tell stateful samplers (penalties) about a token that was not sampled here."""
        llama_cpp.llama_sampler_accept(self._chain, token)

    def reset(self) -> None:
        llama_cpp.llama_sampler_reset(self._chain)

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


def build_sampler(
    vocab: Any,
    *,
    temperature: float = 0.7,
    top_k: int = 40,
    top_p: float = 0.95,
    min_p: float = 0.05,
    repeat_penalty: float = 1.0,
    penalty_last_n: int = 64,
    seed: int | None = None,
    grammar: str | None = None,
) -> Sampler:
    """A sampler chain: penalties → top-k → top-p → min-p → temp → dist (greedy at temp 0).

    `grammar` (GBNF text, start rule `root`) goes first: only tokens it allows are sampled
    (the API server's JSON mode and forced tool calls)."""
    params = llama_cpp.llama_sampler_chain_default_params()
    params.no_perf = True
    chain = llama_cpp.llama_sampler_chain_init(params)
    parts: list[str] = []

    def add(sampler: Any, label: str) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)
        parts.append(label)

    if grammar:
        constrained = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
        if not constrained:
            llama_cpp.llama_sampler_free(chain)
            raise GenerationError(
                "llama.cpp could not parse the grammar for this request",
                "check the JSON schema or tool parameters sent with it",
            )
        add(constrained, "grammar")

    if repeat_penalty and repeat_penalty != 1.0:
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        add(
            llama_cpp.llama_sampler_init_penalties(
                n_vocab, penalty_last_n, repeat_penalty, 0.0, 0.0
            ),
            f"penalties(last_n={penalty_last_n}, repeat={repeat_penalty})",
        )
    if temperature <= 0:
        add(llama_cpp.llama_sampler_init_greedy(), "greedy")
        return Sampler(chain, " → ".join(parts))
    if top_k and top_k > 0:
        add(llama_cpp.llama_sampler_init_top_k(int(top_k)), f"top_k({top_k})")
    if top_p is not None and 0 < top_p < 1:
        add(llama_cpp.llama_sampler_init_top_p(float(top_p), 1), f"top_p({top_p})")
    if min_p and min_p > 0:
        add(llama_cpp.llama_sampler_init_min_p(float(min_p), 1), f"min_p({min_p})")
    add(llama_cpp.llama_sampler_init_temp(float(temperature)), f"temp({temperature})")
    add(
        llama_cpp.llama_sampler_init_dist(
            llama_cpp.LLAMA_DEFAULT_SEED if seed is None else seed & 0xFFFFFFFF
        ),
        "dist",
    )
    return Sampler(chain, " → ".join(parts))


class PieceDecoder:
    """Bytes of token pieces → text, never splitting a multi-byte UTF-8 character.

    A character such as an emoji often spans two or three tokens; the decoder
    holds the incomplete bytes back until the rest arrives.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings in streamed text, holding back text that may start one.

    `feed(text)` returns (text safe to emit now, stopped?). When a stop string
    appears, everything from its start on is dropped.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._keep = max((len(s) for s in self.stops), default=1) - 1
        # every proper prefix of every stop string, and their first characters (fast path)
        self._prefixes = {s[:i] for s in self.stops for i in range(1, len(s))}
        self._first = {s[0] for s in self.stops}
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        if not self.stops:
            return text, False
        buf = self._pending + text
        cut = min((i for i in (buf.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self._pending = ""
            self.stopped = True
            return buf[:cut], True
        # Hold back the longest tail that is a prefix of some stop string.
        hold = 0
        for i in range(max(0, len(buf) - self._keep), len(buf)):
            if buf[i] in self._first and buf[i:] in self._prefixes:
                hold = len(buf) - i
                break
        self._pending = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold], False

    def flush(self) -> str:
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out


#: texts whose control-token check `LlamaSession.special_texts` remembers
_SPECIAL_TEXTS_KEPT = 2048


class LlamaSession:
    """The KV cache of one llama.cpp context (sequence 0) and the tokens it holds."""

    def __init__(self, model: Any, ctx: Any, vocab: Any, *, n_ctx: int, n_batch: int) -> None:
        self.model = model
        self.ctx = ctx
        self.vocab = vocab
        self.n_ctx = n_ctx
        self.n_batch = max(1, n_batch)
        #: tokens whose keys/values are in the KV cache, in position order
        self.tokens: list[int] = []
        self._pieces: dict[tuple[int, bool], bytes] = {}
        self._special_texts: dict[str, frozenset[str]] = {}
        self._one = (llama_cpp.llama_token * 1)()
        self._piece_buf = ctypes.create_string_buffer(256)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        #: llama_decode calls so far (a deterministic measure of decoding work: tests, bench)
        self.decode_calls = 0
        #: per-token "compute logits" flags for batches that need every position's logits
        self._all_logits: Any = None

    # ------------------------------------------------------------ vocabulary

    def tokenize(
        self, text: str, *, add_special: bool = False, parse_special: bool = False
    ) -> list[int]:
        """Text → token ids. `add_special` adds BOS/EOS as the model wants.

        `parse_special=True` turns control-token text such as `<|im_start|>` into its
        single id: only for text a template wrote. It is off by default, so text from a
        user or a file (which may well contain `<|im_start|>system`) stays text; added
        tokens such as Qwen3's `<think>` are matched either way, as in Hugging Face
        tokenizers. Chat prompts mix both: engine/chat/template.py."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(
            self.vocab, data, len(data), buf, capacity, add_special, parse_special
        )
        if n < 0:
            capacity = -n
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(
                self.vocab, data, len(data), buf, capacity, add_special, parse_special
            )
        if n < 0:
            raise GenerationError(
                "Could not tokenize the prompt", "the text may be too long for this model"
            )
        return list(buf[:n])

    def token_bytes(self, token: int, *, special: bool = True) -> bytes:
        """One token's piece as bytes (cached); `special=False` renders control tokens as b""."""
        key = (token, special)
        piece = self._pieces.get(key)
        if piece is None:
            n = llama_cpp.llama_token_to_piece(
                self.vocab, token, self._piece_buf, len(self._piece_buf), 0, special
            )
            if n < 0:
                big = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, big, len(big), 0, special)
                piece = big.raw[:n]
            else:
                piece = self._piece_buf.raw[:n]
            self._pieces[key] = piece
        return piece

    def detokenize(self, tokens: Sequence[int], *, special: bool = True) -> str:
        return b"".join(self.token_bytes(t, special=special) for t in tokens).decode(
            "utf-8", errors="replace"
        )

    def token_id(self, text: str) -> int | None:
        """The id of a token whose text is exactly `text` (a special token), else None."""
        ids = self.tokenize(text, parse_special=True)
        return ids[0] if len(ids) == 1 else None

    def is_special(self, token: int) -> bool:
        """True for the tokens only `parse_special=True` produces from text (control, unknown)."""
        special = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
        return bool(llama_cpp.llama_vocab_get_attr(self.vocab, token) & special)

    def special_texts(self, text: str) -> frozenset[str]:
        """The texts of the control tokens that `text` would turn into with parse_special.

        Remembered for recent texts: a chat asks this of every message each turn.
        """
        known = self._special_texts.get(text)
        if known is None:
            ids = {t for t in self.tokenize(text, parse_special=True) if self.is_special(t)}
            known = frozenset(self.detokenize([t]) for t in ids) - {""}
            if len(self._special_texts) >= _SPECIAL_TEXTS_KEPT:
                del self._special_texts[next(iter(self._special_texts))]  # the oldest
            self._special_texts[text] = known
        return known

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    @property
    def bos(self) -> int:
        return llama_cpp.llama_vocab_bos(self.vocab)

    @property
    def add_bos(self) -> bool:
        return bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))

    # ------------------------------------------------------------ KV cache

    def _memory(self) -> Any:
        return llama_cpp.llama_get_memory(self.ctx)

    def reset(self) -> None:
        """Forget everything in the KV cache."""
        llama_cpp.llama_memory_clear(self._memory(), True)
        self.tokens = []

    def truncate(self, n: int) -> int:
        """Keep only the first `n` evaluated tokens; returns how many are kept.

        Falls back to clearing everything when the memory cannot drop a tail
        (recurrent models)."""
        if n >= len(self.tokens):
            return len(self.tokens)
        if n <= 0 or not llama_cpp.llama_memory_seq_rm(self._memory(), 0, n, -1):
            self.reset()
            return 0
        del self.tokens[n:]
        return n

    @staticmethod
    def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
        n = min(len(a), len(b))
        i = 0
        while i < n and a[i] == b[i]:
            i += 1
        return i

    def _decode(self, tokens: Sequence[int], *, all_logits: bool = False) -> None:
        """One llama_decode of `tokens` after what the cache holds; logits for the last one,
        or for every position with `all_logits` (verifying a speculative draft)."""
        if len(tokens) == 1:
            self._one[0] = tokens[0]
            arr = self._one
        else:
            arr = (llama_cpp.llama_token * len(tokens))(*tokens)
        batch = llama_cpp.llama_batch_get_one(arr, len(tokens))
        if all_logits:  # positions and sequence stay implicit (after sequence 0's last)
            if self._all_logits is None or len(self._all_logits) < len(tokens):
                size = max(64, len(tokens))
                self._all_logits = (ctypes.c_int8 * size)(*([1] * size))
            batch.logits = self._all_logits
        self.decode_calls += 1
        rc = run_compute(llama_cpp.llama_decode, self.ctx, batch)  # one OpenMP team
        if rc != 0:
            # The cache may hold part of the batch now; start clean next time.
            self.reset()
            if rc == 1:
                raise GenerationError(
                    f"The context window ({self.n_ctx} tokens) is full",
                    "start a new chat or load the model with a larger context",
                )
            raise GenerationError(
                f"llama.cpp could not evaluate the prompt (llama_decode returned {rc})"
            )
        self.tokens.extend(tokens)

    def evaluate(
        self,
        tokens: Sequence[int],
        *,
        reuse: bool = True,
        cancel: CancelToken | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> EvalResult:
        """Make the KV cache hold exactly `tokens`, with logits ready for the last one.

        Only the suffix after the longest common prefix with what is already
        evaluated runs through llama_decode (in `n_batch` chunks, checking
        `cancel` between chunks; on cancel the cache stays consistent and
        `Cancelled` is raised). `reuse=False` evaluates everything.
        """
        if not tokens:
            raise GenerationError("Nothing to evaluate: the prompt is empty")
        if len(tokens) > self.n_ctx:
            raise GenerationError(
                f"The prompt has {len(tokens)} tokens, more than the context window ({self.n_ctx})",
                "shorten it or load the model with a larger context",
            )
        cancel = cancel or NEVER_CANCELLED
        started = time.perf_counter()
        keep = self.common_prefix(self.tokens, tokens) if reuse else 0
        if keep == len(tokens):
            keep -= 1  # the last token must run again to produce fresh logits
        keep = self.truncate(keep) if keep < len(self.tokens) else keep
        cached = keep
        todo = list(tokens[keep:])
        done = 0
        for start in range(0, len(todo), self.n_batch):
            if cancel.cancelled:
                raise Cancelled(cancel.reason or "Cancelled.")
            chunk = todo[start : start + self.n_batch]
            self._decode(chunk)
            done += len(chunk)
            if on_progress is not None and len(todo) > self.n_batch:
                on_progress(Progress(stage="prompt", done=done, total=len(todo)))
        return EvalResult(len(tokens), cached, len(todo), time.perf_counter() - started)

    def decode_next(self, token: int) -> None:
        """Append one generated token to the KV cache (logits become ready for sampling)."""
        self._decode((token,))

    def decode_all(self, tokens: Sequence[int]) -> None:
        """Append `tokens` in one batch with logits for every one of them: output `i`
        (`Sampler.sample(ctx, i)`) is the next-token distribution after `tokens[i]`."""
        self._decode(tokens, all_logits=True)

    # ------------------------------------------------------------ generation

    def generate(
        self,
        sampler: Sampler,
        *,
        max_tokens: int,
        cancel: CancelToken | None = None,
        stop_tokens: Callable[[int], bool] | None = None,
        speculator: Speculator | None = None,
    ) -> Iterator[int]:
        """Sample tokens after `evaluate()`; yields each before it is decoded.

        Stops (without yielding) at an end-of-generation token or a token
        `stop_tokens` accepts, after `max_tokens`, when the context is full, or
        when `cancel` fires (checked between tokens). The generator's
        `stop_reason` attribute is not available, so callers read
        `self.last_stop_reason` afterwards: "stop", "length" or "cancelled".
        A token yielded last is in the KV cache only if the caller asks for the
        next one, so breaking out early leaves the cache exactly as consumed.

        With a `speculator` (engine/runtime/speculative.py) drafted tokens are verified
        several per llama_decode; the tokens yielded, the stop reasons and the cache left
        behind are the same as without one.
        """
        if speculator is not None:
            yield from speculator.generate(
                self, sampler, max_tokens=max_tokens, cancel=cancel, stop_tokens=stop_tokens
            )
            return
        cancel = cancel or NEVER_CANCELLED
        self.last_stop_reason = "length"
        ctx, chain = self.ctx, sampler.handle
        sample = llama_cpp.llama_sampler_sample
        is_eog = llama_cpp.llama_vocab_is_eog
        vocab = self.vocab
        for _ in range(max_tokens):
            if cancel.cancelled:
                self.last_stop_reason = "cancelled"
                return
            token = sample(chain, ctx, -1)
            if is_eog(vocab, token) or (stop_tokens is not None and stop_tokens(token)):
                self.last_stop_reason = "stop"
                return
            yield token
            if len(self.tokens) >= self.n_ctx:
                self.last_stop_reason = "length"
                return
            self.decode_next(token)

    last_stop_reason: str = "stop"
