"""Budgets that hold on a cold prompt: the small window, the parked KV cache, idle warm-up.

Real SmolLM2 on 110 real lines of a standard-library file (asyncio/base_events.py). Most
checks are deterministic (tokens evaluated, what the KV cache holds) with a fixed prompt
speed; one checks the wall clock against a real budget, with the slack two busy shared
cores need.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hanlin.engine.completion import engine as engine_mod
from hanlin.engine.completion.engine import CompletionEngine, CompletionRequest
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model
from tests.support.completion_budget import CancelAfter, FixedSpeed, big_file

pytestmark = pytest.mark.slow


PREFIX, SUFFIX = big_file()


@pytest.fixture(scope="module")
def smol() -> Iterator[LoadedModel]:
    from tests.conftest import smollm2_gguf

    model = load_model(smollm2_gguf(), options=LoadOptions(n_ctx=2048, threads=1))
    yield model
    model.close()


def _engine(model: LoadedModel, **kwargs: object) -> CompletionEngine:
    with model.lock:
        model.session.reset()
    return CompletionEngine(model, **kwargs)  # type: ignore[arg-type]


def _request(budget_ms: int, **kwargs: object) -> CompletionRequest:
    kwargs.setdefault("prefix", PREFIX)
    kwargs.setdefault("suffix", SUFFIX)
    kwargs.setdefault("max_tokens", 16)
    return CompletionRequest(time_budget_ms=budget_ms, **kwargs)  # type: ignore[arg-type]


def test_keystrokes_on_a_line_reuse_the_small_window(smol: LoadedModel) -> None:
    """While the full prompt does not fit, the KV keeps the last window: the next keystroke
    on the line reads only its new characters (the parked full prompt is not swapped in
    and out), and the window can grow to its widest for the price of the new lines."""
    engine = _engine(smol, response_cache=False)
    engine.speed = FixedSpeed(prompt_ms=3.0)
    first = engine.complete(_request(500))
    assert first.small_window and first.tokens_evaluated > 20
    parked = engine._parked.held if engine._parked is not None else 0
    for typed in ("r", "re", "ret"):
        nxt = engine.complete(_request(500, prefix=PREFIX + typed))
        assert nxt.small_window
        assert nxt.tokens_evaluated <= 4, nxt
        assert nxt.tokens_cached >= first.tokens_evaluated - 4
    # what the full prompt had evaluated is still parked, untouched (a window is never
    # parked in its place)
    assert (engine._parked.held if engine._parked is not None else 0) == parked
    # once it is warmed, the full prompt answers again
    engine.warm(_request(500, prefix=PREFIX + "ret"))
    full = engine.complete(_request(500, prefix=PREFIX + "retu"))
    assert not full.small_window and full.tokens_evaluated <= 8


def test_cold_prompt_is_answered_from_the_small_window_then_warmed(smol: LoadedModel) -> None:
    engine = _engine(smol, response_cache=False)
    # 3 ms per token: the ~900-token prompt needs ~2.7 s, the budget is 500 ms
    engine.speed = FixedSpeed(prompt_ms=3.0)
    first = engine.complete(_request(500))
    assert first.small_window
    assert first.prompt_tokens > 500
    # the window was sized to the time left: (500 - 12 decode steps) * 0.6 / 3 -> 97 tokens
    assert 0 < first.tokens_evaluated <= 100
    assert first.text.strip(), first
    assert "window" in first.budget_note and str(first.prompt_tokens) in first.budget_note
    assert engine.totals.small_window_answers == 1
    # idle time: the full prompt is evaluated without generating
    warmed = engine.warm(_request(500))
    # (the window's first tokens, a header, may be shared with the full prompt)
    assert first.prompt_tokens - 8 <= warmed <= first.prompt_tokens
    assert engine.totals.warm_tokens == warmed
    # the next keystroke now fits the budget: a handful of new tokens, full context
    second = engine.complete(_request(500, prefix=PREFIX + "c"))
    assert not second.small_window and second.budget_note == ""
    assert second.tokens_evaluated <= 8
    assert second.tokens_cached >= first.prompt_tokens - 8


def test_the_small_window_keeps_the_full_prompts_progress(smol: LoadedModel) -> None:
    engine = _engine(smol, response_cache=False)
    engine.speed = FixedSpeed(prompt_ms=3.0)
    full = engine._build_prompt(_request(500), multiline=False).tokens
    # idle warm-up interrupted by a real request after a few chunks
    partial = engine.warm(_request(500), cancel=CancelAfter(4))
    assert 0 < partial < len(full)
    held = list(smol.session.tokens)
    assert held == list(full[: len(held)])
    result = engine.complete(_request(500))
    assert result.small_window and result.text.strip()
    # the window ran; the partially evaluated full prompt is parked (the window stays in the
    # KV cache for a prefetch) and goes back in before the next call that needs it
    assert engine._parked is not None and engine._parked.tokens == held
    rest = engine.warm(_request(500))
    assert rest == len(full) - len(held)


def test_a_real_budget_holds_on_a_cold_prompt(smol: LoadedModel) -> None:
    engine = _engine(smol, response_cache=False)
    budget = 1500
    result = engine.complete(_request(budget))
    # the real speed decides; the full cold prompt would take far longer than the budget
    full_ms = engine.speed.prompt_ms(result.prompt_tokens)
    assert full_ms is not None
    if full_ms > budget:
        assert result.small_window
    decode = engine.speed.decode_ms_per_token or 0.0
    # within the budget, give or take one decode step (and the probe chunk, with slack
    # for two cores shared with other work)
    assert result.elapsed_ms <= budget + 2 * decode + 500, result
    assert result.text.strip() or result.stop_reason == "time"


def test_never_empty_many_times_in_a_row(smol: LoadedModel) -> None:
    engine = _engine(smol, response_cache=False)
    engine.speed = FixedSpeed(prompt_ms=1.0, decode_ms=1.0)
    lines = PREFIX.split("\n")
    streak = longest = 0
    for i in range(10):
        # a budget far too small for anything: 1 ms
        prefix = "\n".join(lines[: len(lines) - i]) + "\n    "
        result = engine.complete(_request(1, prefix=prefix, suffix="\n", multiline=True))
        empty = not result.text.strip()
        if empty:
            assert result.stop_reason == "time" and result.budget_note
        streak = streak + 1 if empty else 0
        longest = max(longest, streak)
    assert longest <= engine_mod.EMPTY_STREAK_LIMIT
    assert engine.totals.budget_empty <= 10 - 10 // (engine_mod.EMPTY_STREAK_LIMIT + 1)


def test_after_empty_answers_the_next_one_overruns_to_write_a_line(smol: LoadedModel) -> None:
    engine = _engine(smol, response_cache=False)
    engine.speed = FixedSpeed(prompt_ms=1.0, decode_ms=1.0)
    engine._empty_streak = engine_mod.EMPTY_STREAK_LIMIT
    prefix = PREFIX.rsplit("\n", 1)[0] + "\n"
    result = engine.complete(_request(1, prefix=prefix, suffix="\n", multiline=True))
    assert result.generated_tokens > 1  # ran past the 1 ms deadline
    assert result.text.strip(), result
    assert engine._empty_streak == 0


def test_without_small_window_the_old_behaviour_stays(smol: LoadedModel) -> None:
    engine = _engine(smol, response_cache=False)
    engine.speed = FixedSpeed(prompt_ms=1.0)
    result = engine.complete(_request(1, small_window=False))
    assert not result.small_window
    assert result.stop_reason == "time" and result.text == ""
    assert "did not fit" in result.budget_note
    assert result.to_dict()["stopReason"] == "time"
    assert result.to_dict()["smallWindow"] is False


def _second_file() -> tuple[str, str]:
    """Another real file's prefix and suffix (asyncio/tasks.py), cut inside a function."""
    import asyncio.tasks as source_module
    import inspect

    text = "\n".join(inspect.getsource(source_module).split("\n")[300:420])
    cut = text.rindex("\n        ") + len("\n        ")
    return text[:cut], text[cut:]


