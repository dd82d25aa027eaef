"""A tiny real HTTP server whose routes answer as a test says: a broken or a recording server.

For what no real server does on cue — malformed JSON, a stream that stalls or ends early,
a 503 with Retry-After — and to see exactly what Hanlin sends where the real server cannot
run here (vLLM needs a GPU). It is a real `http.server` on a real socket; only its answers
are scripted. Each request's method, path, headers and JSON body are recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Recorded", "StubServer", "chunk", "delta", "send_json", "sse_head"]

Reply = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def sse_head(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.end_headers()


def chunk(handler: BaseHTTPRequestHandler, text: str) -> None:
    handler.wfile.write(f"data: {text}\n\n".encode())
    handler.wfile.flush()


def delta(content: str, finish: str | None = None) -> str:
    return json.dumps(
        {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
    )


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any, **headers: str) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(data)


class StubServer:
    """Serves `routes[(method, path)]` on 127.0.0.1 (404 for anything else) until closed."""

    def __init__(self, routes: dict[tuple[str, str], Reply]) -> None:
        self.routes = routes
        self.requests: list[Recorded] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                stub.requests.append(Recorded(method, self.path, dict(self.headers), body))
                reply = stub.routes.get((method, self.path))
                if reply is None:
                    self.send_error(404)
                    return
                reply(self)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.root + "/v1"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> StubServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
