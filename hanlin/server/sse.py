"""Server-sent events: the wire format both APIs stream in, and a response that cleans up.

`ManagedStream` is a `StreamingResponse` that runs its cleanup (release the parallel
slot, the model, the disconnect watcher) however the response ends: finished, the client
gone before the first byte, or the server stopping. A plain async generator's `finally`
would not run if the response was never iterated.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["SSE_HEADERS", "ManagedStream", "sse_data", "sse_event"]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_data(payload: str | dict[str, Any]) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def sse_event(name: str, payload: str | dict[str, Any]) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"event: {name}\ndata: {text}\n\n".encode()


class ManagedStream(StreamingResponse):
    def __init__(
        self, content: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._cleanup = cleanup
        self._content = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self._content, "aclose", None)
            if aclose is not None:
                await aclose()
            await self._cleanup()
