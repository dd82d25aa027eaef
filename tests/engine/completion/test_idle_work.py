"""Work done while the user reads: prefetch after a shown completion, drafts from context,
and the idle worker that runs it and gets out of the way of real requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hanlin.engine.completion.engine import CompletionEngine, CompletionRequest
from hanlin.engine.completion.idle import IdleWorker
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model
from tests.support.completion_budget import CancelAfter

# Repetitive code: what the user types next is mostly in the document already.
REPETITIVE = "".join(
    f"    def get_{name}(self):\n        return self._{name}\n\n"
    for name in ("width", "height", "depth", "colour", "weight", "price", "label")
)
PREFIX = "class Box:\n" + REPETITIVE + "    def get_"


@pytest.fixture(scope="module")
def smol() -> Iterator[LoadedModel]:
    from tests.conftest import smollm2_gguf

    model = load_model(smollm2_gguf(), options=LoadOptions(n_ctx=2048, threads=1))
    yield model
    model.close()


def _request(prefix: str = PREFIX, **kwargs: object) -> CompletionRequest:
    kwargs.setdefault("time_budget_ms", 600_000)
    kwargs.setdefault("max_tokens", 24)
    return CompletionRequest(prefix=prefix, suffix="\n", **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_prefetch_answers_the_request_after_accepting(smol: LoadedModel) -> None:
    engine = CompletionEngine(smol)
    shown = engine.complete(_request())
    assert shown.text.strip() and not shown.prefetched
    pre = engine.prefetch(_request(), shown.text)
    assert pre is not None and pre.prefetched
    assert engine.totals.prefetches == 1 and engine.totals.requests == 1
    # the user accepts: the next request is answered without running the model
    after = engine.complete(_request(PREFIX + shown.text))
    assert after.from_cache and after.prefetched
    assert after.text == pre.text
    assert after.tokens_evaluated == 0 and after.generated_tokens == 0
    assert engine.totals.prefetch_hits == 1
    assert engine.totals.prefetch_hit_rate == 1.0
    # a second hit on the same entry is an ordinary cache hit, not another prefetch hit
    engine.complete(_request(PREFIX + shown.text))
    assert engine.totals.prefetch_hits == 1
    assert engine.stats_dict()["prefetch_hit_rate"] == 1.0
    # nothing to prefetch again: it is cached
    assert engine.prefetch(_request(), shown.text) is None


@pytest.mark.slow
def test_prefetch_stops_when_a_real_request_comes(smol: LoadedModel) -> None:
    engine = CompletionEngine(smol)
    token = CancelToken()
    token.cancel("a keystroke")
    assert engine.prefetch(_request(), "width(self):", cancel=token) is None
    assert engine.totals.prefetches == 0

    # interrupted mid-way: no result, and not counted as a cancelled user request
    midway = CancelAfter(4)
    assert engine.prefetch(_request(), "width(self):", cancel=midway) is None
    assert midway.checks >= 4
    assert engine.totals.prefetches == 0 and engine.totals.cancelled == 0


@pytest.mark.slow
def test_drafts_from_the_document_are_accepted_and_change_nothing(smol: LoadedModel) -> None:
    # a new line after eight similar ones: the model copies, prompt lookup drafts it
    calls_so_far = "".join(
        f"print(compute_total(order_{i}, tax_rate, discount))\n" for i in range(8)
    )
    request = _request(calls_so_far, multiline=True, max_tokens=32)
    with smol.lock:
        smol.session.reset()
    plain = CompletionEngine(smol, response_cache=False, drafts=False)
    calls = smol.session.decode_calls
    base = plain.complete(request)
    plain_calls = smol.session.decode_calls - calls
    with smol.lock:
        smol.session.reset()
    drafted = CompletionEngine(smol, response_cache=False)
    calls = smol.session.decode_calls
    fast = drafted.complete(request)
    spec_calls = smol.session.decode_calls - calls
    assert fast.raw_text == base.raw_text
    assert fast.drafted_tokens > 0 and fast.accepted_tokens > 0
    totals = drafted.stats_dict()
    assert totals["draft_acceptance_rate"] == round(fast.accepted_tokens / fast.drafted_tokens, 4)
    assert fast.generated_tokens >= 8, fast
    # the same tokens in fewer llama_decode calls
    assert spec_calls < plain_calls
    assert plain.stats_dict()["drafted_tokens"] == 0


def test_idle_worker_runs_the_latest_task_and_interrupt_cancels_it() -> None:
    worker = IdleWorker()
    started, release = threading.Event(), threading.Event()
    seen: list[str] = []

    def long_task(token: CancelToken) -> None:
        started.set()
        while not token.cancelled:
            release.wait(0.01)
        seen.append(f"cancelled: {token.reason}")

    worker.submit("warm", long_task)
    assert started.wait(5)
    worker.interrupt("a completion request")
    assert worker.wait_idle(5)
    assert seen == ["cancelled: a completion request"]
    assert worker.cancelled == {"warm": 1}
    # queued tasks are replaced by newer ones; only the newest runs
    gate = threading.Event()
    worker.submit("block", lambda token: gate.wait(5))
    worker.submit("a", lambda token: seen.append("a"))
    worker.submit("b", lambda token: seen.append("b"))
    gate.set()
    assert worker.wait_idle(5)
    assert seen[-1] == "b" and "a" not in seen
    worker.close()
    worker.submit("late", lambda token: seen.append("late"))
    assert worker.wait_idle(1) and "late" not in seen


def test_idle_worker_survives_a_failing_task() -> None:
    worker = IdleWorker()

    def boom(token: CancelToken) -> None:
        raise RuntimeError("boom")

    worker.submit("bad", boom)
    assert worker.wait_idle(5)
    done: list[int] = []
    worker.submit("good", lambda token: done.append(1))
    assert worker.wait_idle(5) and done == [1]
    worker.close()