def test_going_back_to_a_file_puts_its_window_back(smol: LoadedModel) -> None:
    """Typing in two files in turn: each file's small window is shelved when the user
    leaves it and put back on return, so a visit re-reads only what changed there."""
    engine = _engine(smol, response_cache=False)
    engine.speed = FixedSpeed(prompt_ms=3.0)
    other_prefix, other_suffix = _second_file()
    a1 = engine.complete(_request(500, filename="base_events.py"))
    assert a1.small_window and a1.tokens_evaluated > 40
    b1 = engine.complete(
        _request(500, prefix=other_prefix, suffix=other_suffix, filename="tasks.py")
    )
    assert b1.small_window and b1.tokens_evaluated > 40
    assert len(engine._shelf) == 1  # base_events.py's window, shelved when it was left
    a2 = engine.complete(_request(500, prefix=PREFIX + "r", filename="base_events.py"))
    assert a2.small_window
    assert a2.tokens_evaluated <= 6, a2
    assert a2.tokens_cached >= a1.tokens_evaluated - 6
    b2 = engine.complete(
        _request(500, prefix=other_prefix + "r", suffix=other_suffix, filename="tasks.py")
    )
    assert b2.tokens_evaluated <= 6, b2
    # with no room for shelved windows, every return is a cold window again
    engine._shelf.capacity = 0
    engine._shelf.clear()
    engine.complete(_request(500, prefix=PREFIX + "re", filename="base_events.py"))
    cold = engine.complete(
        _request(500, prefix=other_prefix + "re", suffix=other_suffix, filename="tasks.py")
    )
    assert cold.tokens_evaluated > 40


def test_a_window_that_moved_down_a_line_is_shifted_not_read_again(smol: LoadedModel) -> None:
    """Enter at the end of a line moves the window's first line down: the lines both
    windows share are shifted into place (llama-server's cache reuse), not evaluated."""
    engine = _engine(smol, response_cache=False)
    engine.speed = FixedSpeed(prompt_ms=1.0)
    lines = PREFIX.split("\n")
    # a prefix long enough that the widest window (48 lines) starts below the top
    assert len(lines) > 60
    first = engine.complete(_request(500, prefix=PREFIX + "return"))
    assert first.small_window
    moved = engine.complete(_request(500, prefix=PREFIX + "return\n        "))
    assert moved.small_window
    assert moved.tokens_shifted > 100, moved
    assert moved.tokens_evaluated < 20, moved


def test_a_narrower_window_has_a_shorter_suffix() -> None:
    """A FIM prompt evaluates its suffix again on every keystroke: the window's suffix
    narrows with its prefix, down to the rest of the cursor's line."""
    from hanlin.engine.completion.budget import window_limits
    from hanlin.engine.completion.fim import PromptLimits, window_suffix

    base = PromptLimits()
    widths = [window_limits(base, n).suffix_lines for n in (48, 24, 12, 6, 3, 1)]
    assert widths == [8, 4, 2, 1, 1, 1]
    suffix = "rest of line)\n" + "\n".join(f"after {i}" for i in range(20))
    assert window_suffix(suffix, window_limits(base, 1)) == "rest of line)"
    assert window_suffix(suffix, window_limits(base, 24)).count("\n") == 3
