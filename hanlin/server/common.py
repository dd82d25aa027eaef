"""What every generating route does: read and validate the body, hold a slot and the
model, watch for the client leaving, and turn engine errors into API errors.

Request bodies are validated against the official SDKs' own request types
(`openai.types.chat.CompletionCreateParams…`, `anthropic.types.MessageCreateParams…`)
with pydantic, so a malformed request gets the field and the reason in a 400, without a
schema written by hand here. Fields beyond the official API that local servers accept
(`top_k`, `min_p`, `repeat_penalty`, `chat_template_kwargs`) are read from the raw body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import GenerationError, HanlinError, ModelLoadError
from hanlin.server.errors import ApiError
from hanlin.server.generation import Generation, Outcome
from hanlin.server.limits import BodyTooLarge
from hanlin.server.models import ModelNotFound, ModelPool, ServedModel
from hanlin.server.scheduler import ClientGone, QueueFull, Scheduler, ShuttingDown

__all__ = ["Held", "ServerState", "hold", "number", "read_json", "validate"]


@dataclass
class ServerState:
    pool: ModelPool
    scheduler: Scheduler
    api_key: str | None = None
    base_url: str = ""


async def read_json(request: Request) -> dict[str, Any]:
    try:
        raw = await request.body()
    except BodyTooLarge:
        raise
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return body


def _materialize(value: Any) -> Any:
    """pydantic validates `Iterable[...]` fields lazily: make them lists (validating them)."""
    if isinstance(value, BaseModel):  # the SDKs' unions also accept their response models
        return _materialize(value.model_dump(exclude_unset=True))
    if isinstance(value, Mapping):
        return {k: _materialize(v) for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if isinstance(value, Iterable):
        return [_materialize(v) for v in value]
    return value


def validate(adapter: TypeAdapter[Any], body: dict[str, Any]) -> dict[str, Any]:
    try:
        return _materialize(adapter.validate_python(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(
            str(p) for p in first.get("loc", ()) if not str(p).startswith("typed-dict")
        )
        raise ApiError(
            400, f"Invalid request: {where or 'body'}: {first.get('msg')}", param=where or None
        ) from None


def number(body: Mapping[str, Any], key: str, kind: type = float) -> Any:
    """An optional numeric field outside the official schema (`top_k`, `min_p`, …)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"`{key}` must be a number", param=key)
    return kind(value)


class Held:
    """A slot and a model, held for one request (released by `close`)."""

    def __init__(self, served: ServedModel, cancel: CancelToken, stack: AsyncExitStack) -> None:
        self.served = served
        self.cancel = cancel
        self._stack = stack

    async def close(self) -> None:
        await self._stack.aclose()


async def _watch_disconnect(request: Request, cancel: CancelToken) -> None:
    """Cancel the generation the moment the client goes away."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.cancel("the client disconnected")
            return


async def hold(state: ServerState, request: Request, model_name: str | None) -> Held:
    """Resolve the model, wait for a slot, load the model if needed. Raises ApiError."""
    try:
        installed = state.pool.lookup(model_name)
    except ModelNotFound as exc:
        raise ApiError(404, str(exc), code="model_not_found", param="model") from None
    cancel = CancelToken()
    stack = AsyncExitStack()
    watcher = asyncio.create_task(_watch_disconnect(request, cancel))

    async def stop_watching() -> None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher

    stack.push_async_callback(stop_watching)
    try:
        await stack.enter_async_context(state.scheduler.slot(cancel))
        served = await state.pool.acquire(installed)
        stack.push_async_callback(state.pool.release, served)
    except QueueFull as exc:
        await stack.aclose()
        raise ApiError(
            503,
            f"The server is busy ({state.scheduler.parallel} requests generating, "
            f"{state.scheduler.waiting} waiting)",
            code="server_busy",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except ShuttingDown:
        await stack.aclose()
        raise ApiError(503, "The server is shutting down", code="shutting_down") from None
    except ClientGone:
        await stack.aclose()
        raise ApiError(499, "The client went away") from None
    except ModelLoadError as exc:
        await stack.aclose()
        raise ApiError(
            500, f"Could not load `{installed.id}`: {exc}", code="model_load_failed"
        ) from None
    except HanlinError as exc:
        await stack.aclose()
        raise ApiError(500, str(exc)) from None
    except BaseException:
        await stack.aclose()
        raise
    return Held(served, cancel, stack)


async def guarded(held: Held, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work` (prompt preparation) mapping engine errors to 400/500."""
    try:
        return await work()
    except ApiError:
        raise
    except GenerationError as exc:  # a broken template, a prompt that does not fit
        raise ApiError(400, str(exc)) from None
    except HanlinError as exc:
        raise ApiError(500, str(exc)) from None


async def start_generation(
    held: Held, prepare: Callable[[], Awaitable[Any]]
) -> tuple[Generation, Any]:
    """Prepare the prompt (`guarded`) and start generating it; returns the generation and
    what `prepare` returned (tokens, parameters, ...). The held slot is released if either
    step fails, so a bad request never keeps a slot."""
    try:
        prepared = await guarded(held, prepare)
        generation = Generation(held.served, prepared[0], prepared[1], held.cancel)
        generation.start()
    except BaseException:
        await held.close()
        raise
    return generation, prepared


def generation_failure(outcome: Outcome, state: ServerState) -> ApiError | None:
    """The error a finished generation must be reported as, if any (either dialect)."""
    if outcome.finish == "error":
        return ApiError(500, f"Generation failed: {outcome.error}")
    if outcome.finish == "cancelled" and state.scheduler.closing:
        return ApiError(503, "The server is shutting down", code="shutting_down")
    return None


async def finish_generation(held: Held, generation: Generation, state: ServerState) -> Outcome:
    """Wait for a non-streamed answer, release the slot, and raise its failure if any."""
    try:
        outcome = await generation.outcome()
    finally:
        held.cancel.cancel("done")
        await held.close()
    failure = generation_failure(outcome, state)
    if failure is not None:
        raise failure
    return outcome
