"""The `hanlin-lsp` command line: --version, --tcp, --log-file."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.lsp_server.harness import ROOT, raw_message
from tests.support.commands import HANLIN_LSP

COMMAND = [*HANLIN_LSP]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_response(stream: BinaryIO, log_lines: list[dict] | None = None) -> dict:
    """The next response; notifications before it (window/logMessage) go to `log_lines`."""
    while True:
        length = None
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert length is not None, "the server closed the connection"
        message = json.loads(stream.read(length))
        if "id" in message and "method" not in message:
            return message
        if log_lines is not None and message.get("method") == "window/logMessage":
            log_lines.append(message["params"])


def test_version() -> None:
    out = subprocess.run([*COMMAND, "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    assert out.stdout.startswith("hanlin-lsp ") and out.stdout.split()[1][0].isdigit()


@pytest.mark.slow
def test_tcp_mode_serves_one_client(tmp_path: Path) -> None:
    port = _free_port()
    log_file = tmp_path / "lsp.log"
    proc = subprocess.Popen(
        [*COMMAND, "--tcp", str(port), "--log-file", str(log_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        with sock, sock.makefile("rb") as stream:
            log_lines: list[dict] = []
            sock.sendall(
                raw_message(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {"processId": None, "capabilities": {}},
                    }
                )
            )
            answer = _read_response(stream, log_lines)
            assert answer["id"] == 1
            assert "inlineCompletionProvider" in answer["result"]["capabilities"]
            sock.sendall(
                raw_message({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
                + raw_message({"jsonrpc": "2.0", "method": "exit"})
            )
            assert _read_response(stream)["id"] == 2
            # the server's INFO lines reached the client as window/logMessage, level Info
            assert any(m["type"] == 3 and "initialize from" in m["message"] for m in log_lines)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None
    assert proc.stdout.read() == b""  # nothing on stdout in TCP mode either
    assert "hanlin-lsp" in log_file.read_text(encoding="utf-8")  # logs went to the file
