"""HTTP to a remote server: cancellable from any thread, with timeouts that mean something.

Why not plain synchronous httpx: a blocking socket read cannot be interrupted from
another thread (closing the socket does not wake a `recv` on Linux), yet Stop in the
window, Ctrl-C in the terminal and a newer keystroke in the editor must abort a
request *now* — and the server must see the connection close, so it stops generating.
So every request runs as a task on one shared asyncio loop (a daemon thread,
started on first use) with `httpx.AsyncClient`; the calling thread waits on a queue
and, when its `CancelToken` flips, cancels the task, which closes the connection.
Engine callers stay synchronous, like the rest of the engine.

Timeouts: connecting (`connect`), the first byte of the answer (`first_byte`: a server
may queue the request or read a long prompt first) and the gap between two streamed
chunks (`stall`), each its own error: unreachable, slow to start, stalled mid-answer.
`HANLIN_REMOTE_TIMEOUT` (seconds) sets the first-byte limit. One `AsyncClient` per
(server, key) is kept for the process, so the language server's keystroke-rate
requests reuse their connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource

from hanlin import __version__
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import Cancelled
from hanlin.engine.remote.endpoint import Endpoint
from hanlin.engine.remote.errors import (
    RemoteAuthError,
    RemoteBusyError,
    RemoteDisconnectedError,
    RemoteError,
    RemoteHTTPError,
    RemoteProtocolError,
    RemoteTimeoutError,
    RemoteUnreachableError,
    RemoteUnsupportedError,
)

__all__ = ["DeadlineExceeded", "Timeouts", "Transport", "default_timeouts"]

T = TypeVar("T")

#: how often a waiting caller looks at its cancel token (seconds)
POLL_S = 0.02
#: how long a server may take to start answering, unless HANLIN_REMOTE_TIMEOUT says otherwise
FIRST_BYTE_S = 120.0
#: request bodies are small (a chat, a completion prompt); answers may be long streams
_WRITE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Limits for one request, in seconds; `total` (None = none) caps the whole request."""

    connect: float = 10.0
    first_byte: float = 120.0  # FIRST_BYTE_S
    stall: float = 60.0
    total: float | None = None


def default_timeouts() -> Timeouts:
    """The defaults, with `HANLIN_REMOTE_TIMEOUT` (seconds) as the first-byte limit."""
    raw = os.environ.get("HANLIN_REMOTE_TIMEOUT", "").strip()
    try:
        first = float(raw) if raw else FIRST_BYTE_S
    except ValueError:
        first = FIRST_BYTE_S
    return Timeouts(first_byte=first if first > 0 else FIRST_BYTE_S)


class _IoLoop:
    """The process's one asyncio loop for remote I/O, on a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[tuple[str, str | None, float], httpx.AsyncClient] = {}
        #: one TLS context for every client: building one reads the CA bundle (~0.1 s)
        self._ssl: ssl.SSLContext | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name="hanlin-remote-io", daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop

    def client(self, endpoint: Endpoint, connect_s: float) -> httpx.AsyncClient:
        """The shared client for a server and key (called on the loop thread only)."""
        key = (endpoint.root, endpoint.api_key, connect_s)
        client = self._clients.get(key)
        if client is None or client.is_closed:
            headers = {"User-Agent": f"hanlin/{__version__}", "Accept": "application/json"}
            if endpoint.api_key:
                headers["Authorization"] = f"Bearer {endpoint.api_key}"
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()  # certifi, or SSL_CERT_FILE / _DIR
            client = httpx.AsyncClient(
                headers=headers,
                verify=self._ssl,
                timeout=httpx.Timeout(
                    connect=connect_s, read=None, write=_WRITE_TIMEOUT_S, pool=connect_s
                ),
                follow_redirects=False,
            )
            self._clients[key] = client
        return client


_IO = _IoLoop()

_END = object()


def _run_cancellable(
    make: Callable[[], Awaitable[T]], cancel: CancelToken, deadline: float | None
) -> T:
    """Run a coroutine on the I/O loop; the caller's cancel token (or deadline) aborts it."""
    loop = _IO.loop()
    done = threading.Event()

    async def runner() -> T:
        try:
            return await make()
        finally:
            done.set()

    future = asyncio.run_coroutine_threadsafe(runner(), loop)
    while not done.wait(POLL_S):
        if cancel.cancelled or (deadline is not None and time.monotonic() >= deadline):
            future.cancel()
            done.wait(2.0)  # the task closes its connection before we report
            if cancel.cancelled:
                raise Cancelled(cancel.reason or "Cancelled.")
            raise _deadline_error()
    return future.result()


