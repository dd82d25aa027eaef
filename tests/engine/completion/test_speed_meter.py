"""SpeedMeter: the budget's speeds follow the machine and ignore a stretched chunk."""

from __future__ import annotations

from hanlin.engine.completion.budget import SPEED_SAMPLES, SpeedMeter


def test_one_stretched_chunk_does_not_shrink_the_estimate() -> None:
    meter = SpeedMeter()
    for _ in range(5):
        meter.prompt_measured(64, 0.064)  # 1 ms a token
    meter.prompt_measured(64, 6.4)  # preempted: 100 ms a token, once
    assert meter.prompt_ms_per_token == 1.0
    assert meter.tokens_within(500, default=0) == 500


def test_a_machine_that_got_slower_is_followed() -> None:
    meter = SpeedMeter()
    for _ in range(SPEED_SAMPLES):
        meter.prompt_measured(64, 0.064)
    for _ in range(SPEED_SAMPLES // 2 + 1):
        meter.prompt_measured(64, 0.256)  # 4 ms a token from now on
    assert meter.prompt_ms_per_token == 4.0


def test_small_batches_are_not_measured_and_decode_has_its_own_median() -> None:
    meter = SpeedMeter()
    meter.prompt_measured(4, 1.0)
    assert meter.prompt_ms_per_token is None
    assert meter.tokens_within(300, default=64) == 64
    for seconds in (0.010, 0.012, 0.5):
        meter.decode_measured(1, seconds)
    assert meter.decode_ms_per_token == 12.0
