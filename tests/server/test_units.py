"""The server's pure parts: tool-call parsing, grammars, config checks, keys, the scheduler."""

from __future__ import annotations

import asyncio

import pytest

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.settings import ServerSettings
from hanlin.server.auth import key_matches
from hanlin.server.config import ServeConfig, is_loopback, resolve_api_key
from hanlin.server.errors import ApiError
from hanlin.server.grammars import wrap_grammar
from hanlin.server.scheduler import ClientGone, QueueFull, Scheduler, ShuttingDown
from hanlin.server.tools import (
    ToolCall,
    ToolCallSplitter,
    ToolSpec,
    parse_call_body,
    template_renders_tools,
    tool_call_grammar,
    tools_from_anthropic,
    tools_from_openai,
)


def test_parse_qwen_json_call() -> None:
    call = parse_call_body('\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n')
    assert call is not None and call.name == "get_weather" and call.arguments == {"city": "Paris"}
    # arguments as a JSON string (some fine-tunes) and "parameters" (Llama-style)
    call = parse_call_body('{"name": "f", "arguments": "{\\"x\\": 1}"}')
    assert call is not None and call.arguments == {"x": 1}
    call = parse_call_body('{"name": "f", "parameters": {"x": 2}}')
    assert call is not None and call.arguments == {"x": 2}


def test_parse_qwen3_coder_and_glm_calls() -> None:
    body = "\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n"
    body += "<parameter=days>\n3\n</parameter>\n</function>\n"
    call = parse_call_body(body)
    assert call is not None and call.name == "get_weather"
    assert call.arguments == {"city": "Paris", "days": 3}
    glm = "get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
    call = parse_call_body(glm)
    assert call is not None and call.name == "get_weather" and call.arguments == {"city": "Paris"}
    assert parse_call_body("get_time") is not None  # GLM call without arguments


def test_unparseable_blocks_stay_text() -> None:
    assert parse_call_body("{not json") is None
    assert parse_call_body("I think I should call a tool") is None
    split = ToolCallSplitter()
    out = split.feed("Sure. <tool_call>{oops}</tool_call> done")
    assert (
        "".join(p for p in out if isinstance(p, str)) == "Sure. <tool_call>{oops}</tool_call> done"
    )
    assert split.calls == []


def test_splitter_across_chunks() -> None:
    text = 'Let me check.<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>'
    text += '<tool_call>\n{"name": "b", "arguments": {"k": "v"}}\n</tool_call>'
    split = ToolCallSplitter()
    parts: list[str | ToolCall] = []
    for i in range(0, len(text), 3):  # tags arrive in pieces
        parts += split.feed(text[i : i + 3])
    parts += split.finish()
    assert "".join(p for p in parts if isinstance(p, str)) == "Let me check."
    assert [c.name for c in split.calls] == ["a", "b"]
    assert split.calls[1].arguments == {"k": "v"}
    assert split.calls[0].id != split.calls[1].id
    # a call cut off by max_tokens is parsed if it is complete JSON, else given back
    cut = ToolCallSplitter()
    assert cut.feed('<tool_call>{"name": "a", "arguments": {}}') == []
    assert [c.name for c in cut.finish() if isinstance(c, ToolCall)] == ["a"]
    cut = ToolCallSplitter()
    cut.feed('<tool_call>{"name": "a", "argu')
    assert cut.finish() == ['<tool_call>{"name": "a", "argu']
    # a "<" that is not a tag is not held forever
    plain = ToolCallSplitter()
    assert (
        "".join(str(p) for p in plain.feed("a < b")) + "".join(map(str, plain.finish())) == "a < b"
    )


