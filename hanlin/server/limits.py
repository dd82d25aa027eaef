"""The request-body cap: 413 for a body larger than the server accepts.

Checked twice: against `Content-Length` before anything is read, and while the body
streams in (a chunked upload has no length), so a client cannot make the server buffer
an unbounded body. A refused request never reaches a route.

Before the 413 goes out, the rest of the upload is read and thrown away (up to
`DRAIN_MAX_BYTES` and `DRAIN_SECONDS`, as nginx's lingering close): a server that closes
the connection while the client is still sending makes the client's TCP stack reset it,
and the client then never reads the 413 — it sees "connection closed" instead of the
reason.
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hanlin.server.errors import ApiError, anthropic_body, is_anthropic_path, openai_body

__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]

#: at most this much of a refused upload is read (and discarded) before the 413
DRAIN_MAX_BYTES = 64 * 1024 * 1024
#: ...and for at most this long
DRAIN_SECONDS = 5.0


async def _drain(receive: Receive, budget: int) -> None:
    """Read and discard the request body until it ends or the drain limits are reached."""
    deadline = time.monotonic() + DRAIN_SECONDS
    read = 0
    while read <= budget:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), left)
        except (TimeoutError, OSError):
            return
        if message["type"] != "http.request":
            return  # the client went away
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class BodyTooLarge(Exception):
    """Raised from `receive` once the body passes the cap (turned into a 413)."""


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self, scope: Scope) -> bytes:
        mib = self.max_bytes / (1024 * 1024)
        err = ApiError(413, f"The request body is larger than this server accepts ({mib:g} MiB)")
        body = anthropic_body(err) if is_anthropic_path(scope["path"]) else openai_body(err)
        return json.dumps(body).encode()

    async def _refuse(self, scope: Scope, send: Send) -> None:
        data = self._error(scope)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    if declared <= DRAIN_MAX_BYTES:
                        await _drain(receive, declared)
                    await self._refuse(scope, send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _drain(receive, DRAIN_MAX_BYTES)
                await self._refuse(scope, send)
