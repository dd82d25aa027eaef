"""SIGTERM with streams open: they end with an error the SDK reports, the process exits 0."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import openai
import pytest

from tests.server.conftest import SMOL_ID
from tests.server.serve_process import HanlinServer

pytestmark = pytest.mark.slow


def test_sigterm_with_open_streams_shuts_down_cleanly(smol_home: Path) -> None:
    with HanlinServer.start(
        smol_home, "--model", SMOL_ID, "--port", "0", "--parallel", "2", "--threads", "1"
    ) as server:  # stopped even when an assertion fails
        _check_sigterm(server)


def _check_sigterm(server: HanlinServer) -> None:
    client = openai.OpenAI(base_url=server.base_v1, api_key="x", max_retries=0, timeout=60)
    outcomes: dict[int, object] = {}
    received = [threading.Event(), threading.Event()]

    def stream(i: int) -> None:
        parts: list[str] = []
        try:
            for chunk in client.chat.completions.create(
                model=SMOL_ID,
                messages=[{"role": "user", "content": "Write a very long story about rain."}],
                max_tokens=1500,
                stream=True,
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
                    received[i].set()
            outcomes[i] = "finished"
        except openai.APIError as exc:
            outcomes[i] = exc
        outcomes[f"text{i}"] = "".join(parts)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    assert all(e.wait(90) for e in received)
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    for i in range(2):
        assert isinstance(outcomes[i], openai.APIError), outcomes[i]
        assert "shutting down" in str(outcomes[i])
        assert outcomes[f"text{i}"]  # what had streamed arrived
    assert server.proc.wait(20) == 0
    assert time.monotonic() - sent < 15
    server.stop()  # joins the output readers
    assert "hanlin serve: stopped" in server.stderr_text
    assert "Traceback" not in server.stderr_text
