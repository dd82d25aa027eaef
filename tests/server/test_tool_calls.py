"""Tool calling end to end: real models write real calls, parsed into tool_calls / tool_use.

SmolLM2's template knows nothing of tools (the server adds Qwen's tool instructions to the
system turn); `tiny-tools` has Qwen2.5's template, which renders `tools` itself. A forced
choice (`required`, Anthropic's `any`) makes the reply exactly one call through a grammar
built from the tool's JSON schema, so the calls here are what the models generated.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.server.conftest import SMOL_ID
from tests.server.serve_process import HanlinServer

pytestmark = pytest.mark.slow

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time now",
        "parameters": {"type": "object", "properties": {}},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def test_openai_required_tool_call(smol_server: HanlinServer) -> None:
    client = openai.OpenAI(base_url=smol_server.base_v1, api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model=SMOL_ID,
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=60,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] in ("Paris", "Oslo", "Lima")
    assert call.id.startswith("call_")
    assert "<tool_call>" not in (choice.message.content or "")

    # the streamed form: the call arrives as a tool_calls delta
    chunks = list(
        client.chat.completions.create(
            model=SMOL_ID,
            messages=ASK,
            tools=[WEATHER],
            tool_choice="required",
            temperature=0,
            max_tokens=60,
            stream=True,
        )
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [d.function.name for d in deltas] == ["get_weather"]
    assert json.loads(deltas[0].function.arguments)["city"] in ("Paris", "Oslo", "Lima")
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    # the result goes back to the model, which answers
    follow = client.chat.completions.create(
        model=SMOL_ID,
        messages=[
            *ASK,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21, "sky": "clear"}'},
        ],
        tools=[WEATHER],
        max_tokens=16,
        temperature=0,
    )
    assert follow.choices[0].message.content


def test_anthropic_tool_use(smol_server: HanlinServer) -> None:
    client = anthropic.Anthropic(base_url=smol_server.url, api_key="x", max_retries=0)
    tool = {
        "name": "get_weather",
        "description": "The current weather in a city",
        "input_schema": WEATHER["function"]["parameters"],
    }
    message = client.messages.create(
        model=SMOL_ID,
        max_tokens=60,
        messages=ASK,
        tools=[tool],
        tool_choice={"type": "any"},
        extra_body={"temperature": 0},
    )
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather"
    assert uses[0].input["city"] in ("Paris", "Oslo", "Lima")
    assert uses[0].id.startswith("toolu_")
    with client.messages.stream(
        model=SMOL_ID,
        max_tokens=60,
        messages=ASK,
        tools=[tool],
        tool_choice={"type": "tool", "name": "get_weather"},
        extra_body={"temperature": 0},
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["tool_use"]
    assert final.content[0].input["city"] in ("Paris", "Oslo", "Lima")
    # tool_result back in, a text answer out
    answer = client.messages.create(
        model=SMOL_ID,
        max_tokens=16,
        tools=[tool],
        extra_body={"temperature": 0},
        messages=[
            *ASK,
            {"role": "assistant", "content": [u.model_dump() for u in uses]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "21 °C, clear"}
                ],
            },
        ],
    )
    assert answer.content[0].type == "text"


def test_template_that_renders_tools(tiny_server: HanlinServer) -> None:
    """Qwen2.5's own template gets the tools; a call the tiny model writes is parsed."""
    client = openai.OpenAI(base_url=tiny_server.base_v1, api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="tiny-tools",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_tokens=300,
    )
    [call] = reply.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] in ("Paris", "Oslo", "Lima")
    # the template rendered the tool spec: the prompt is much longer than without tools
    plain = client.chat.completions.create(
        model="tiny-tools", messages=ASK, max_tokens=1, temperature=0
    )
    assert reply.usage.prompt_tokens > plain.usage.prompt_tokens + 100
