"""Remote servers that fail: nothing listening, a slow first byte, bad JSON, a stalled stream.

A real server cannot be made to send malformed JSON or to stall on cue, so those
failure modes come from a tiny `http.server` started in the test (a real HTTP server on
a real socket, answering as a broken server would). Unreachable means a port nothing
listens on; a slow first byte, a socket that accepts and never answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from hanlin.engine.chat.stream import ChatMessage
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import Cancelled
from hanlin.engine.remote.chat import INTERRUPTED, stream_remote_chat
from hanlin.engine.remote.client import RemoteClient
from hanlin.engine.remote.endpoint import Endpoint, RemoteTarget
from hanlin.engine.remote.errors import (
    RemoteBusyError,
    RemoteProtocolError,
    RemoteTimeoutError,
    RemoteUnreachableError,
    RemoteUnsupportedError,
)
from hanlin.engine.remote.transport import Timeouts
from tests.support.remote_servers import free_port
from tests.support.stub_server import StubServer, chunk, delta, send_json, sse_head

HI = [ChatMessage("user", "hi")]


@pytest.fixture
def broken() -> Iterator[Callable[[dict[tuple[str, str], Any]], StubServer]]:
    servers: list[StubServer] = []

    def make(routes: dict[tuple[str, str], Any]) -> StubServer:
        servers.append(StubServer(routes))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _target(url: str) -> RemoteTarget:
    return RemoteTarget(Endpoint("broken", url, configured=True), "m")


def test_nothing_listening_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(RemoteUnreachableError) as info:
        RemoteClient(Endpoint("lab", url, configured=True)).models()
    assert "connection refused" in info.value.message
    assert "lab" in info.value.message and info.value.hint
    with pytest.raises(RemoteUnreachableError):
        stream_remote_chat(_target(url), HI)


@pytest.fixture
def silent_socket() -> Iterator[tuple[str, threading.Event]]:
    """Accepts connections, reads the request, never answers; sets the event on hang-up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    hung_up = threading.Event()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while conn.recv(65536):
                    pass
                hung_up.set()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", hung_up
    listener.close()


def test_a_slow_first_byte_times_out(silent_socket: tuple[str, threading.Event]) -> None:
    url, _ = silent_socket
    client = RemoteClient(
        Endpoint("slow", url, configured=True), Timeouts(connect=2, first_byte=0.5, stall=5)
    )
    started = time.monotonic()
    with pytest.raises(RemoteTimeoutError) as info:
        stream_remote_chat(_target(url), HI, client=client)
    assert 0.4 < time.monotonic() - started < 5
    assert "did not start answering within 0.5 s" in info.value.message
    assert "HANLIN_REMOTE_TIMEOUT" in (info.value.hint or "")


def test_cancel_while_waiting_aborts_the_request(
    silent_socket: tuple[str, threading.Event],
) -> None:
    url, hung_up = silent_socket
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel, args=("stopped",)).start()
    started = time.monotonic()
    reply = stream_remote_chat(_target(url), HI, cancel=cancel)
    assert time.monotonic() - started < 2
    assert reply.stats.stop_reason == "cancelled" and reply.content == ""
    assert hung_up.wait(3), "the client must close its connection when cancelled"
    with pytest.raises(Cancelled):
        RemoteClient(Endpoint("x", url)).models(cancel)  # an already-cancelled token


def test_malformed_json_is_a_clear_error(broken) -> None:
    def not_json(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        h.wfile.write(b"{not json at all")

    def bad_first_chunk(h: BaseHTTPRequestHandler) -> None:
        sse_head(h)
        chunk(h, "{oops")

    server = broken(
        {("GET", "/v1/models"): not_json, ("POST", "/v1/chat/completions"): bad_first_chunk}
    )
    with pytest.raises(RemoteProtocolError) as info:
        RemoteClient(Endpoint("odd", server.url, configured=True)).models()
    assert "not JSON" in info.value.message and "{not json at all" in info.value.message
    assert "OpenAI-compatible" in (info.value.hint or "")
    with pytest.raises(RemoteProtocolError):
        stream_remote_chat(_target(server.url), HI)


def test_bad_json_mid_answer_keeps_the_partial_answer(broken) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        sse_head(h)
        chunk(h, delta("Hello, "))
        chunk(h, delta("wor"))
        chunk(h, "{truncated")

    server = broken({("POST", "/v1/chat/completions"): answer})
    events: list[str] = []
    reply = stream_remote_chat(_target(server.url), HI, on_event=lambda e: events.append(e.text))
    assert reply.content == "Hello, wor" and "".join(events) == "Hello, wor"
    assert reply.stats.stop_reason == INTERRUPTED
    assert "not JSON" in (reply.stats.error or "")


def test_a_stalled_stream_keeps_the_partial_answer(broken) -> None:
    release = threading.Event()

    def stall(h: BaseHTTPRequestHandler) -> None:
        sse_head(h)
        chunk(h, delta("Half an"))
        release.wait(10)

    server = broken({("POST", "/v1/chat/completions"): stall})
    client = RemoteClient(
        Endpoint("stall", server.url, configured=True), Timeouts(connect=2, first_byte=5, stall=0.5)
    )
    try:
        reply = stream_remote_chat(_target(server.url), HI, client=client)
    finally:
        release.set()
    assert reply.content == "Half an"
    assert reply.stats.stop_reason == INTERRUPTED
    assert "stopped sending" in (reply.stats.error or "")


def test_a_stream_without_an_end_is_marked(broken) -> None:
    def cut(h: BaseHTTPRequestHandler) -> None:
        sse_head(h)
        chunk(h, delta("Cut here"))  # then the connection closes: no finish_reason, no [DONE]

    server = broken({("POST", "/v1/chat/completions"): cut})
    reply = stream_remote_chat(_target(server.url), HI)
    assert reply.content == "Cut here" and reply.stats.stop_reason == INTERRUPTED


def test_a_server_that_does_not_stream_still_answers(broken) -> None:
    def whole(h: BaseHTTPRequestHandler) -> None:
        body = {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "All at once."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4},
        }
        send_json(h, 200, body)

    server = broken({("POST", "/v1/chat/completions"): whole})
    reply = stream_remote_chat(_target(server.url), HI)
    assert reply.content == "All at once." and reply.stats.stop_reason == "stop"
    assert (reply.stats.prompt_tokens, reply.stats.generated_tokens) == (5, 4)


def test_busy_and_missing_routes(broken) -> None:
    def busy(h: BaseHTTPRequestHandler) -> None:
        send_json(h, 503, {"error": {"message": "queue full"}}, Retry_After="7")

    server = broken({("POST", "/v1/chat/completions"): busy})
    with pytest.raises(RemoteBusyError) as info:
        stream_remote_chat(_target(server.url), HI)
    assert info.value.retry_after == 7 and "queue full" in info.value.message
    assert info.value.hint == "try again in 7 s"
    with pytest.raises(RemoteUnsupportedError) as missing:
        RemoteClient(Endpoint("odd", server.url)).models()
    assert "/v1/models" in missing.value.message
