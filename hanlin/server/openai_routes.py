"""The OpenAI dialect: `/v1/models`, `/v1/chat/completions`, `/v1/completions`.

Requests are validated with the `openai` package's own request types and answered with
its response models (`ChatCompletion`, `ChatCompletionChunk`, `Completion`, `Model`), so
what the SDK parses is what the SDK itself defines. Beyond the official fields, the ones
llama-server and vLLM users send are honoured: `top_k`, `min_p`, `repeat_penalty`,
`chat_template_kwargs.enable_thinking`. Reasoning is `reasoning_content` (in the message,
and in stream deltas), never part of `content`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from openai.types import Completion, CompletionChoice, CompletionUsage, Model
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCall,
)
from openai.types.chat import chat_completion as cc
from openai.types.chat import chat_completion_chunk as chunk_types
from openai.types.chat import completion_create_params as chat_params
from openai.types.chat.chat_completion_message_function_tool_call import Function
from openai.types.completion_create_params import CompletionCreateParamsBase
from openai.types.completion_usage import PromptTokensDetails
from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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
from hanlin.server.errors import ApiError, openai_body
from hanlin.server.generation import (
    CallEvent,
    ChatOptions,
    CompletionOptions,
    Delta,
    Generation,
    Outcome,
    prepare_chat,
    prepare_completion,
)
from hanlin.server.grammars import json_object_grammar, json_schema_grammar
from hanlin.server.prompts import Turn
from hanlin.server.sse import ManagedStream, sse_data
from hanlin.server.tools import tools_from_openai

__all__ = ["chat_completions", "completions", "list_models"]

_CHAT = TypeAdapter(chat_params.CompletionCreateParamsBase)
_COMPLETION = TypeAdapter(CompletionCreateParamsBase)
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


def _state(request: Request) -> ServerState:
    return request.app.state.hanlin


# ---------------------------------------------------------------- /v1/models


async def list_models(request: Request) -> Response:
    state = _state(request)
    current = state.pool.current.id if state.pool.current else None
    data = []
    for m in state.pool.available():
        try:
            created = int(m.path.stat().st_mtime)
        except OSError:
            created = 0
        model = Model(
            id=m.id, created=created, object="model", owned_by="hanlin", loaded=m.id == current
        )
        data.append(model.model_dump(mode="json"))
    return JSONResponse({"object": "list", "data": data})


# ---------------------------------------------------------------- chat


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append(part.get("text", ""))
        elif kind == "refusal":
            parts.append(part.get("refusal", ""))
        else:
            raise ApiError(
                400, f"{where}: `{kind}` content is not supported: this server's models read text"
            )
    return "\n".join(parts)


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return raw
    return raw


def _turns(messages: list[Mapping[str, Any]]) -> list[Turn]:
    if not messages:
        raise ApiError(400, "`messages` is empty", param="messages")
    turns: list[Turn] = []
    names: dict[str, str] = {}
    for i, m in enumerate(messages):
        role = m.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            turns.append(Turn("system", _text(m.get("content"), where)))
        elif role == "user":
            turns.append(Turn("user", _text(m.get("content"), where)))
        elif role == "assistant":
            calls = []
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                names[call.get("id", "")] = fn.get("name", "")
                calls.append(
                    {
                        "id": call.get("id"),
                        "type": "function",
                        "function": {
                            "name": fn.get("name"),
                            "arguments": _arguments(fn.get("arguments")),
                        },
                    }
                )
            extra = {"tool_calls": calls} if calls else None
            turns.append(Turn("assistant", _text(m.get("content"), where), extra))
        elif role in ("tool", "function"):
            call_id = m.get("tool_call_id", "")
            name = m.get("name") or names.get(call_id, "")
            turns.append(
                Turn(
                    "tool", _text(m.get("content"), where), {"tool_call_id": call_id, "name": name}
                )
            )
        else:
            raise ApiError(400, f"{where}: unknown role `{role}`", param=where)
    return turns


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = (value,) if isinstance(value, str) else tuple(value)
    if len(stops) > 16:
        raise ApiError(400, "`stop` takes at most 16 strings", param="stop")
    return stops


def _response_grammar(fmt: Mapping[str, Any] | None) -> str | None:
    if not fmt or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return json_object_grammar()
    if fmt["type"] == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        return json_schema_grammar(schema)
    raise ApiError(
        400, f"response_format `{fmt['type']}` is not supported", param="response_format"
    )


def _thinking(body: Mapping[str, Any]) -> bool:
    kwargs = body.get("chat_template_kwargs")
    if isinstance(kwargs, Mapping) and "enable_thinking" in kwargs:
        return bool(kwargs["enable_thinking"])
    return body.get("reasoning_effort") not in ("none", "minimal")


def _tool_choice(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        name = (value.get("function") or {}).get("name")
        if name:
            return name
    raise ApiError(
        400, "tool_choice must be none, auto, required or a function", param="tool_choice"
    )


def _chat_options(params: Mapping[str, Any], body: Mapping[str, Any]) -> ChatOptions:
    if (params.get("n") or 1) != 1:
        raise ApiError(400, "Only n=1 is supported", param="n")
    if params.get("logprobs") or params.get("top_logprobs"):
        raise ApiError(400, "logprobs are not supported by this server", param="logprobs")
    return ChatOptions(
        turns=_turns(params.get("messages") or []),
        thinking=_thinking(body),
        tools=tools_from_openai(params.get("tools")),
        tool_choice=_tool_choice(params.get("tool_choice")),
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        top_k=number(body, "top_k", int),
        min_p=number(body, "min_p"),
        repeat_penalty=number(body, "repeat_penalty"),
        max_tokens=params.get("max_completion_tokens") or params.get("max_tokens"),
        stops=_stops(params.get("stop")),
        seed=params.get("seed"),
        grammar=_response_grammar(params.get("response_format")),
    )


def _usage(o: Outcome) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=o.prompt_tokens,
        completion_tokens=o.completion_tokens,
        total_tokens=o.prompt_tokens + o.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=o.cached_tokens),
    )


def _tool_call_models(o: Outcome) -> list[ChatCompletionMessageFunctionToolCall]:
    return [
        ChatCompletionMessageFunctionToolCall(
            id=c.id, type="function", function=Function(name=c.name, arguments=c.arguments_json())
        )
        for c in o.tool_calls
    ]


async def chat_completions(request: Request) -> Response:
    state = _state(request)
    body = await read_json(request)
    body.setdefault("model", "")  # none: the server's default model
    params = validate(_CHAT, body)
    opts = _chat_options(params, body)
    held = await hold(state, request, params.get("model"))
    gen, _prepared = await start_generation(held, lambda: prepare_chat(held.served, opts))
    ident = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.get("stream"):
        include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
        stream = _chat_stream(state, held, gen, ident, created, include_usage)
        return ManagedStream(stream, held.close)
    o = await finish_generation(held, gen, state)
    message = ChatCompletionMessage(role="assistant", content=o.content or None)
    if o.tool_calls:
        message.tool_calls = _tool_call_models(o)
    elif not o.content:
        message.content = ""
    if o.thinking is not None:
        message.reasoning_content = o.thinking  # type: ignore[attr-defined]  # extra field
    reply = ChatCompletion(
        id=ident,
        object="chat.completion",
        created=created,
        model=held.served.id,
        choices=[cc.Choice(index=0, message=message, finish_reason=_FINISH.get(o.finish, "stop"))],
        usage=_usage(o),
        system_fingerprint="hanlin",
        timings=o.timings(),
    )
    return Response(reply.model_dump_json(exclude_unset=True), media_type="application/json")


def _chunk(
    ident: str, created: int, model: str, delta: dict[str, Any], finish: str | None
) -> bytes:
    chunk = ChatCompletionChunk(
        id=ident,
        object="chat.completion.chunk",
        created=created,
        model=model,
        system_fingerprint="hanlin",
        choices=[
            chunk_types.Choice(
                index=0, delta=chunk_types.ChoiceDelta(**delta), finish_reason=finish
            )
        ],
    )
    return sse_data(chunk.model_dump_json(exclude_unset=True))


async def _chat_stream(
    state: ServerState,
    held: Held,
    gen: Generation,
    ident: str,
    created: int,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    model = held.served.id
    calls = 0
    yield _chunk(ident, created, model, {"role": "assistant", "content": ""}, None)
    try:
        async for item in gen.events():
            if isinstance(item, Delta):
                key = "content" if item.kind == "answer" else "reasoning_content"
                yield _chunk(ident, created, model, {key: item.text}, None)
            elif isinstance(item, CallEvent):
                call = chunk_types.ChoiceDeltaToolCall(
                    index=calls,
                    id=item.call.id,
                    type="function",
                    function=chunk_types.ChoiceDeltaToolCallFunction(
                        name=item.call.name, arguments=item.call.arguments_json()
                    ),
                )
                calls += 1
                yield _chunk(ident, created, model, {"tool_calls": [call]}, None)
            elif isinstance(item, Outcome):
                failure = generation_failure(item, state)
                if failure is not None:
                    yield sse_data(openai_body(failure))
                    return
                if item.finish == "cancelled":
                    return  # the client left: nobody reads this
                yield _chunk(ident, created, model, {}, _FINISH.get(item.finish, "stop"))
                if include_usage:
                    usage = ChatCompletionChunk(
                        id=ident,
                        object="chat.completion.chunk",
                        created=created,
                        model=model,
                        choices=[],
                        usage=_usage(item),
                        timings=item.timings(),
                    )
                    yield sse_data(usage.model_dump_json(exclude_unset=True))
                yield sse_data("[DONE]")
    finally:
        held.cancel.cancel("the response ended")


# ---------------------------------------------------------------- legacy completions


def _prompt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    raise ApiError(400, "`prompt` must be one string", param="prompt")


async def completions(request: Request) -> Response:
    state = _state(request)
    body = await read_json(request)
    body.setdefault("model", "")  # none: the server's default model
    params = validate(_COMPLETION, body)
    if (params.get("n") or 1) != 1 or (params.get("best_of") or 1) != 1:
        raise ApiError(400, "Only n=1 (and best_of=1) is supported", param="n")
    if params.get("logprobs") or params.get("echo"):
        raise ApiError(400, "logprobs and echo are not supported by this server")
    opts = CompletionOptions(
        prompt=_prompt(params.get("prompt")),
        suffix=params.get("suffix"),
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        top_k=number(body, "top_k", int),
        min_p=number(body, "min_p"),
        repeat_penalty=number(body, "repeat_penalty"),
        max_tokens=params.get("max_tokens"),
        stops=_stops(params.get("stop")),
        seed=params.get("seed"),
        grammar=_response_grammar(body.get("response_format")),
    )
    held = await hold(state, request, params.get("model"))
    gen, (_tokens, _params, template) = await start_generation(
        held, lambda: prepare_completion(held.served, opts)
    )
    ident = f"cmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    headers = {"X-Hanlin-Fim-Template": template} if template else {}
    if body.get("stream"):
        include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
        stream = _completion_stream(state, held, gen, ident, created, include_usage)
        response = ManagedStream(stream, held.close)
        response.headers.update(headers)
        return response
    o = await finish_generation(held, gen, state)
    reply = Completion(
        id=ident,
        object="text_completion",
        created=created,
        model=held.served.id,
        choices=[
            CompletionChoice(
                index=0,
                text=o.content,
                finish_reason="length" if o.finish == "length" else "stop",
                logprobs=None,
            )
        ],
        usage=_usage(o),
        system_fingerprint="hanlin",
    )
    return Response(
        reply.model_dump_json(exclude_unset=True), media_type="application/json", headers=headers
    )


async def _completion_stream(
    state: ServerState,
    held: Held,
    gen: Generation,
    ident: str,
    created: int,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    model = held.served.id

    def chunk(text: str, finish: str | None, usage: CompletionUsage | None = None) -> bytes:
        # model_construct: a stream chunk's finish_reason is null, which the response
        # type (written for whole responses) does not allow
        choices = (
            []
            if usage is not None
            else [
                CompletionChoice.model_construct(
                    index=0, text=text, finish_reason=finish, logprobs=None
                )
            ]
        )
        fields: dict[str, Any] = {"usage": usage} if usage is not None else {}
        item = Completion.model_construct(
            id=ident,
            object="text_completion",
            created=created,
            model=model,
            choices=choices,
            **fields,
        )
        return sse_data(item.model_dump_json(exclude_unset=True))

    try:
        async for item in gen.events():
            if isinstance(item, Delta):
                yield chunk(item.text, None)
            elif isinstance(item, Outcome):
                failure = generation_failure(item, state)
                if failure is not None:
                    yield sse_data(openai_body(failure))
                    return
                if item.finish == "cancelled":
                    return
                yield chunk("", "length" if item.finish == "length" else "stop")
                if include_usage:
                    yield chunk("", None, _usage(item))
                yield sse_data("[DONE]")
    finally:
        held.cancel.cancel("the response ended")
