"""The `hanlin-lsp` command line: --version, --tcp, --log-file."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.lsp_server.harness import ROOT, raw_message
from tests.support.commands import HANLIN_LSP

COMMAND = [*HANLIN_LSP]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_frame(sock: socket.socket) -> dict:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk
    header, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in header.split(b"\r\n") if b"Content-Length" in line
    )
    while len(rest) < length:
        rest += sock.recv(4096)
    return json.loads(rest[:length])


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
        with sock:
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
            answer = _read_frame(sock)
            assert answer["id"] == 1
            assert "inlineCompletionProvider" in answer["result"]["capabilities"]
            sock.sendall(
                raw_message({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
                + raw_message({"jsonrpc": "2.0", "method": "exit"})
            )
            assert _read_frame(sock)["id"] == 2
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdout is not None
    assert proc.stdout.read() == b""  # nothing on stdout in TCP mode either
    assert "hanlin-lsp" in log_file.read_text(encoding="utf-8")  # logs went to the file