def _stream_cancellable(
    make: Callable[[], AsyncIterator[T]], cancel: CancelToken, deadline: float | None
) -> Iterator[T]:
    """Iterate an async generator from the I/O loop in the calling thread.

    Leaving the loop early (a `break`, an exception, a cancel) cancels the task, which
    closes the HTTP connection: the server sees the client go.
    """
    loop = _IO.loop()
    items: queue.SimpleQueue[tuple[object, Any]] = queue.SimpleQueue()
    done = threading.Event()

    async def pump() -> None:
        try:
            async for item in make():
                items.put((None, item))
            items.put((_END, None))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            items.put((_END, exc))
        finally:
            done.set()

    future = asyncio.run_coroutine_threadsafe(pump(), loop)
    try:
        while True:
            if cancel.cancelled:
                raise Cancelled(cancel.reason or "Cancelled.")
            if deadline is not None and time.monotonic() >= deadline:
                raise _deadline_error()
            try:
                marker, value = items.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if marker is _END:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        if not future.done():
            future.cancel()
            done.wait(2.0)


class DeadlineExceeded(RemoteTimeoutError):
    """The caller's overall time budget ran out (the language server's per-request budget)."""


def _deadline_error() -> RemoteTimeoutError:
    return DeadlineExceeded("The request ran out of its time budget", None)


