"""The multi-sequence batch decoder on the real SmolLM2: parallel jobs, reuse, cancel, limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import GenerationError
from hanlin.engine.runtime.batch import BatchDecoder, BatchJob
from hanlin.engine.runtime.loader import LoadOptions, load_model
from hanlin.engine.runtime.session import build_sampler

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def decoder(smollm2_path: Path) -> Iterator[BatchDecoder]:
    model = load_model(smollm2_path, options=LoadOptions(n_ctx=256, threads=1))
    dec = BatchDecoder(model, n_seq=3, n_ctx_seq=512)
    yield dec
    dec.close()
    model.close()


def _prompt(dec: BatchDecoder, text: str) -> list[int]:
    chat = f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
    return dec.model.session.tokenize(chat, add_special=True, parse_special=True)


def _job(dec: BatchDecoder, tokens: list[int], max_tokens: int, **kw: object) -> BatchJob:
    out: list[int] = kw.pop("out", None)  # type: ignore[assignment]
    sink = out if out is not None else []

    def on_token(token: int, _piece: bytes) -> bool:
        sink.append(token)
        return False

    job = BatchJob(
        tokens=tokens,
        sampler=build_sampler(dec.vocab, temperature=0),
        max_tokens=max_tokens,
        on_token=kw.pop("on_token", on_token),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    job.out = sink  # type: ignore[attr-defined]
    return job


def test_parallel_jobs_decode_together_and_alike(decoder: BatchDecoder) -> None:
    prompt = _prompt(decoder, "Name three colours.")
    jobs = [_job(decoder, prompt, 24) for _ in range(3)]
    for job in jobs:
        decoder.submit(job)
    for job in jobs:
        assert job.done.wait(60)
    outs = [job.out for job in jobs]  # type: ignore[attr-defined]
    assert outs[0] and outs[0] == outs[1] == outs[2]
    assert all(job.stop_reason in ("stop", "length") for job in jobs)
    assert all(job.generated_tokens == len(job.out) for job in jobs)  # type: ignore[attr-defined]
    text = decoder.model.session.detokenize(outs[0])
    assert text.strip()
    # a different prompt at the same time does not disturb them
    other = _job(decoder, _prompt(decoder, "Say yes."), 8)
    again = _job(decoder, prompt, 24)
    decoder.submit(other)
    decoder.submit(again)
    assert other.done.wait(60) and again.done.wait(60)
    assert again.out == outs[0]  # type: ignore[attr-defined]
    # the repeated prompt found its tokens in a sequence's cache
    assert again.cached_tokens == len(prompt) - 1


def test_cancel_and_stop_end_a_job_at_once(decoder: BatchDecoder) -> None:
    cancel = CancelToken()
    seen = threading.Event()

    def on_token(_t: int, _p: bytes) -> bool:
        seen.set()
        return False

    long = _job(
        decoder, _prompt(decoder, "Write a long story."), 400, cancel=cancel, on_token=on_token
    )
    decoder.submit(long)
    assert seen.wait(30)
    cancel.cancel("test")
    started = time.monotonic()
    assert long.done.wait(5)
    assert time.monotonic() - started < 2
    assert long.stop_reason == "cancelled" and long.generated_tokens < 400

    count = 0

    def stop_after_three(_t: int, _p: bytes) -> bool:
        nonlocal count
        count += 1
        return count == 3

    short = _job(decoder, _prompt(decoder, "Count to ten."), 100, on_token=stop_after_three)
    decoder.submit(short)
    assert short.done.wait(30)
    assert short.stop_reason == "stop" and short.generated_tokens == 3
    stats = decoder.stats()
    assert stats.active == 0 and stats.cancelled >= 1


def test_limits(decoder: BatchDecoder) -> None:
    with pytest.raises(GenerationError, match="context holds"):
        decoder.submit(_job(decoder, [1] * 600, 4))
    capped = _job(decoder, _prompt(decoder, "Write a long story."), 5)
    decoder.submit(capped)
    assert capped.done.wait(30)
    assert capped.stop_reason == "length" and capped.generated_tokens == 5
    assert capped.tokens_per_s > 0 and capped.first_token_at >= capped.submitted_at
