"""Safe by default: keys, loopback only, CORS off, the bounded queue; on real servers."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import anthropic
import httpx
import openai
import psutil
import pytest

from tests.server.conftest import SMOL_ID
from tests.server.serve_process import HanlinServer, wait_until
from tests.support.commands import HANLIN

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Say hello."}]


def _non_loopback_ipv4() -> str:
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                return addr.address
    raise AssertionError("this machine has no non-loopback IPv4 address")


def test_default_server_is_unreachable_from_the_network(smol_server: HanlinServer) -> None:
    port = int(smol_server.url.rsplit(":", 1)[1])
    address = _non_loopback_ipv4()
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=3).close()
    socket.create_connection(("127.0.0.1", port), timeout=3).close()  # loopback answers
    # and no CORS headers for a browser page from elsewhere
    r = httpx.options(
        smol_server.base_v1 + "/chat/completions",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_refuses_non_loopback_host_without_a_key(tmp_path: Path) -> None:
    out = subprocess.run(
        [*HANLIN, "serve", "--host", "0.0.0.0", "--port", "0"],
        env={"HANLIN_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "without an API key" in out.stderr and "--api-key" in out.stderr
    assert "Traceback" not in out.stderr
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        out = subprocess.run(
            [*HANLIN, "serve", "--port", str(port)],
            env={"HANLIN_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        busy.close()
    assert out.returncode != 0 and f"Cannot listen on 127.0.0.1:{port}" in out.stderr


@pytest.fixture(scope="module")
def keyed_server(smol_home: Path):
    server = HanlinServer.start(
        smol_home,
        "--model", SMOL_ID, "--port", "0", "--api-key", "s3cret-key", "--parallel", "1",
        "--max-queue", "1", "--ctx", "1024", "--threads", "1",
        "--cors", "http://app.example",
    )  # fmt: skip
    yield server
    server.stop()


def test_api_key_is_required(keyed_server: HanlinServer) -> None:
    wrong = openai.OpenAI(base_url=keyed_server.base_v1, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="Invalid API key"):
        wrong.models.list()
    r = httpx.get(keyed_server.base_v1 + "/models")
    assert r.status_code == 401 and "needs an API key" in r.json()["error"]["message"]
    right = openai.OpenAI(base_url=keyed_server.base_v1, api_key="s3cret-key", max_retries=0)
    assert [m.id for m in right.models.list().data] == [SMOL_ID]
    claude = anthropic.Anthropic(base_url=keyed_server.url, api_key="s3cret-key", max_retries=0)
    message = claude.messages.create(model=SMOL_ID, max_tokens=4, messages=HELLO)
    assert message.content[0].type == "text"
    bad_claude = anthropic.Anthropic(base_url=keyed_server.url, api_key="s3cret-kez", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad_claude.messages.create(model=SMOL_ID, max_tokens=4, messages=HELLO)
    assert httpx.get(keyed_server.url + "/health").status_code == 200  # open, says nothing secret


def test_cors_only_for_the_given_origin(keyed_server: HanlinServer) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x"}
    ok = httpx.options(
        keyed_server.base_v1 + "/chat/completions",
        headers={"Origin": "http://app.example", **preflight},
    )
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://app.example"
    other = httpx.options(
        keyed_server.base_v1 + "/chat/completions",
        headers={"Origin": "http://evil.example", **preflight},
    )
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_queue_full_is_503_with_retry_after(keyed_server: HanlinServer) -> None:
    headers = {"Authorization": "Bearer s3cret-key"}
    body = {
        "model": SMOL_ID,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "max_tokens": 800,
        "stream": True,
    }
    started = threading.Event()
    stop = threading.Event()

    def long_stream() -> None:
        with httpx.stream(
            "POST", keyed_server.base_v1 + "/chat/completions", json=body, headers=headers
        ) as r:
            for _ in r.iter_lines():
                started.set()
                if stop.is_set():
                    return

    runners = [threading.Thread(target=long_stream) for _ in range(2)]  # 1 running + 1 queued
    runners[0].start()
    assert started.wait(30)
    runners[1].start()
    assert wait_until(lambda: keyed_server.health()["queued"] == 1, 10)
    r = httpx.post(
        keyed_server.base_v1 + "/chat/completions",
        json={**body, "stream": False, "max_tokens": 2},
        headers=headers,
    )
    stop.set()
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) >= 1
    assert "busy" in r.json()["error"]["message"]
    for t in runners:
        t.join(60)
    assert wait_until(lambda: keyed_server.health()["busy"] == 0, 10)
    assert keyed_server.health()["rejected"] >= 1
