"""The completion service's idle work on a real model: prefetch after an answer, warm-up
on request, and real requests interrupting idle work."""

from __future__ import annotations

import pytest

from hanlin.engine.completion.engine import CompletionRequest
from hanlin.engine.core.cancel import CancelToken
from hanlin.lsp_server.completion_service import CompletionService

pytestmark = pytest.mark.slow

PREFIX = "".join(f"total_{i} = price_{i} * quantity_{i}\n" for i in range(30)) + "total_30 = "


def _request(prefix: str = PREFIX) -> CompletionRequest:
    return CompletionRequest(prefix=prefix, suffix="\n", time_budget_ms=600_000, max_tokens=16)


def test_an_answer_is_followed_by_a_prefetch_that_answers_the_acceptance(
    service: CompletionService,
) -> None:
    first = service.complete(_request(), CancelToken())
    assert first is not None and first.text.strip()
    assert service.idle.wait_idle(120)
    assert service.idle.done.get("prefetch") == 1
    after = service.complete(_request(PREFIX + first.text), CancelToken())
    assert after is not None and after.from_cache and after.prefetched
    totals = service.engine_totals()
    assert totals["prefetches"] >= 1 and totals["prefetch_hits"] == 1


def test_warm_evaluates_in_idle_time_and_a_request_interrupts_it(
    service: CompletionService,
) -> None:
    long_prefix = "".join(f"value_{i} = compute({i}, {i * 3})\n" for i in range(60))
    assert service.warm(_request(long_prefix))
    # a real request right away: the warm-up stops at its next chunk
    result = service.complete(_request("x = "), CancelToken())
    assert result is not None
    assert service.idle.wait_idle(120)
    # it was dropped before it started, or stopped early: it never ran to the end
    assert service.idle.done.get("warm", 0) == 0
    # an uninterrupted warm-up leaves the whole prompt cached for the next request
    assert service.warm(_request(long_prefix))
    assert service.idle.wait_idle(300)
    assert service.idle.done.get("warm", 0) >= 1
    hit = service.complete(_request(long_prefix), CancelToken())
    assert hit is not None and hit.tokens_evaluated <= 2


def test_idle_work_can_be_turned_off(service: CompletionService) -> None:
    service.idle_work = False
    assert service.complete(_request(), CancelToken()) is not None
    assert not service.idle.busy
    assert not service.warm(_request())
    assert service.idle.done == {} and service.idle.cancelled == {}
