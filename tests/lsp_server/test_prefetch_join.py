"""The request after accepting a shown completion, while its prefetch still runs: it waits
for the prefetch (within its budget) instead of cancelling it; real SmolLM2, real service.

The prefetch is held at a gate before it touches the model, so "still running when the
request comes" does not depend on how fast this machine is.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hanlin.engine.completion.engine import CompletionRequest, CompletionResult
from hanlin.engine.completion.idle import IdleToken
from hanlin.engine.core.cancel import CancelToken
from hanlin.lsp_server.completion_service import JOIN_SHARE, CompletionService

pytestmark = pytest.mark.slow

PREFIX = "".join(f"total_{i} = price_{i} * quantity_{i}\n" for i in range(30)) + "total_30 = "


def _request(prefix: str = PREFIX, budget_ms: int = 600_000) -> CompletionRequest:
    return CompletionRequest(prefix=prefix, suffix="\n", time_budget_ms=budget_ms, max_tokens=16)


def _gate_prefetch(service: CompletionService) -> tuple[threading.Event, threading.Event]:
    """Hold the engine's prefetch at a gate before it touches the model (so it cannot say
    when its prompt will be evaluated) until the gate opens."""
    engine = service._loaded.engine  # type: ignore[union-attr]
    real = engine.prefetch
    entered, gate = threading.Event(), threading.Event()

    def gated(
        request: CompletionRequest, shown: str, *, cancel: CancelToken | None = None
    ) -> CompletionResult | None:
        entered.set()
        gate.wait(30)
        return real(request, shown, cancel=cancel)

    engine.prefetch = gated  # type: ignore[method-assign]
    return entered, gate


def _gate_generation(service: CompletionService) -> tuple[threading.Event, threading.Event]:
    """Hold the prefetch's generation at a gate: its prompt is evaluated (it said so), it
    has not written anything yet."""
    engine = service._loaded.engine  # type: ignore[union-attr]
    real = engine._generate
    entered, gate = threading.Event(), threading.Event()

    def gated(*args: Any, **kwargs: Any) -> Any:
        cancel = args[3]  # (prompt, request, multiline, cancel, ...)
        if isinstance(cancel, IdleToken):
            entered.set()
            # it holds the model meanwhile: a cancel goes through, as between tokens
            while not gate.wait(0.005) and not cancel.cancelled:
                pass
        return real(*args, **kwargs)

    engine._generate = gated  # type: ignore[method-assign]
    return entered, gate


def test_the_accepted_request_waits_for_its_running_prefetch(service: CompletionService) -> None:
    entered, gate = _gate_generation(service)
    first = service.complete(_request(), CancelToken())
    assert first is not None and first.text.strip()
    assert entered.wait(30)  # the prefetch for "accepted" is about to generate
    threading.Timer(0.3, gate.set).start()
    t0 = time.perf_counter()
    after = service.complete(_request(PREFIX + first.text), CancelToken())
    waited = (time.perf_counter() - t0) * 1000
    assert after is not None and after.from_cache and after.prefetched, after
    assert after.waited_ms >= 250 and waited >= after.waited_ms
    assert service.idle.joined == 1 and service.idle.given_up == 0
    assert service.idle.cancelled.get("prefetch", 0) == 0
    assert service.engine_totals()["prefetch_hits"] == 1


def test_a_joined_prefetch_answers_within_the_requests_budget(
    service: CompletionService,
) -> None:
    entered, gate = _gate_generation(service)
    first = service.complete(_request(), CancelToken())
    assert first is not None and first.text.strip()
    assert entered.wait(30)
    budget = 1000
    # the prefetch may generate only once the wait is nearly over: it is told to finish by
    # then and answers with the little it has (or nothing, and the request computes)
    threading.Timer(budget * JOIN_SHARE / 1000 - 0.05, gate.set).start()
    t0 = time.perf_counter()
    after = service.complete(_request(PREFIX + first.text, budget_ms=budget), CancelToken())
    total = (time.perf_counter() - t0) * 1000
    assert after is not None
    assert service.idle.joined == 1, after
    assert after.waited_ms <= budget * JOIN_SHARE + 400  # the wait, a step, busy cores
    if after.prefetched:
        assert after.from_cache
    assert total <= budget + 1000, (total, after)


def test_a_prefetch_far_from_its_answer_is_not_waited_for(service: CompletionService) -> None:
    entered, gate = _gate_prefetch(service)
    first = service.complete(_request(), CancelToken())
    assert first is not None and first.text.strip()
    assert entered.wait(30)
    # held before its prompt: it cannot say when it will have an answer, so the request
    # computes its own at once (with its whole budget) and the prefetch is cancelled
    t0 = time.perf_counter()
    after = service.complete(_request(PREFIX + first.text, budget_ms=2000), CancelToken())
    total = (time.perf_counter() - t0) * 1000
    gate.set()
    assert after is not None and not after.prefetched and after.waited_ms < 50
    assert service.idle.given_up == 1 and service.idle.joined == 0
    assert total <= 2000 + 1000, (total, after)
    assert service.idle.wait_idle(60)
    assert service.idle.cancelled.get("prefetch", 0) >= 1


def test_another_request_cancels_the_prefetch_at_once(service: CompletionService) -> None:
    entered, gate = _gate_generation(service)
    first = service.complete(_request(), CancelToken())
    assert first is not None and first.text.strip()
    assert entered.wait(30)
    t0 = time.perf_counter()
    # the user typed something else: a different request, no waiting for the prefetch
    other = service.complete(_request(PREFIX + "(", budget_ms=2000), CancelToken())
    gate.set()
    assert other is not None and other.waited_ms == 0 and not other.prefetched
    assert service.idle.joined == 0 and service.idle.given_up == 0
    assert (time.perf_counter() - t0) * 1000 < 2000 + 1000
    assert service.idle.wait_idle(60)
    assert service.idle.cancelled.get("prefetch", 0) >= 1