def test_tool_specs_from_both_dialects() -> None:
    [spec] = tools_from_openai(
        [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    )
    assert spec.as_openai()["function"]["name"] == "f"
    [spec] = tools_from_anthropic([{"name": "g", "input_schema": {"type": "object"}}])
    assert spec.name == "g"
    with pytest.raises(ApiError, match="its own servers"):
        tools_from_anthropic([{"type": "web_search_20250305", "name": "web_search"}])
    with pytest.raises(Exception, match="name"):
        tools_from_openai([{"type": "function", "function": {"name": "bad name!"}}])
    assert template_renders_tools("{% if tools %}x{% endif %}")
    assert not template_renders_tools("{{ messages }}")
    assert not template_renders_tools(None)


def test_tool_call_grammar_is_valid_gbnf() -> None:
    import llama_cpp

    spec = ToolSpec(
        "get_weather",
        parameters={"type": "object", "properties": {"city": {"enum": ["Paris"]}}},
    )
    grammar = tool_call_grammar([spec, ToolSpec("other")])
    assert grammar.startswith('root ::= "<tool_call>\\n" tool-call "\\n</tool_call>"')
    assert "tool-call ::=" in grammar and "\nroot ::=" not in grammar
    llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)  # llama.cpp's parser accepts it
    with pytest.raises(Exception, match="not among the tools"):
        tool_call_grammar([spec], "missing")
    wrapped = wrap_grammar('root ::= "x"', "<", ">")
    assert wrapped.splitlines()[0] == 'root ::= "<" inner ">"'


def test_loopback_and_refusal() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.3.4.5")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.2")
    assert not is_loopback("example.com")
    with pytest.raises(HanlinError, match="without an API key"):
        ServeConfig(host="0.0.0.0").validate()
    ServeConfig(host="0.0.0.0", api_key="k").validate()
    ServeConfig().validate()
    with pytest.raises(HanlinError, match="--parallel"):
        ServeConfig(parallel=0).validate()
    assert ServeConfig(host="0.0.0.0", port=9).base_url == "http://127.0.0.1:9"
    assert ServeConfig(host="::1", port=9).base_url == "http://[::1]:9"


def test_api_key_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "from-env")
    assert resolve_api_key("flag", ServerSettings(api_key="file")) == "flag"
    assert resolve_api_key(None, ServerSettings(api_key="file")) == "file"
    assert resolve_api_key(None, ServerSettings(api_key_env="MY_KEY")) == "from-env"
    monkeypatch.delenv("HANLIN_API_KEY", raising=False)
    assert resolve_api_key(None, ServerSettings()) is None
    assert key_matches("abc", "abc") and not key_matches("abd", "abc")
    assert not key_matches(None, "abc") and not key_matches("", "abc")


def test_scheduler_slots_queue_and_refusal() -> None:
    async def scenario() -> None:
        sched = Scheduler(parallel=1, max_queue=1)
        order: list[str] = []
        release_first = asyncio.Event()

        async def job(name: str, hold: asyncio.Event | None = None) -> None:
            async with sched.slot(CancelToken()):
                order.append(name)
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(job("first", release_first))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(job("second"))
        await asyncio.sleep(0.01)
        assert sched.busy == 1 and sched.waiting == 1
        with pytest.raises(QueueFull) as info:
            await job("third")
        assert info.value.retry_after >= 1
        release_first.set()
        await asyncio.gather(first, second)
        assert order == ["first", "second"]
        assert sched.busy == 0 and sched.waiting == 0

        # a waiting request whose client left gives up its place
        hold = asyncio.Event()
        runner = asyncio.create_task(job("runner", hold))
        await asyncio.sleep(0.01)
        gone = CancelToken()
        waiter = asyncio.create_task(sched.slot(gone).__aenter__())
        await asyncio.sleep(0.01)
        gone.cancel("left")
        with pytest.raises(ClientGone):
            await waiter
        assert sched.waiting == 0
        # shutdown cancels the running one and refuses new ones
        token = CancelToken()

        async def running() -> None:
            async with sched.slot(token):
                await asyncio.sleep(10)

        hold.set()
        await runner
        task = asyncio.create_task(running())
        await asyncio.sleep(0.01)
        sched.shutdown()
        assert token.cancelled
        task.cancel()
        with pytest.raises(ShuttingDown):
            await job("late")

    asyncio.run(scenario())
