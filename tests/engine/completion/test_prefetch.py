"""Prefetch after a shown completion: from the cached small window, and the idle worker's
keyed join that lets the request it computes wait for it instead of cancelling it.

Real SmolLM2 on 110 real lines of a standard-library file; the prompt speed is fixed so the
budget decisions (full prompt or small window) are deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hanlin.engine.completion.engine import CompletionEngine, CompletionRequest
from hanlin.engine.completion.idle import IdleToken, IdleWorker
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model
from tests.support.completion_budget import CancelAfter, FixedSpeed, big_file

PREFIX = big_file()[0]


@pytest.fixture(scope="module")
def smol() -> Iterator[LoadedModel]:
    from tests.conftest import smollm2_gguf

    model = load_model(smollm2_gguf(), options=LoadOptions(n_ctx=2048, threads=1))
    yield model
    model.close()


def _engine(model: LoadedModel) -> CompletionEngine:
    with model.lock:
        model.session.reset()
    engine = CompletionEngine(model)
    engine.speed = FixedSpeed()
    return engine


def _request(prefix: str = PREFIX, budget_ms: int = 500) -> CompletionRequest:
    return CompletionRequest(prefix=prefix, suffix="\n", time_budget_ms=budget_ms, max_tokens=16)


@pytest.mark.slow
def test_prefetch_after_a_small_window_answer_reuses_the_cached_window(
    smol: LoadedModel,
) -> None:
    engine = _engine(smol)
    full = engine._build_prompt(_request(), multiline=False).tokens
    # a warm-up interrupted after a few chunks: part of the full prompt is in the KV cache
    partial = engine.warm(_request(), cancel=CancelAfter(4))
    assert 0 < partial < len(full)
    held = list(smol.session.tokens)

    shown = engine.complete(_request())
    assert shown.small_window and shown.text.strip(), shown
    window_tokens = shown.tokens_evaluated  # evaluated from scratch: nothing of it was cached

    pre = engine.prefetch(_request(), shown.text)
    assert pre is not None and pre.prefetched and pre.small_window, pre
    # the window (and the generated tokens) were still cached: only the accepted text's
    # last tokens ran again, not the ~900-token full prompt nor the window
    shown_tokens = len(smol.session.tokenize(shown.text, add_special=False))
    assert pre.tokens_cached >= window_tokens - 4, (pre, window_tokens)
    assert pre.tokens_evaluated <= shown_tokens + 4, (pre, shown_tokens)
    assert pre.prompt_tokens > 500 and pre.tokens_evaluated < pre.prompt_tokens // 10
    # the full prompt's progress is still parked, not lost
    assert engine._parked is not None and engine._parked.tokens == held

    # the user accepts: answered from the prefetch, without the model
    after = engine.complete(_request(PREFIX + shown.text))
    assert after.from_cache and after.prefetched and after.text == pre.text
    assert after.tokens_evaluated == 0 and engine.totals.prefetch_hits == 1

    # idle time: the warm-up puts the parked progress back and goes on from it
    rest = engine.warm(_request(PREFIX + shown.text))
    assert engine._parked is None
    full_after = engine._build_prompt(_request(PREFIX + shown.text), multiline=False).tokens
    assert list(smol.session.tokens) == list(full_after)
    assert rest <= len(full_after) - len(held) + 2


@pytest.mark.slow
def test_prefetch_uses_the_full_prompt_once_it_is_cached(smol: LoadedModel) -> None:
    engine = _engine(smol)
    shown = engine.complete(_request())
    assert shown.small_window and shown.text.strip()
    engine.warm(_request())  # the full prompt in idle time: it is all cached now
    pre = engine.prefetch(_request(), shown.text)
    assert pre is not None and pre.prefetched
    # the full prompt has less left to evaluate than the window (which the warm-up dropped)
    assert not pre.small_window, pre
    assert pre.tokens_evaluated <= len(smol.session.tokenize(shown.text, add_special=False)) + 4
    assert engine.request_key(_request(PREFIX + shown.text)) == engine.request_key(
        engine.after_accept(_request(), shown.text)
    )


@pytest.mark.slow
def test_a_prefetch_tells_when_its_prompt_is_done_and_stops_when_hurried(
    smol: LoadedModel,
) -> None:
    engine = _engine(smol)
    request = _request(budget_ms=600_000)
    shown = engine.complete(request)
    assert shown.text.strip()
    token = IdleToken()
    token.finish_by = time.perf_counter()  # a request joined it and wants it now
    before = time.perf_counter()
    pre = engine.prefetch(request, shown.text, cancel=token)
    # it said when its prompt was evaluated (for a request deciding whether to wait)
    assert token.prompt_eta is not None and before <= token.prompt_eta <= time.perf_counter()
    # ... and wrote one token at most before answering
    assert pre is not None and pre.generated_tokens <= 1, pre
    assert pre.stop_reason in ("time", "eol", "stop"), pre


# -- the idle worker's keyed join (no model) ---------------------------------------------


def _gated(
    started: threading.Event,
    gate: threading.Event,
    out: list[str],
    *,
    eta_s: float | None = 0.0,
) -> Callable[[CancelToken], None]:
    """A task that says its prompt is evaluated `eta_s` from now, then waits for the gate
    (or its token's `finish_by`, answering "hurried", or a cancel)."""

    def task(token: CancelToken) -> None:
        assert isinstance(token, IdleToken)
        if eta_s is not None:
            token.prompt_eta = time.perf_counter() + eta_s
        started.set()
        while not gate.wait(0.005):
            if token.cancelled:
                out.append("cancelled")
                return
            if token.finish_by is not None and time.perf_counter() >= token.finish_by:
                out.append("hurried")
                return
        out.append("done")

    return task


def test_a_request_for_the_running_prefetch_waits_for_it() -> None:
    worker = IdleWorker()
    started, gate, out = threading.Event(), threading.Event(), []
    followed: list[str] = []
    worker.submit(
        "prefetch",
        _gated(started, gate, out),
        key="after",
        then=[("warm", lambda token: followed.append("warm"))],
    )
    assert started.wait(5) and worker.running_key == "after"
    # the same key again: already being computed, nothing is replaced or cancelled
    assert worker.submit("prefetch", lambda token: out.append("second"), key="after") is False
    threading.Timer(0.2, gate.set).start()
    t0 = time.perf_counter()
    assert worker.interrupt(unless="after", wait_s=5.0) is True
    waited = time.perf_counter() - t0
    assert 0.15 <= waited < 4.0
    assert out == ["done"] and worker.joined == 1 and worker.given_up == 0
    assert worker.wait_idle(5)
    # the follow-up was dropped: the real request needs the model now
    assert followed == [] and worker.cancelled == {}
    worker.close()


def test_a_joined_prefetch_answers_by_the_end_of_the_wait() -> None:
    worker = IdleWorker()
    started, gate, out = threading.Event(), threading.Event(), []
    worker.submit("prefetch", _gated(started, gate, out), key="after")
    assert started.wait(5)
    t0 = time.perf_counter()
    # the gate never opens: the task is told to finish by the end of the wait, and does
    assert worker.interrupt(unless="after", wait_s=0.2) is True
    assert 0.19 <= time.perf_counter() - t0 < 0.2 + 1.0
    assert out == ["hurried"] and worker.joined == 1
    worker.close()


def test_other_requests_and_far_prefetches_are_not_waited_for() -> None:
    worker = IdleWorker()
    started, gate, out = threading.Event(), threading.Event(), []
    worker.submit("prefetch", _gated(started, gate, out), key="after")
    assert started.wait(5)
    t0 = time.perf_counter()
    assert worker.interrupt(unless="another request", wait_s=5.0) is False
    assert worker.wait_idle(5) and time.perf_counter() - t0 < 1.0
    assert out == ["cancelled"] and worker.cancelled == {"prefetch": 1}

    # its prompt needs longer than the wait, or it cannot tell yet: cancelled at once
    for eta_s in (10.0, None):
        started.clear()
        worker.submit("prefetch", _gated(started, gate, out, eta_s=eta_s), key="after")
        assert started.wait(5)
        t0 = time.perf_counter()
        assert worker.interrupt(unless="after", wait_s=5.0) is False
        assert worker.wait_idle(5) and time.perf_counter() - t0 < 1.0
        assert out[-1] == "cancelled"
    assert worker.given_up == 2 and worker.joined == 0

    # the waiting request's own cancel ends the wait early
    started.clear()
    worker.submit("prefetch", _gated(started, gate, out), key="after")
    assert started.wait(5)
    mine = CancelToken()
    threading.Timer(0.05, mine.cancel).start()
    t0 = time.perf_counter()
    assert worker.interrupt(unless="after", wait_s=5.0, cancel=mine) is False
    assert time.perf_counter() - t0 < 1.0
    worker.close()


def test_follow_up_tasks_run_after_an_uninterrupted_one() -> None:
    worker = IdleWorker()
    order: list[str] = []
    worker.submit(
        "prefetch",
        lambda token: order.append("prefetch"),
        key="k",
        then=[("warm", lambda token: order.append("warm"))],
    )
    assert worker.wait_idle(5)
    assert order == ["prefetch", "warm"] and worker.done == {"prefetch": 1, "warm": 1}
    worker.close()
