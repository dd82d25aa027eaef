"""hanlin.lsp_server.transport: the read loop re-synchronises after malformed input (in-process)."""

from __future__ import annotations

import asyncio
import io
import json
import threading

from pygls.lsp.server import LanguageServer

from hanlin.lsp_server.transport import read_messages
from tests.lsp_server.harness import frame, raw_message


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)

    async def readline(self) -> bytes:
        return self._stream.readline()

    async def readexactly(self, n: int) -> bytes:
        return self._stream.read(n)


class _Writer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        pass


def _responses(data: bytes) -> dict[object, dict]:
    out = {}
    while data:
        header, _, rest = data.partition(b"\r\n\r\n")
        length = int(header.split(b"Content-Length:")[1].split(b"\r\n")[0])
        message = json.loads(rest[:length])
        out[message.get("id")] = message
        data = rest[length:]
    return out


def test_resynchronises_after_garbage() -> None:
    server = LanguageServer("t", "1")
    seen: list[str] = []

    @server.feature("custom/echo")
    def echo(ls: LanguageServer, params: object) -> str:
        seen.append("echo")
        return "ok"

    writer = _Writer()
    server.protocol.set_writer(writer)
    stream = b"".join(
        [
            b"Content-Length: nope\r\n\r\n{}",  # junk glued to the next header line
            b'Content-Length: 4\r\n\r\n{"jsonrpc": "2.0"}',  # shorter than the body
            frame(b"{broken"),
            b"Garbage-Line\r\n\r\n",
            b"Content-Length: 999999999999\r\n\r\n",  # absurd length is refused
            raw_message({"jsonrpc": "2.0", "id": 1, "method": "custom/echo"}),  # no params
            raw_message({"jsonrpc": "1.0", "id": 2, "method": "custom/echo", "params": {}}),
            raw_message({"jsonrpc": "2.0", "id": 3, "method": "no/such", "params": {}}),
            raw_message({"jsonrpc": "2.0", "id": 4, "method": "custom/echo", "params": {}}),
        ]
    )
    asyncio.run(read_messages(threading.Event(), _Reader(stream), server.protocol))
    answers = _responses(writer.data)
    assert answers[1]["result"] == "ok"
    assert answers[2]["error"]["code"] == -32600
    assert answers[3]["error"]["code"] == -32601
    assert answers[4]["result"] == "ok"
    assert seen == ["echo", "echo"]
