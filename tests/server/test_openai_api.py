"""The OpenAI API of a real `hanlin serve` on SmolLM2, through the official `openai` client."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest

from tests.server.conftest import SMOL_ID
from tests.server.serve_process import HanlinServer, wait_until

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello to Ada in one short sentence."}]


@pytest.fixture
def client(smol_server: HanlinServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=smol_server.base_v1, api_key="unused", max_retries=0)


def test_models_lists_the_installed_model(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [SMOL_ID]
    assert models.data[0].owned_by == "hanlin"


def test_chat_answers_and_counts_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SMOL_ID, messages=HELLO, max_tokens=24, temperature=0
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.model == SMOL_ID
    assert getattr(choice.message, "reasoning_content", None) is None  # SmolLM2 does not think


def test_stream_equals_the_whole_answer_at_temperature_zero(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model=SMOL_ID, messages=HELLO, max_tokens=20, temperature=0, seed=1
    )
    chunks = list(
        client.chat.completions.create(
            model=SMOL_ID,
            messages=HELLO,
            max_tokens=20,
            temperature=0,
            seed=1,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    # the second identical request re-used the KV cache of the first
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens > 0


def test_stop_strings_end_the_answer(client: openai.OpenAI) -> None:
    free = (
        client.chat.completions.create(model=SMOL_ID, messages=HELLO, max_tokens=24, temperature=0)
        .choices[0]
        .message.content
    )
    words = free.split()
    assert len(words) > 3, free
    stop = words[2]
    reply = client.chat.completions.create(
        model=SMOL_ID, messages=HELLO, max_tokens=24, temperature=0, stop=[stop, "never-seen"]
    )
    assert reply.choices[0].message.content == free[: free.index(stop)].strip()
    assert reply.choices[0].finish_reason == "stop"


def test_json_mode_returns_json(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=SMOL_ID,
        messages=[{"role": "user", "content": "Which colour is the sky? Answer in JSON."}],
        max_tokens=40,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "colour",
                "schema": {
                    "type": "object",
                    "properties": {"colour": {"enum": ["red", "green", "blue"]}},
                    "required": ["colour"],
                },
            },
        },
    )
    assert json.loads(reply.choices[0].message.content)["colour"] in ("red", "green", "blue")
    free = client.chat.completions.create(
        model=SMOL_ID,
        messages=[{"role": "user", "content": 'Reply with {"ok": true} in JSON.'}],
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_object"},
    )
    content = free.choices[0].message.content
    assert content.lstrip().startswith("{")
    if free.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict)


def test_completions_and_suffix(client: openai.OpenAI) -> None:
    plain = client.completions.create(
        model=SMOL_ID, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert plain.choices[0].text
    assert plain.usage.completion_tokens <= 8
    raw = client.completions.with_raw_response.create(
        model=SMOL_ID, prompt="def add(a, b):\n    ", suffix="\n\nprint(add(1, 2))\n", max_tokens=8
    )
    # SmolLM2 has no FIM tokens: the registry's prefix-only template, as in hanlin-lsp
    assert raw.headers["x-hanlin-fim-template"] == "prefix-only"
    assert raw.parse().choices[0].finish_reason in ("stop", "length")
    streamed = list(
        client.completions.create(
            model=SMOL_ID,
            prompt="The capital of France is",
            max_tokens=8,
            temperature=0,
            stream=True,
        )
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == plain.choices[0].text


def test_unknown_model_is_404_listing_the_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=4)
    assert "gpt-4o" in str(info.value) and SMOL_ID in str(info.value)
    # a catalog model that is not downloaded says how to get it
    with pytest.raises(openai.NotFoundError, match="not downloaded"):
        client.chat.completions.create(model="qwen3-4b-q4km", messages=HELLO, max_tokens=4)


def test_bad_requests_are_400(client: openai.OpenAI, smol_server: HanlinServer) -> None:
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model=SMOL_ID, messages=[], max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(
            model=SMOL_ID, messages=[{"role": "user", "content": "word " * 3000}], max_tokens=4
        )
    r = httpx.post(smol_server.base_v1 + "/chat/completions", content=b"{not json", timeout=10)
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = httpx.post(
        smol_server.base_v1 + "/chat/completions",
        json={"model": SMOL_ID, "messages": HELLO, "max_tokens": "many"},
        timeout=10,
    )
    assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
    # the server is still fine
    assert smol_server.health()["status"] == "ok"


def test_oversized_body_is_413(smol_server: HanlinServer) -> None:
    big = {"model": SMOL_ID, "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]}
    # the client is still uploading when the server knows the answer: the server reads the
    # rest before answering, so the client gets the 413, never a reset (3 times: a race)
    for _ in range(3):
        r = httpx.post(smol_server.base_v1 + "/chat/completions", json=big, timeout=30)
        assert r.status_code == 413
        assert "larger than" in r.json()["error"]["message"]
    # a chunked upload has no Content-Length: refused while it streams in
    raw = json.dumps(big).encode()

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(raw), 256 * 1024):
            yield raw[i : i + 256 * 1024]

    r = httpx.post(smol_server.base_v1 + "/chat/completions", content=chunks(), timeout=30)
    assert r.status_code == 413


def test_eight_concurrent_streams(client: openai.OpenAI, smol_server: HanlinServer) -> None:
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            stream = client.chat.completions.create(
                model=SMOL_ID,
                messages=[{"role": "user", "content": f"Tell me a fact about the number {i}."}],
                max_tokens=16,
                stream=True,
            )
            results[i] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert sorted(results) == list(range(8))
    assert all(text.strip() for text in results.values())
    assert wait_until(lambda: smol_server.health()["busy"] == 0, 5)


def test_disconnect_mid_stream_stops_generation(smol_server: HanlinServer) -> None:
    before = smol_server.health()
    body = {
        "model": SMOL_ID,
        "messages": [{"role": "user", "content": "Write a very long story about the sea."}],
        "max_tokens": 1500,
        "stream": True,
    }
    with httpx.stream(
        "POST", smol_server.base_v1 + "/chat/completions", json=body, timeout=30
    ) as response:
        lines = response.iter_lines()
        got = [next(lines) for _ in range(8)]
    assert any(line.startswith("data: ") for line in got)
    # the client is gone: its generation is cancelled at once, not after 1500 tokens
    assert wait_until(lambda: smol_server.health()["cancelled"] > before["cancelled"], 3)
    health = smol_server.health()
    assert health["generating"] == 0 and health["busy"] == 0
    assert health["generated_tokens"] - before["generated_tokens"] < 400
