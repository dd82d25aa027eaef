"""Speculative decoding: guess the next tokens cheaply, let the model check them in one batch.

Why: decoding one token reads all the weights once; a batch of several tokens reads them
once too, so checking k guessed ("drafted") tokens costs much less than k decode steps.
Answers that repeat what they were given — "rename x to y in this function", "add type
hints", a refactor, a fix that returns the whole file — are mostly copies, and for those a
guess copied from the prompt is right most of the time (prompt-lookup decoding). A small
model with the same tokenizer guesses well on free text too (the draft-model variant,
engine/runtime/draft_model.py loads it).

How a step works (as llama.cpp's `common/speculative.cpp` + `common_sampler_sample_and_accept_n`):

1. the token just sampled (`pending`) is not in the KV cache yet; a drafter proposes
   d0..dk-1 that may follow it;
2. `[pending, d0, ..., dk-1]` runs through ONE llama_decode with logits for every position
   (`LlamaSession.decode_all`);
3. the real sampler chain samples at position 0; while the sample equals the draft token
   it is emitted and the next position is sampled; the first sample that differs is
   emitted too and becomes the next `pending`; when all k agree, the logits after dk-1
   give one more token for free;
4. the KV of the rejected draft tokens is removed (`LlamaSession.truncate`).

Every emitted token is a sample from the model's own distribution given the true prefix
(the draft only decides which logits were computed), and each sample call consumes the
sampler's random state exactly as plain decoding does: the output is the same as plain
decoding, token for token at temperature 0 (and with the same seed above it, as far as
batched and single-token logits agree), and distributed the same in every case.

A draft costs something (a batch of k+1 tokens is slower than one token, and a draft
model spends its own decode steps), so how long each draft is, and whether to draft at
all, is `DraftPolicy`'s decision (engine/runtime/draft_policy.py), from measured
acceptance and measured batch cost.

`Speculator` is what a caller keeps (one per loaded model: `speculator_for`) and hands to
`LlamaSession.generate(..., speculator=)`; chat (engine/chat/stream.py) does, and the code
completion engine can, with the same `PromptLookupDrafter`.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import llama_cpp

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import GenerationError
from hanlin.engine.runtime.draft_policy import DEFAULT_DRAFT_MAX, DraftPolicy, expected_gain

if TYPE_CHECKING:
    from hanlin.engine.runtime.loader import LoadedModel
    from hanlin.engine.runtime.session import LlamaSession, Sampler

__all__ = [
    "DEFAULT_DRAFT_MAX",
    "Draft",
    "DraftModelDrafter",
    "DraftPolicy",
    "Drafter",
    "LookupThenModelDrafter",
    "PromptLookupDrafter",
    "SpeculativeStats",
    "Speculator",
    "can_drop_a_tail",
    "expected_gain",
    "speculator_for",
]

#: n-gram lengths the prompt lookup matches, longest first
LOOKUP_NGRAM_MAX = 4
LOOKUP_NGRAM_MIN = 1


@dataclass
class SpeculativeStats:
    """What speculation did during one generation (or, summed, over many)."""

    #: draft tokens sent for verification
    drafted: int = 0
    #: of those, tokens the model sampled itself (emitted without a decode step of their own)
    accepted: int = 0
    #: verification batches (steps that carried a draft)
    drafts: int = 0
    #: llama_decode calls of the main model while generating
    decode_calls: int = 0
    #: tokens emitted
    tokens: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.drafted if self.drafted else None

    def add(self, other: SpeculativeStats) -> None:
        self.drafted += other.drafted
        self.accepted += other.accepted
        self.drafts += other.drafts
        self.decode_calls += other.decode_calls
        self.tokens += other.tokens


@dataclass(frozen=True, slots=True)
class Draft:
    """Tokens a drafter guesses follow the history, and which source guessed them."""

    tokens: list[int]
    #: the policy's bucket: "lookup:N" (matched an N-token n-gram) or "model"
    source: str


#: the policy's answer to "how many tokens may a draft from this source have?" (0 = none)
ChooseLength = Callable[[str], int]


class Drafter(Protocol):
    """Proposes tokens that may follow `history` (the prompt, then every emitted token)."""

    #: what the status line calls it ("prompt lookup", "draft model qwen3-0.6b-q4km")
    label: str

    def begin(self, prompt: Sequence[int]) -> None:
        """A generation starts after `prompt` (what the main model's cache holds)."""

    def propose(self, history: Sequence[int], limit: int, choose: ChooseLength) -> Draft | None:
        """At most `limit` tokens (and at most `choose(source)`); None when nothing fits."""

    def timing(self) -> tuple[str, int, float] | None:
        """(source, tokens, seconds) the last proposal spent drafting, when that costs time."""


# ---------------------------------------------------------------- prompt lookup


class PromptLookupDrafter:
    """Drafts by copying: finds the last n tokens earlier in the history, proposes what followed.

    The history is the whole prompt (system prompt, the conversation, pasted code) plus
    the answer so far, so an answer that repeats any of it — or repeats itself — is drafted.
    An index maps each n-gram (n = 1..4) to the position after its latest occurrence; it
    grows by a few dict writes per emitted token, so a lookup is O(1) however long the
    prompt is. The longest matching n-gram wins: a longer match is a better guess, and the
    policy learns how good each length is on its own.

    A copy goes on where the last draft ended: when the model accepted a whole draft and
    its next token is the copy's next token too, the following draft continues from the
    same place ("lookup:run", the surest source: a function being copied line by line)
    rather than from wherever the latest occurrence of the last n tokens happens to be.
    """

    label = "prompt lookup"

    def __init__(self, ngram_max: int = LOOKUP_NGRAM_MAX, ngram_min: int = LOOKUP_NGRAM_MIN):
        if not 1 <= ngram_min <= ngram_max:
            raise ValueError("need 1 <= ngram_min <= ngram_max")
        self.ngram_max = ngram_max
        self.ngram_min = ngram_min
        self._tokens: list[int] = []
        #: per n: n-gram -> index (in `_tokens`) of the token that followed its latest occurrence
        self._index: dict[int, dict[tuple[int, ...], int]] = {}
        self._indexed = 0
        #: where the copy continues if the last draft and the token after it are accepted
        self._run: int | None = None

    def begin(self, prompt: Sequence[int]) -> None:
        self._tokens = list(prompt)
        self._index = {n: {} for n in range(self.ngram_min, self.ngram_max + 1)}
        self._indexed = 0
        self._run = None
        self._extend_index()

    def _sync(self, history: Sequence[int]) -> None:
        have = len(self._tokens)
        if len(history) < have or (have and history[have - 1] != self._tokens[-1]):
            self.begin(history)  # not the history this index was built for
            return
        if len(history) > have:
            self._tokens.extend(history[have:])
            self._extend_index()

    def _extend_index(self) -> None:
        tokens = self._tokens
        # every n-gram ending right before position j maps to j, its continuation; the
        # latest occurrence wins (the current tail is indexed once a token follows it)
        for j in range(max(self._indexed, 1), len(tokens)):
            for n, index in self._index.items():
                if j >= n:
                    index[tuple(tokens[j - n : j])] = j
        self._indexed = max(self._indexed, len(tokens))

    def propose(self, history: Sequence[int], limit: int, choose: ChooseLength) -> Draft | None:
        if limit <= 0:
            return None
        self._sync(history)
        tokens = self._tokens
        end = len(tokens)
        j, source = self._continued_run(end), "lookup:run"
        if j is None:
            for n in range(min(self.ngram_max, end - 1), self.ngram_min - 1, -1):
                j = self._index[n].get(tuple(tokens[end - n :]))
                if j is not None:
                    source = f"lookup:{n}"
                    break
        self._run = None
        if j is None:
            return None
        k = min(limit, choose(source), end - j)
        if k <= 0:
            return None
        self._run = j + k + 1
        return Draft(tokens[j : j + k], source)

    def _continued_run(self, end: int) -> int | None:
        """The copy position if the history still follows the last draft's copy."""
        j = self._run
        if j is None or j >= end - 1:
            return None
        tokens = self._tokens
        n = min(self.ngram_max, j)
        return j if tokens[j - n : j] == tokens[end - n : end] else None

    def timing(self) -> tuple[str, int, float] | None:
        return None  # microseconds: not worth counting against a draft


# ---------------------------------------------------------------- draft model


class DraftModelDrafter:
    """Drafts with a small model of the same tokenizer, greedily, k tokens at a time.

    The draft model keeps its own KV cache of the history (only what is new since its
    last draft is evaluated: the accepted tokens and the model's correction). Load it and
    check its tokenizer with engine/runtime/draft_model.py.
    """

    def __init__(self, draft: LoadedModel, *, main_vocab_size: int) -> None:
        from hanlin.engine.runtime.session import build_sampler

        self.model = draft
        self.label = f"draft model {draft.model_id}"
        self.main_vocab_size = main_vocab_size
        self._greedy = build_sampler(draft.session.vocab, temperature=0.0)
        self._timing: tuple[str, int, float] | None = None

    def begin(self, prompt: Sequence[int]) -> None:
        self._timing = None  # the draft model catches up lazily, at its first draft

    def propose(self, history: Sequence[int], limit: int, choose: ChooseLength) -> Draft | None:
        self._timing = None
        k = min(limit, choose("model"))
        if k <= 0:
            return None
        model = self.model
        with model.lock:
            if model.closed:
                return None
            session = model.session
            try:
                session.evaluate(history)
            except GenerationError:  # its context is smaller than the history: no draft
                session.reset()
                return None
            started = time.perf_counter()
            out: list[int] = []
            sample = self._greedy.sample
            for i in range(k):
                token = sample(session.ctx, -1)
                if token >= self.main_vocab_size:  # a padding id the main model lacks
                    break
                out.append(token)
                if i == k - 1 or session.is_eog(token):
                    break
                try:
                    session.decode_next(token)
                except GenerationError:
                    break
            self._timing = ("model", len(out), time.perf_counter() - started)
        return Draft(out, "model") if out else None

    def timing(self) -> tuple[str, int, float] | None:
        return self._timing


class LookupThenModelDrafter:
    """Prompt lookup where the policy trusts it (free), the draft model otherwise."""

    def __init__(self, lookup: PromptLookupDrafter, model: DraftModelDrafter) -> None:
        self.lookup = lookup
        self.model = model
        self.label = f"{model.label} + {lookup.label}"
        self._last: Drafter = lookup

    def begin(self, prompt: Sequence[int]) -> None:
        self.lookup.begin(prompt)
        self.model.begin(prompt)

    def propose(self, history: Sequence[int], limit: int, choose: ChooseLength) -> Draft | None:
        draft = self.lookup.propose(history, limit, choose)
        self._last = self.lookup
        if draft is None:
            draft = self.model.propose(history, limit, choose)
            self._last = self.model
        return draft

    def timing(self) -> tuple[str, int, float] | None:
        return self._last.timing()


# ---------------------------------------------------------------- generation


class Speculator:
    """A drafter and its policy for one model: generates like `LlamaSession.generate`.

    Keep one per loaded model (`speculator_for`): the policy's measurements carry over
    from one answer to the next. `last` holds the statistics of the latest generation,
    `totals` their sum.
    """

    def __init__(
        self,
        drafter: Drafter,
        *,
        policy: DraftPolicy | None = None,
        n_max: int = DEFAULT_DRAFT_MAX,
        backend: str = "cpu",
    ) -> None:
        self.drafter = drafter
        self.policy = policy or DraftPolicy(n_max=n_max, backend=backend)
        self.last = SpeculativeStats()
        self.totals = SpeculativeStats()

    @property
    def label(self) -> str:
        return self.drafter.label

    def generate(
        self,
        session: LlamaSession,
        sampler: Sampler,
        *,
        max_tokens: int,
        cancel: CancelToken | None = None,
        stop_tokens: Callable[[int], bool] | None = None,
    ) -> Iterator[int]:
        """`LlamaSession.generate` with drafts: same tokens, same `last_stop_reason`.

        On return the cache holds the prompt and the tokens yielded (the last one may be
        missing, as in plain decoding); drafted tokens nobody yielded are removed, also
        when the caller stops early (a stop string inside an accepted draft).
        """
        stats = SpeculativeStats()
        self.last = stats
        calls_before = session.decode_calls
        try:
            yield from self._run(session, sampler, stats, max_tokens, cancel, stop_tokens)
        finally:
            stats.decode_calls = session.decode_calls - calls_before
            self.totals.add(stats)

    def _run(
        self,
        session: LlamaSession,
        sampler: Sampler,
        stats: SpeculativeStats,
        max_tokens: int,
        cancel: CancelToken | None,
        stop_tokens: Callable[[int], bool] | None,
    ) -> Iterator[int]:
        cancel = cancel or NEVER_CANCELLED
        session.last_stop_reason = "length"
        policy, drafter = self.policy, self.drafter
        ctx, chain = session.ctx, sampler.handle
        sample = llama_cpp.llama_sampler_sample
        is_eog = llama_cpp.llama_vocab_is_eog
        vocab, n_ctx = session.vocab, session.n_ctx
        clock = time.perf_counter
        #: the prompt, then every token yielded: what the drafter reads
        history = list(session.tokens)
        drafter.begin(history)
        emitted = 0

        def stops(token: int) -> bool:
            return bool(is_eog(vocab, token)) or (stop_tokens is not None and stop_tokens(token))

        try:
            if max_tokens <= 0:
                return
            if cancel.cancelled:
                session.last_stop_reason = "cancelled"
                return
            token = sample(chain, ctx, -1)
            while True:
                # `token` was sampled and is not in the cache; the cache holds `history`
                if stops(token):
                    session.last_stop_reason = "stop"
                    return
                yield token
                emitted += 1
                stats.tokens += 1
                history.append(token)
                if emitted >= max_tokens:
                    return
                if len(session.tokens) >= n_ctx:
                    return
                limit = min(policy.n_max, max_tokens - emitted - 1, n_ctx - len(session.tokens) - 1)
                draft = drafter.propose(history, limit, policy.length) if limit > 0 else None
                timing = drafter.timing()
                if timing is not None:
                    policy.draft_timed(*timing)
                if draft is None or not draft.tokens:
                    if cancel.cancelled:
                        session.last_stop_reason = "cancelled"
                        return
                    started = clock()
                    session.decode_next(token)
                    policy.decode_timed(1, clock() - started)
                    token = sample(chain, ctx, -1)
                    continue

                guess = draft.tokens[:limit]
                k = len(guess)
                started = clock()
                session.decode_all([token, *guess])
                policy.decode_timed(k + 1, clock() - started)
                stats.drafts += 1
                stats.drafted += k
                base = len(session.tokens) - k  # cache index of guess[0]
                accepted = 0
                verdict = False  # the draft was judged to its end (a mismatch or all agreed)
                try:
                    for i in range(k + 1):
                        if cancel.cancelled:
                            session.last_stop_reason = "cancelled"
                            return
                        token = sample(chain, ctx, i)
                        if i == k or token != guess[i]:
                            verdict = True
                            break
                        accepted += 1
                        stats.accepted += 1
                        if stops(token):
                            session.last_stop_reason = "stop"
                            return
                        yield token
                        emitted += 1
                        stats.tokens += 1
                        history.append(token)
                        if emitted >= max_tokens:
                            return
                finally:
                    if verdict:
                        policy.record(draft.source, k, accepted)
                # the cache holds guess[:accepted] and then rejected guesses: drop those
                if session.truncate(base + accepted) != base + accepted:
                    raise GenerationError(
                        "This model's memory cannot drop rejected draft tokens",
                        "turn speculative decoding off for it (`speculative = false`)",
                    )
        finally:
            if len(session.tokens) > len(history):
                session.truncate(len(history))


# ---------------------------------------------------------------- per model

#: per main model: (the draft model it was built with, or None; the speculator)
_speculators: weakref.WeakKeyDictionary[LoadedModel, tuple[LoadedModel | None, Speculator]] = (
    weakref.WeakKeyDictionary()
)
_speculators_lock = threading.Lock()


def can_drop_a_tail(model: LoadedModel) -> bool:
    """Whether the model's memory can forget rejected draft tokens (`truncate`): not so for
    recurrent and hybrid models (Mamba-style state: no per-position cells), which llama.cpp
    speculates on only with state checkpoints. They decode token by token."""
    handle = model.model_handle
    return not (
        llama_cpp.llama_model_is_recurrent(handle) or llama_cpp.llama_model_is_hybrid(handle)
    )


def speculator_for(
    model: LoadedModel, *, enabled: bool | None = None, draft: LoadedModel | None = None
) -> Speculator | None:
    """The `Speculator` a model generates with (kept per model and draft), or None when off.

    `enabled` is the per-model `speculative` setting: False turns speculation off; None
    (the default) and True use prompt lookup — the policy drafts only where it pays — and
    `draft`, when given, a draft model beside it (checked with
    engine/runtime/draft_model.check_draft_compatible before it gets here).
    """
    if enabled is False or not can_drop_a_tail(model):
        return None
    if draft is model:  # it would draft into the very cache it is verified against
        draft = None
    with _speculators_lock:
        known = _speculators.get(model)
        if known is not None and known[0] is draft:
            return known[1]
        lookup = PromptLookupDrafter()
        drafter: Drafter = lookup
        if draft is not None:
            drafter = LookupThenModelDrafter(
                lookup, DraftModelDrafter(draft, main_vocab_size=model.session.n_vocab)
            )
        speculator = Speculator(drafter, backend=model.backend)
        _speculators[model] = (draft, speculator)
        return speculator
