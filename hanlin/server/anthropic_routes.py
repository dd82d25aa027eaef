"""The Anthropic dialect: `POST /v1/messages` (and `/v1/messages/count_tokens`).

Enough of the Messages API for the Anthropic SDK and Claude Code
(`ANTHROPIC_BASE_URL=http://127.0.0.1:8080`) to run on a local model: `system`,
text/tool_use/tool_result blocks, `tools` and `tool_choice`, `stop_sequences`,
`temperature`/`top_p`/`top_k`, `thinking` (on/off for models with a switch), and the
streaming events in the documented order (message_start, content_block_start/delta/stop
per block, message_delta, message_stop). A reasoning model's thinking comes back as
`thinking` content blocks. Requests are validated with the `anthropic` package's request
types and answered with its response models.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from anthropic.types import (
    InputJSONDelta,
    Message,
    MessageDeltaUsage,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
    Usage,
)
from anthropic.types import message_create_params as mcp
from anthropic.types.raw_message_delta_event import Delta as MessageDelta
from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hanlin.engine.core.errors import GenerationError
from hanlin.server.common import (
    Held,
    ServerState,
    finish_generation,
    generation_failure,
    hold,
    number,
    read_json,
    start_generation,
    validate,
)
from hanlin.server.errors import ApiError, anthropic_body
from hanlin.server.generation import (
    CallEvent,
    ChatOptions,
    Delta,
    Generation,
    Outcome,
    prepare_chat,
)
from hanlin.server.models import ModelNotFound
from hanlin.server.prompts import Turn, render
from hanlin.server.sse import ManagedStream, sse_event
from hanlin.server.tools import ToolCall, tools_from_anthropic

__all__ = ["count_tokens", "messages"]

_MESSAGES = TypeAdapter(mcp.MessageCreateParamsBase)
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _state(request: Request) -> ServerState:
    return request.app.state.hanlin


def _block_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        else:
            raise ApiError(
                400, f"{where}: `{block.get('type')}` blocks are not supported here (text only)"
            )
    return "\n".join(parts)


def _turns(system: Any, messages: list[Mapping[str, Any]]) -> list[Turn]:
    turns: list[Turn] = []
    if system:
        turns.append(Turn("system", _block_text(system, "system")))
    names: dict[str, str] = {}
    for i, m in enumerate(messages):
        role, content, where = m.get("role"), m.get("content"), f"messages[{i}]"
        if isinstance(content, str):
            turns.append(Turn(role, content))
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in content or ():
            kind = block.get("type")
            if kind == "text":
                texts.append(block.get("text", ""))
            elif kind == "tool_use" and role == "assistant":
                names[block.get("id", "")] = block.get("name", "")
                calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {"name": block.get("name"), "arguments": block.get("input")},
                    }
                )
            elif kind == "tool_result" and role == "user":
                result = _block_text(block.get("content"), where)
                if block.get("is_error"):
                    result = f"Error: {result}"
                call_id = block.get("tool_use_id", "")
                turns.append(
                    Turn("tool", result, {"tool_call_id": call_id, "name": names.get(call_id, "")})
                )
            elif kind in ("thinking", "redacted_thinking"):
                continue  # earlier reasoning is never sent back to the model
            else:
                raise ApiError(400, f"{where}: `{kind}` blocks are not supported by this server")
        if texts or calls or role == "assistant":
            extra = {"tool_calls": calls} if calls else None
            turns.append(Turn(role, "\n".join(texts), extra))
    if not any(t.role != "system" for t in turns):
        raise ApiError(400, "`messages` is empty", param="messages")
    return turns


def _tool_choice(value: Mapping[str, Any] | None) -> str | None:
    if not value:
        return None
    kind = value.get("type")
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind) or (
        value.get("name") if kind == "tool" else "auto"
    )


def _options(params: Mapping[str, Any], body: Mapping[str, Any]) -> ChatOptions:
    # temperature / top_p / top_k: sent by Claude Code and older SDKs, read from the raw
    # body (the current SDK's request type has dropped them)
    thinking = params.get("thinking") or {}
    return ChatOptions(
        turns=_turns(params.get("system"), params.get("messages") or []),
        thinking=thinking.get("type") != "disabled",
        tools=tools_from_anthropic(params.get("tools")),
        tool_choice=_tool_choice(params.get("tool_choice")),
        temperature=number(body, "temperature"),
        top_p=number(body, "top_p"),
        top_k=number(body, "top_k", int),
        max_tokens=params.get("max_tokens"),
        stops=tuple(params.get("stop_sequences") or ()),
    )


def _tool_id(call: ToolCall) -> str:
    return "toolu_" + call.id.removeprefix("call_")


def _usage(o: Outcome) -> Usage:
    return Usage(
        input_tokens=o.prompt_tokens - o.cached_tokens,
        output_tokens=o.completion_tokens,
        cache_read_input_tokens=o.cached_tokens,
        cache_creation_input_tokens=0,
    )


def _stop_reason(o: Outcome) -> str:
    if o.stop_sequence is not None and not o.tool_calls:
        return "stop_sequence"
    return _STOP.get(o.finish, "end_turn")


async def messages(request: Request) -> Response:
    state = _state(request)
    body = await read_json(request)
    body.setdefault("model", "")  # none: the server's default model
    params = validate(_MESSAGES, body)
    opts = _options(params, body)
    held = await hold(state, request, params.get("model"))
    gen, (tokens, _params) = await start_generation(
        held, lambda: prepare_chat(held.served, opts)
    )
    ident = f"msg_{uuid.uuid4().hex[:24]}"
    if body.get("stream"):
        return ManagedStream(_stream(state, held, gen, ident, len(tokens)), held.close)
    o = await finish_generation(held, gen, state)
    content: list[Any] = []
    if o.thinking:
        content.append(ThinkingBlock(type="thinking", thinking=o.thinking, signature=""))
    if o.content or not o.tool_calls:
        content.append(TextBlock(type="text", text=o.content))
    for call in o.tool_calls:
        content.append(
            ToolUseBlock(
                type="tool_use", id=_tool_id(call), name=call.name, input=call.input_object()
            )
        )
    reply = Message(
        id=ident,
        type="message",
        role="assistant",
        model=held.served.id,
        content=content,
        stop_reason=_stop_reason(o),
        stop_sequence=o.stop_sequence,
        usage=_usage(o),
    )
    return Response(reply.model_dump_json(exclude_unset=True), media_type="application/json")


def _event(model: BaseModel) -> bytes:
    name = model.type  # type: ignore[attr-defined]
    return sse_event(name, model.model_dump_json(exclude_unset=True))


async def _stream(
    state: ServerState, held: Held, gen: Generation, ident: str, prompt_tokens: int
) -> AsyncIterator[bytes]:
    start = Message(
        id=ident,
        type="message",
        role="assistant",
        model=held.served.id,
        content=[],
        stop_reason=None,
        stop_sequence=None,
        usage=Usage(input_tokens=prompt_tokens, output_tokens=0),
    )
    yield _event(RawMessageStartEvent(type="message_start", message=start))
    yield sse_event("ping", {"type": "ping"})
    index = -1
    open_kind: str | None = None

    def close() -> bytes:
        return _event(RawContentBlockStopEvent(type="content_block_stop", index=index))

    try:
        async for item in gen.events():
            if isinstance(item, Delta):
                kind = "thinking" if item.kind == "thinking" else "text"
                if open_kind != kind:
                    if open_kind is not None:
                        yield close()
                    index += 1
                    open_kind = kind
                    block: Any = (
                        ThinkingBlock(type="thinking", thinking="", signature="")
                        if kind == "thinking"
                        else TextBlock(type="text", text="")
                    )
                    yield _event(
                        RawContentBlockStartEvent(
                            type="content_block_start", index=index, content_block=block
                        )
                    )
                delta: Any = (
                    ThinkingDelta(type="thinking_delta", thinking=item.text)
                    if kind == "thinking"
                    else TextDelta(type="text_delta", text=item.text)
                )
                yield _event(
                    RawContentBlockDeltaEvent(type="content_block_delta", index=index, delta=delta)
                )
            elif isinstance(item, CallEvent):
                if open_kind is not None:
                    yield close()
                index += 1
                open_kind = None
                call = item.call
                use = ToolUseBlock(type="tool_use", id=_tool_id(call), name=call.name, input={})
                yield _event(
                    RawContentBlockStartEvent(
                        type="content_block_start", index=index, content_block=use
                    )
                )
                partial = InputJSONDelta(
                    type="input_json_delta", partial_json=json.dumps(call.input_object())
                )
                yield _event(
                    RawContentBlockDeltaEvent(
                        type="content_block_delta", index=index, delta=partial
                    )
                )
                yield close()
            elif isinstance(item, Outcome):
                failure = generation_failure(item, state)
                if failure is not None:
                    yield sse_event("error", anthropic_body(failure))
                    return
                if item.finish == "cancelled":
                    return
                if open_kind is not None:
                    yield close()
                elif index < 0:  # an empty reply still has one (empty) text block
                    index = 0
                    yield _event(
                        RawContentBlockStartEvent(
                            type="content_block_start",
                            index=0,
                            content_block=TextBlock(type="text", text=""),
                        )
                    )
                    yield close()
                yield _event(
                    RawMessageDeltaEvent(
                        type="message_delta",
                        delta=MessageDelta(
                            stop_reason=_stop_reason(item), stop_sequence=item.stop_sequence
                        ),
                        usage=MessageDeltaUsage(
                            output_tokens=item.completion_tokens,
                            input_tokens=item.prompt_tokens - item.cached_tokens,
                            cache_read_input_tokens=item.cached_tokens,
                        ),
                    )
                )
                yield _event(RawMessageStopEvent(type="message_stop"))
    finally:
        held.cancel.cancel("the response ended")


async def count_tokens(request: Request) -> Response:
    """`{"input_tokens": N}` for a Messages request, without generating (Claude Code asks)."""
    state = _state(request)
    body = await read_json(request)
    body.setdefault("max_tokens", 1)
    params = validate(_MESSAGES, body)
    opts = _options(params, body)
    try:
        installed = state.pool.lookup(params.get("model"))
    except ModelNotFound as exc:
        raise ApiError(404, str(exc), code="model_not_found") from None
    served = await state.pool.acquire(installed)
    try:
        tokens, _ = await asyncio.to_thread(
            render, served, opts.turns, thinking=opts.thinking, tools=opts.tools
        )
    except GenerationError as exc:
        raise ApiError(400, str(exc)) from None
    finally:
        await state.pool.release(served)
    return JSONResponse({"input_tokens": len(tokens)})
