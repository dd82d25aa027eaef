"""Shifted-KV reuse (llama-server's `--cache-reuse`): the plan, and real llama.cpp shifts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hanlin.engine.completion.context_ring import ContextChunk
from hanlin.engine.completion.engine import CompletionEngine
from hanlin.engine.completion.engine import CompletionRequest as _Request
from hanlin.engine.completion.kv_shift import apply_shift, plan_shift
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model


def test_plan_keeps_the_prefix_and_shifts_runs_after_a_deletion() -> None:
    cached = list(range(100))
    prompt = cached[:10] + cached[30:]  # 20 tokens removed after the first 10
    plan = plan_shift(cached, prompt, min_chunk=16)
    assert plan.prefix == 10
    assert plan.moves == ((30, 10, 70),)
    assert plan.kept == len(prompt) and plan.shifted == 70


def test_plan_ignores_runs_shorter_than_the_minimum_chunk() -> None:
    cached = list(range(100))
    prompt = cached[:10] + cached[30:40] + [999] + cached[41:]
    plan = plan_shift(cached, prompt, min_chunk=16)
    assert plan.prefix == 10 and plan.moves == () and plan.kept == 10
    assert plan_shift(cached, prompt, min_chunk=8).moves == ((30, 10, 10),)


def test_plan_cannot_fill_an_insertion_behind_shifted_cells() -> None:
    cached = list(range(100))
    prompt = [*cached[:50], 1000, 1001, *cached[50:]]
    plan = plan_shift(cached, prompt, min_chunk=4)
    # positions must stay consecutive in llama.cpp: only the prefix is kept
    assert plan.prefix == 50 and plan.kept == 50


def test_plan_with_reuse_off_is_prefix_reuse() -> None:
    cached = list(range(50))
    assert plan_shift(cached, cached[5:], min_chunk=0).kept == 0


@pytest.fixture(scope="module")
def smol() -> Iterator[LoadedModel]:
    from tests.conftest import smollm2_gguf

    model = load_model(smollm2_gguf(), options=LoadOptions(n_ctx=2048, threads=1))
    yield model
    model.close()


def _chunk(name: str, n: int) -> ContextChunk:
    body = "".join(
        f"def {name}_{i}(value):\n    return value * {i} + {len(name)}\n\n" for i in range(n)
    )
    return ContextChunk(f"{name}.py", body)


def CompletionRequest(**kwargs: object) -> _Request:
    """A request with a generous budget: these tests count tokens, they never time."""
    return _Request(time_budget_ms=600_000, **kwargs)  # type: ignore[arg-type]


PREFIX = "".join(f"total_{i} = price_{i} * quantity_{i}\n" for i in range(30)) + "total_30 = "


@pytest.mark.slow
def test_evicting_a_ring_chunk_shifts_the_rest_instead_of_evaluating_it(
    smol: LoadedModel,
) -> None:
    a, b = _chunk("alpha", 6), _chunk("beta", 6)
    engine = CompletionEngine(smol, response_cache=False, reuse_chunk=64, drafts=False)
    with smol.lock:
        smol.session.reset()
    first = engine.complete(CompletionRequest(prefix=PREFIX, extra_context=[a, b], max_tokens=6))
    assert first.tokens_cached == 0
    # the ring evicts `a`: everything after it moves to earlier positions
    second = engine.complete(CompletionRequest(prefix=PREFIX, extra_context=[b], max_tokens=6))
    assert second.tokens_shifted > 250
    assert second.tokens_evaluated <= 8, second
    assert second.tokens_cached == second.prompt_tokens - second.tokens_evaluated
    assert second.text.strip()
    # without shifting, everything after the difference would be evaluated again
    full = engine._build_prompt(
        CompletionRequest(prefix=PREFIX, extra_context=[a, b], max_tokens=6), multiline=False
    ).tokens
    new = engine._build_prompt(
        CompletionRequest(prefix=PREFIX, extra_context=[b], max_tokens=6), multiline=False
    ).tokens
    assert plan_shift(full, new, min_chunk=0).kept < 20
    assert second.tokens_cached >= len(new) - 8
    assert engine.totals.tokens_shifted == second.tokens_shifted


@pytest.mark.slow
def test_a_deleted_line_above_the_cursor_shifts_what_follows(smol: LoadedModel) -> None:
    with smol.lock:
        smol.session.reset()
        tokens = smol.session.tokenize(PREFIX, add_special=True)
        smol.session.evaluate(tokens)
        lines = PREFIX.split("\n")
        edited = "\n".join(lines[:5] + lines[6:])  # delete line 5
        new = smol.session.tokenize(edited, add_special=True)
        plan = apply_shift(smol.session, new, min_chunk=32)
        assert plan.prefix < 80 and plan.shifted > 250
        assert smol.session.tokens == new[: plan.kept]
        # the cache is consistent: evaluating the rest appends at the right positions
        more = new + smol.session.tokenize("42\ntotal_41 = ")
        result = smol.session.evaluate(more)
        assert result.cached_tokens == plan.kept
        assert result.evaluated_tokens == len(more) - plan.kept