def _server_message(body: bytes) -> str:
    """The error text a server put in its body (OpenAI, llama-server, FastAPI shapes)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return _snippet(text)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
        for key in ("detail", "message"):
            if isinstance(data.get(key), str):
                return data[key]
    return _snippet(text)


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(headers: httpx.Headers) -> float | None:
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


class Transport:
    """Requests to one endpoint; blocking, cancellable, with the errors of errors.py."""

    def __init__(self, endpoint: Endpoint, timeouts: Timeouts | None = None) -> None:
        self.endpoint = endpoint
        self.timeouts = timeouts or default_timeouts()

    # -- public, blocking ------------------------------------------------------------

    def get_json(
        self, path: str, *, root: bool = False, cancel: CancelToken | None = None
    ) -> Any:
        """GET a JSON document (`path` under `api_base`, or under `root` with root=True)."""
        url = self._url(path, root)
        return _run_cancellable(
            lambda: self._request_json("GET", url, None),
            cancel or NEVER_CANCELLED,
            self._deadline(),
        )

    def post_json(
        self,
        path: str,
        body: dict[str, Any],
        *,
        root: bool = False,
        cancel: CancelToken | None = None,
    ) -> Any:
        """POST a JSON body and decode the JSON answer."""
        url = self._url(path, root)
        return _run_cancellable(
            lambda: self._request_json("POST", url, body),
            cancel or NEVER_CANCELLED,
            self._deadline(),
        )

    def stream(
        self,
        path: str,
        body: dict[str, Any],
        *,
        root: bool = False,
        cancel: CancelToken | None = None,
        deadline: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """POST and iterate the JSON objects of the Server-Sent Events answer.

        A server that answers plain JSON instead of a stream yields that one object.
        `deadline` (a `time.monotonic()` value) overrides `timeouts.total`.
        """
        url = self._url(path, root)
        return _stream_cancellable(
            lambda: self._events(url, body),
            cancel or NEVER_CANCELLED,
            deadline if deadline is not None else self._deadline(),
        )

    def warm(self) -> None:
        """Create the shared client now (its TLS setup takes ~0.1 s), e.g. before timing."""

        async def make() -> None:
            _IO.client(self.endpoint, self.timeouts.connect)

        _run_cancellable(make, NEVER_CANCELLED, None)

    # -- internals (on the I/O loop) ---------------------------------------------------

    def _url(self, path: str, root: bool) -> str:
        base = self.endpoint.root if root else self.endpoint.api_base
        return base + "/" + path.lstrip("/")

    def _deadline(self) -> float | None:
        total = self.timeouts.total
        return time.monotonic() + total if total else None

    async def _send(self, method: str, url: str, body: dict[str, Any] | None) -> httpx.Response:
        client = _IO.client(self.endpoint, self.timeouts.connect)
        request = client.build_request(method, url, json=body)
        try:
            return await asyncio.wait_for(
                client.send(request, stream=True), self.timeouts.first_byte
            )
        except (TimeoutError, httpx.ReadTimeout):
            raise RemoteTimeoutError(
                f"{self.endpoint.label} did not start answering within "
                f"{self.timeouts.first_byte:g} s",
                "the server may be busy or still loading the model; try again, or raise "
                "HANLIN_REMOTE_TIMEOUT (seconds)",
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
            raise RemoteUnreachableError(
                f"Cannot reach {self.endpoint.label}: {_reason(exc)}",
                "check the address and that the server is running "
                f"(`curl {self.endpoint.api_base}/models`)",
            ) from None
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            raise RemoteUnreachableError(
                f"{self.endpoint.label} closed the connection before answering: {_reason(exc)}",
                "is this an HTTP server? Check the address and the port",
            ) from None
        except httpx.HTTPError as exc:
            raise RemoteUnreachableError(
                f"Cannot talk to {self.endpoint.label}: {_reason(exc)}", None
            ) from None

    async def _read_body(self, response: httpx.Response) -> bytes:
        try:
            return await asyncio.wait_for(response.aread(), self.timeouts.stall)
        except TimeoutError:
            raise RemoteDisconnectedError(
                f"{self.endpoint.label} stopped sending its answer (nothing for "
                f"{self.timeouts.stall:g} s)",
                "try again",
            ) from None
        except httpx.HTTPError as exc:
            raise RemoteDisconnectedError(
                f"The connection to {self.endpoint.label} broke during the answer: "
                f"{_reason(exc)}",
                "try again",
            ) from None

    def _status_error(self, response: httpx.Response, body: bytes) -> RemoteError:
        status = response.status_code
        message = _server_message(body)
        label = self.endpoint.label
        said = f": {message}" if message else ""
        if status in (401, 403):
            return RemoteAuthError(
                f"{label} refused the request (HTTP {status}{said})", self.endpoint.key_hint()
            )
        if status in (429, 503):
            wait = _retry_after(response.headers)
            hint = f"try again in {wait:g} s" if wait is not None else "try again in a moment"
            return RemoteBusyError(f"{label} is busy (HTTP {status}{said})", hint, wait)
        path = response.request.url.path
        if status in (404, 405, 501) and "model" not in message.lower():
            return RemoteUnsupportedError(
                f"{label} does not offer {path} (HTTP {status}{said})",
                "is this an OpenAI-compatible server? Its base URL usually ends in /v1",
            )
        return RemoteHTTPError(f"{label} answered HTTP {status}{said}", None, status)

    def _decode(self, body: bytes, url: str) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            raise RemoteProtocolError(
                f"{self.endpoint.label} sent something that is not JSON for {url}: "
                f"{_snippet(body.decode('utf-8', 'replace')) or '(empty)'}",
                "is this an OpenAI-compatible server? Its base URL usually ends in /v1",
            ) from None

    async def _request_json(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        response = await self._send(method, url, body)
        try:
            data = await self._read_body(response)
        finally:
            await response.aclose()
        if response.status_code >= 400:
            raise self._status_error(response, data)
        return self._decode(data, url)

    async def _events(self, url: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        started = time.monotonic()
        response = await self._send("POST", url, body)
        try:
            if response.status_code >= 400:
                raise self._status_error(response, await self._read_body(response))
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                whole = self._decode(await self._read_body(response), url)
                if not isinstance(whole, dict):
                    raise self._not_an_object(whole)
                yield whole
                return
            events = EventSource(response).aiter_sse()
            first = True
            while True:
                if first:  # the headers and the first chunk share the first-byte limit
                    wait = max(0.05, self.timeouts.first_byte - (time.monotonic() - started))
                else:
                    wait = self.timeouts.stall
                try:
                    event = await asyncio.wait_for(anext(events), wait)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if first:
                        raise RemoteTimeoutError(
                            f"{self.endpoint.label} did not start answering within "
                            f"{self.timeouts.first_byte:g} s",
                            "the server may be busy; try again, or raise HANLIN_REMOTE_TIMEOUT",
                        ) from None
                    raise RemoteDisconnectedError(
                        f"{self.endpoint.label} stopped sending its answer (nothing for "
                        f"{wait:g} s)",
                        "try again",
                    ) from None
                except httpx.HTTPError as exc:
                    raise RemoteDisconnectedError(
                        f"The connection to {self.endpoint.label} broke during the answer: "
                        f"{_reason(exc)}",
                        "check that the server is still running, then try again",
                    ) from None
                data = event.data.strip()
                if not data:
                    continue
                if data == "[DONE]":
                    return
                try:
                    obj = json.loads(data)
                except ValueError:
                    raise RemoteProtocolError(
                        f"{self.endpoint.label} sent a streamed chunk that is not JSON: "
                        f"{_snippet(data)}",
                        "is this an OpenAI-compatible server?",
                    ) from None
                if not isinstance(obj, dict):
                    raise self._not_an_object(obj)
                if "error" in obj and not obj.get("choices"):
                    raise RemoteHTTPError(
                        f"{self.endpoint.label} reported an error during the answer: "
                        f"{_server_message(data.encode())}",
                        None,
                    )
                first = False
                yield obj
        finally:
            with contextlib.suppress(Exception):
                await response.aclose()

    def _not_an_object(self, value: Any) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"{self.endpoint.label} sent JSON of an unexpected shape: "
            f"{_snippet(json.dumps(value))}",
            "is this an OpenAI-compatible server?",
        )


def _reason(exc: BaseException) -> str:
    """The most specific words an httpx error carries (the OS error for a refused connect)."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for err in reversed(chain):
        if isinstance(err, ConnectionRefusedError):
            return "connection refused (nothing is listening on that port)"
        if isinstance(err, socket.gaierror):
            return f"unknown host ({err.strerror or err})"
        if isinstance(err, (TimeoutError, httpx.TimeoutException)):
            return "no answer in time"
        if isinstance(err, OSError) and err.strerror:
            return err.strerror.lower()
    return next((str(e).strip() for e in chain if str(e).strip()), type(exc).__name__)
