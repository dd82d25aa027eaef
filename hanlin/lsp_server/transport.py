"""The JSON-RPC read loop, hardened against malformed input.

pygls' own loop (`pygls.io_.run_async`) stops at nothing, but it cannot
re-synchronise: after a header with a bad `Content-Length`, or a body
shorter than announced, the rest of that body is read as header lines and
glued to the *next* message's `Content-Length` line, so one bad message also
loses the following good one. This loop

- finds `Content-Length:` anywhere in a header line (so junk left over from a
  broken message does not hide the next header),
- ignores header lines it does not understand and absurd lengths,
- answers a request whose parameters do not fit the method with an
  InvalidParams error instead of leaving the client waiting,
- never lets one message's failure end the loop.

Only end-of-input (the client closed the pipe or the socket) ends it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest
from pygls.protocol import JsonRPCProtocol

__all__ = ["MAX_MESSAGE_BYTES", "read_messages"]

log = logging.getLogger(__name__)

#: a bigger body is refused (a 5 MB document arrives as ~5–10 MB of JSON)
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

_CONTENT_LENGTH = re.compile(rb"Content-Length:[ \t]*(\d+)", re.IGNORECASE)


class AsyncReader(Protocol):
    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...


ErrorHandler = Callable[[Exception, type[JsonRpcException]], Any]


async def read_messages(
    stop_event: threading.Event,
    reader: AsyncReader,
    protocol: JsonRPCProtocol,
    error_handler: ErrorHandler | None = None,
) -> None:
    """Read framed messages from `reader` and hand them to `protocol` until EOF."""
    content_length: int | None = None
    while not stop_event.is_set():
        header = await reader.readline()
        if not header:
            break
        if header.strip():
            match = _CONTENT_LENGTH.search(header)
            if match:
                length = int(match.group(1))
                if length > MAX_MESSAGE_BYTES:
                    log.warning("ignoring a message announced as %d bytes", length)
                    content_length = None
                else:
                    content_length = length
            elif not header.lower().startswith(b"content-type"):
                log.warning("ignoring a malformed header line: %r", header[:200])
            continue
        # an empty line ends the headers
        if not content_length:
            continue
        body = await reader.readexactly(content_length)
        content_length = None
        if not body:
            break
        _dispatch(body, protocol, error_handler)


def _dispatch(body: bytes, protocol: JsonRPCProtocol, error_handler: ErrorHandler | None) -> None:
    try:
        raw = json.loads(body)
    except ValueError as exc:
        log.warning("ignoring a message that is not JSON (%s): %r", exc, body[:200])
        return
    if not isinstance(raw, dict) or raw.get("jsonrpc") != JsonRPCProtocol.VERSION:
        log.warning("ignoring a message that is not JSON-RPC 2.0: %r", body[:200])
        if isinstance(raw, dict) and "id" in raw and "method" in raw:
            _reply_error(protocol, raw["id"], JsonRpcInvalidRequest("Not a JSON-RPC 2.0 request"))
        return
    if "method" in raw and "params" not in raw:
        raw["params"] = None  # JSON-RPC allows omitting params; pygls' types want the key
    try:
        # pygls' loop passes structure_message as json's object_hook, where it
        # returns every inner object unchanged: structuring the top level is the same
        message = protocol.structure_message(raw)
    except JsonRpcException as exc:
        log.warning("could not read %s: %s", raw.get("method"), exc)
        if "id" in raw and "method" in raw:
            _reply_error(protocol, raw["id"], exc)
        return
    except Exception as exc:
        log.exception("could not read a message")
        if "id" in raw and "method" in raw:
            _reply_error(protocol, raw["id"], JsonRpcInvalidRequest(str(exc)))
        return
    try:
        protocol.handle_message(message)
    except Exception as exc:
        log.exception("unable to handle a message")
        if error_handler is not None:
            error_handler(exc, JsonRpcException)


def _reply_error(protocol: JsonRPCProtocol, msg_id: Any, error: JsonRpcException) -> None:
    if not isinstance(msg_id, int | str) or isinstance(msg_id, bool):
        return
    try:
        protocol._send_response(msg_id, None, error.to_response_error())
    except Exception:
        log.exception("could not send an error response")
