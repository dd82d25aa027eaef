"""The Anthropic Messages API of a real `hanlin serve` on SmolLM2, via the `anthropic` SDK."""

from __future__ import annotations

import anthropic
import pytest

from tests.server.conftest import SMOL_ID
from tests.server.serve_process import HanlinServer

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello to Ada in one short sentence."}]


@pytest.fixture
def client(smol_server: HanlinServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=smol_server.url, api_key="unused", max_retries=0)


def test_messages_answer(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=SMOL_ID,
        max_tokens=24,
        system="You are terse.",
        messages=HELLO,
        extra_body={"temperature": 0},
    )
    assert message.role == "assistant" and message.model == SMOL_ID
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.output_tokens > 0
    assert message.usage.input_tokens + message.usage.cache_read_input_tokens > 5


def test_stream_events_build_the_same_message(client: anthropic.Anthropic) -> None:
    whole = client.messages.create(
        model=SMOL_ID, max_tokens=20, messages=HELLO, extra_body={"temperature": 0}
    )
    with client.messages.stream(
        model=SMOL_ID, max_tokens=20, messages=HELLO, extra_body={"temperature": 0}
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() == whole.content[0].text
    assert final.content[0].text.strip() == whole.content[0].text
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_stop_sequences(client: anthropic.Anthropic) -> None:
    free = client.messages.create(
        model=SMOL_ID, max_tokens=24, messages=HELLO, extra_body={"temperature": 0}
    )
    words = free.content[0].text.split()
    assert len(words) > 3
    stop = words[2]
    message = client.messages.create(
        model=SMOL_ID,
        max_tokens=24,
        messages=HELLO,
        extra_body={"temperature": 0},
        stop_sequences=[stop],
    )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == stop
    assert stop not in message.content[0].text


def test_count_tokens_and_errors(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model=SMOL_ID, messages=HELLO)
    assert counted.input_tokens > 5
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=HELLO)
    assert SMOL_ID in str(info.value)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model=SMOL_ID,
            max_tokens=8,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "url", "url": "http://x"}}],
                }
            ],
        )
