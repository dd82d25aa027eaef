"""How long a speculative draft should be — or whether to draft at all — on this machine.

Why a module of its own: drafting is only worth it while it pays, and what pays depends
on two things that change under our feet. How often drafted tokens are accepted depends on
the answer (a copied function: nearly always; the edit in its middle, or free prose: rarely)
and on where the draft came from (a 4-token n-gram match is a better guess than a 1-token
one). What verifying costs depends on the machine: on a GPU a batch of 17 tokens costs
about what one token does, on a CPU each extra token in a batch costs about half a
single-token step (SmolLM2-135M, 2 cores), and on a loaded machine more.

`DraftPolicy` measures both as it goes — acceptance per draft source as a decaying
average, the batch cost from the main model's own decode calls, a draft model's
own cost per drafted token — and picks the draft length with the best expected tokens per
unit of decode time (`expected_gain`). When no length beats plain decoding by `_MARGIN`,
the source drafts nothing, except for a short probe now and then (backing off while the
probes fail), so drafting returns when the answer starts copying again. This is what keeps
speculation "on by default" without ever making decoding slower for long.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

__all__ = ["DEFAULT_DRAFT_MAX", "DraftPolicy", "expected_gain", "fit_batch_cost"]

#: longest draft verified in one batch (llama.cpp's default `--draft-max` is 16 too)
DEFAULT_DRAFT_MAX = 16

#: prior chance that a drafted token is accepted, per source, before anything was measured
#: (prompt lookup in SmolLM2's answers to edit and free prompts, greedy: 1-token matches
#: 0.15-0.3 accepted, 2-token 0.3, 3-token 0.75-0.83, 4-token 0.91-0.94; a little lower here)
_PRIOR_P = {
    "lookup:1": 0.25,
    "lookup:2": 0.35,
    "lookup:3": 0.6,
    "lookup:4": 0.8,
    "lookup:run": 0.9,  # the copy the last draft came from goes on
    "model": 0.6,
}
#: how many drafted positions the prior is worth
_PRIOR_WEIGHT = 4.0
#: cost of one more token in a verification batch, in single-token decode steps, before
#: measuring: a CPU is compute-bound on batches (SmolLM2, 2 EPYC cores: 0.38-0.60), a GPU is not
_PRIOR_ALPHA = {"cpu": 0.5}
_PRIOR_ALPHA_GPU = 0.1
#: a draft must promise at least this speed-up, or it is not made
_MARGIN = 1.03
#: while a source does not pay, it is tried again (a short draft) after this many chances,
#: doubling up to _PROBE_MAX while the probes fail
_PROBE_START = 8
_PROBE_MAX = 256
_PROBE_LENGTH = 1
#: after this many verification batches in a row, one plain step (it measures what a single
#: token costs, which `alpha` and a draft model's cost are relative to; a draft model that
#: always has a guess would otherwise never leave a plain step to measure)
_CALIBRATE_EVERY = 32
_CALIBRATE_FIRST = 4
#: timings kept: the single-step time and each batch size's time are medians of the latest
#: ones (a call that another process preempted must not swing them, as it would a moving
#: average)
_TIMINGS_KEPT = 31
#: how strongly the batch-cost fit holds to its prior, in timed batches: the slope to the
#: backend's prior alpha, the fixed part to 0. With batches of one size only, the two
#: cannot be told apart from the data, and the prior decides: a CPU's batch of 2 costs
#: about 2.1 steps (SmolLM2, 2 EPYC cores) — mostly a fixed cost of leaving the
#: single-token path, not 1.1 steps per token, which would forbid every long draft.
_FIT_PRIOR_SLOPE = 4.0
_FIT_PRIOR_FIXED = 1.0


@dataclass
class _SourceState:
    accepted: float
    tried: float
    #: drafting cost per drafted token, in single-token decode steps (a draft model's steps)
    beta: float = 0.0
    best_k: int = -1  # -1: recompute
    gain: float = 0.0
    skipped: int = 0
    interval: int = _PROBE_START
    probing: bool = False


def expected_gain(p: float, k: int, cost: float, overhead: float = 0.0) -> float:
    """Tokens per decode-step-equivalent of a k-token draft whose tokens are each accepted
    with probability p (in a row), when a batch costs `overhead` steps more than one token
    and each drafted token `cost` steps more."""
    accepted, run = 0.0, 1.0
    for _ in range(k):
        run *= p
        accepted += run
    return (1.0 + accepted) / (1.0 + overhead + cost * k)


def fit_batch_cost(
    points: dict[int, tuple[float, int]], prior_slope: float
) -> tuple[float, float]:
    """(fixed, per-token) extra cost of a batch, in single-token steps, from
    {batch size n: (extra steps, how many timings)}: a least-squares line over the sizes
    seen, held to `prior_slope` and a fixed part of 0 by `_FIT_PRIOR_*`; both >= 0."""
    sw = sx = sy = sxx = sxy = 0.0
    for n, (y, w) in points.items():
        x = n - 1.0
        sw += w
        sx += w * x
        sy += w * y
        sxx += w * x * x
        sxy += w * x * y
    a11, a12, b1 = sw + _FIT_PRIOR_FIXED, sx, sy
    a22, b2 = sxx + _FIT_PRIOR_SLOPE, sxy + _FIT_PRIOR_SLOPE * prior_slope
    det = a11 * a22 - a12 * a12
    fixed = (b1 * a22 - a12 * b2) / det
    if fixed < 0.0:
        fixed = 0.0
    slope = max(0.0, (b2 - a12 * fixed) / a22)
    return fixed, slope


class DraftPolicy:
    """How long the next draft should be, from measured acceptance and measured batch cost.

    Per source, acceptance is the fraction of drafted positions accepted (a decaying
    average, so it follows the answer: a copy goes well, the edit in the middle does not).
    The cost of verifying is measured from the main model's own decode calls, as a line:
    a batch of k+1 tokens costs `1 + overhead + alpha * k` single-token steps (on a CPU
    the first extra token costs most, as llama.cpp leaves its single-token path; each one
    after that less). The chosen length
    maximises `expected_gain`; when even the best length does not reach `_MARGIN`, the
    source drafts nothing (except for an occasional short probe). Not thread-safe: one
    generation at a time, as the model lock guarantees.
    """

    def __init__(
        self,
        *,
        n_max: int = DEFAULT_DRAFT_MAX,
        backend: str = "cpu",
        decay: float = 0.9,
        alpha: float | None = None,
    ) -> None:
        """`alpha` fixes the batch cost instead of measuring it (tests: decisions that do
        not depend on how busy the machine is)."""
        self.n_max = max(1, n_max)
        self.decay = decay
        self.measure = alpha is None
        self.alpha = _PRIOR_ALPHA.get(backend, _PRIOR_ALPHA_GPU) if alpha is None else alpha
        self._prior_alpha = self.alpha
        #: the fixed extra cost of any batch over a single-token step (steps)
        self.overhead = 0.0
        self._t1: float | None = None  # seconds of a single-token decode (median of recent)
        self._singles: deque[float] = deque(maxlen=_TIMINGS_KEPT)
        self._batches: deque[tuple[int, float]] = deque(maxlen=_TIMINGS_KEPT)
        self._batches_since_single = 0
        self._sources: dict[str, _SourceState] = {}

    def _state(self, source: str) -> _SourceState:
        st = self._sources.get(source)
        if st is None:
            p = _PRIOR_P.get(source, 0.5)
            st = _SourceState(accepted=p * _PRIOR_WEIGHT, tried=_PRIOR_WEIGHT)
            self._sources[source] = st
        return st

    def acceptance(self, source: str) -> float:
        st = self._state(source)
        return st.accepted / st.tried if st.tried else 0.0

    def _best(self, st: _SourceState) -> tuple[int, float]:
        if st.best_k < 0:
            p = min(st.accepted / st.tried if st.tried else 0.0, 0.999)
            cost = self.alpha + st.beta
            st.best_k, st.gain = max(
                ((k, expected_gain(p, k, cost, self.overhead)) for k in range(1, self.n_max + 1)),
                key=lambda kg: kg[1],
            )
        return st.best_k, st.gain

    def length(self, source: str) -> int:
        """How many tokens a draft from `source` should have now (0: do not draft)."""
        since = self._batches_since_single
        if self.measure and (
            since >= _CALIBRATE_EVERY or (self._t1 is None and since >= _CALIBRATE_FIRST)
        ):
            return 0  # a plain step, timed
        st = self._state(source)
        k, gain = self._best(st)
        if gain >= _MARGIN:
            st.skipped = 0
            return k
        st.skipped += 1
        if st.skipped >= st.interval:
            st.skipped = 0
            st.probing = True
            return min(_PROBE_LENGTH, self.n_max)
        return 0

    def record(self, source: str, drafted: int, accepted: int) -> None:
        """A draft of `drafted` tokens was verified and its first `accepted` agreed."""
        st = self._state(source)
        rejected = 1 if accepted < drafted else 0
        st.accepted = st.accepted * self.decay + accepted
        st.tried = st.tried * self.decay + accepted + rejected
        st.best_k = -1
        if st.probing:
            st.probing = False
            st.interval = _PROBE_START if accepted else min(st.interval * 2, _PROBE_MAX)

    def decode_timed(self, n_tokens: int, seconds: float) -> None:
        """A main-model decode of `n_tokens` took `seconds`: refine the batch cost."""
        if seconds <= 0 or not self.measure:
            return
        if n_tokens == 1:
            self._singles.append(seconds)
            self._t1 = statistics.median(self._singles)
            self._batches_since_single = 0
            return
        self._batches_since_single += 1
        self._batches.append((n_tokens, seconds))
        if self._t1 is None or len(self._batches) < 3:
            return
        by_size: dict[int, list[float]] = {}
        for n, secs in self._batches:
            by_size.setdefault(n, []).append(secs)
        points = {
            n: (min(max(statistics.median(xs) / self._t1 - 1.0, 0.0), 2.0 * (n - 1)), len(xs))
            for n, xs in by_size.items()
        }
        overhead, alpha = fit_batch_cost(points, self._prior_alpha)
        if abs(alpha - self.alpha) > 0.01 or abs(overhead - self.overhead) > 0.01:
            self.alpha, self.overhead = alpha, overhead
            for st in self._sources.values():
                st.best_k = -1

    def draft_timed(self, source: str, n_tokens: int, seconds: float) -> None:
        """Drafting `n_tokens` from `source` took `seconds` (a draft model's own steps)."""
        if n_tokens <= 0 or self._t1 is None or not self.measure:
            return
        st = self._state(source)
        sample = min(seconds / n_tokens / self._t1, 4.0)
        st.beta = 0.8 * st.beta + 0.2 * sample if st.beta else sample
        st.best_k = -1
