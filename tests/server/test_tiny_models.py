"""Reasoning and fill-in-the-middle on tiny generated models, loaded on demand by name.

`tiny-think`'s template opens `<think>` in the prompt (as DeepSeek-R1's does), so what the
model writes is reasoning: it must come back as `reasoning_content` / a `thinking` block,
never in `content`. `tiny-tools` has Qwen2.5-Coder's FIM tokens, so `/v1/completions`
with `suffix` builds the Qwen FIM prompt through the registry.
"""

from __future__ import annotations

import time

import anthropic
import openai
import pytest

from tests.server.serve_process import HanlinServer

pytestmark = pytest.mark.slow

ASK = [{"role": "user", "content": "Why is the sky blue?"}]


def test_reasoning_is_never_content(tiny_server: HanlinServer) -> None:
    client = openai.OpenAI(base_url=tiny_server.base_v1, api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="tiny-think", messages=ASK, max_tokens=12, temperature=0
    )
    message = reply.choices[0].message
    assert message.reasoning_content  # type: ignore[attr-defined]
    assert message.content == ""
    chunks = list(
        client.chat.completions.create(
            model="tiny-think", messages=ASK, max_tokens=12, temperature=0, stream=True
        )
    )
    thinking = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert thinking.strip() == message.reasoning_content  # type: ignore[attr-defined]
    assert not any(c.choices and c.choices[0].delta.content for c in chunks)

    claude = anthropic.Anthropic(base_url=tiny_server.url, api_key="x", max_retries=0)
    answer = claude.messages.create(
        model="tiny-think", max_tokens=12, messages=ASK, extra_body={"temperature": 0}
    )
    kinds = [b.type for b in answer.content]
    assert kinds[0] == "thinking"
    assert answer.content[0].thinking == message.reasoning_content  # type: ignore[attr-defined]
    with claude.messages.stream(
        model="tiny-think", max_tokens=12, messages=ASK, extra_body={"temperature": 0}
    ) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking.strip() == answer.content[0].thinking


def test_fim_through_the_registry(tiny_server: HanlinServer) -> None:
    client = openai.OpenAI(base_url=tiny_server.base_v1, api_key="x", max_retries=0)
    raw = client.completions.with_raw_response.create(
        model="tiny-tools",
        prompt="def add(a, b):\n    return ",
        suffix="\n\nprint(add(1, 2))\n",
        max_tokens=6,
        temperature=0,
    )
    assert raw.headers["x-hanlin-fim-template"] == "qwen2.5-coder"
    completion = raw.parse()
    assert completion.model == "tiny-tools"
    assert completion.usage.completion_tokens <= 6
    # prefix + suffix + 3 FIM tokens: more prompt tokens than the prefix alone
    plain = client.completions.create(
        model="tiny-tools", prompt="def add(a, b):\n    return ", max_tokens=1, temperature=0
    )
    assert completion.usage.prompt_tokens >= plain.usage.prompt_tokens + 3
    assert tiny_server.health()["model"] == "tiny-tools"


def test_a_hostile_template_fails_the_request_not_the_server(tiny_server: HanlinServer) -> None:
    client = openai.OpenAI(base_url=tiny_server.base_v1, api_key="x", max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError, match="took longer than"):
        client.chat.completions.create(model="tiny-hostile", messages=ASK, max_tokens=4)
    assert time.monotonic() - started < 15
    # the server is up and serves the next request
    reply = client.chat.completions.create(model="tiny-think", messages=ASK, max_tokens=2)
    assert reply.choices[0].finish_reason in ("stop", "length")
