"""The remote backend against `hanlin serve` itself (SmolLM2): models, a streamed chat with
history, completion with `suffix`, an unknown model, cancel, and the server killed mid-answer."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.chat.stream import ChatMessage
from hanlin.engine.chat.thinking import StreamEvent
from hanlin.engine.completion.engine import CompletionRequest
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.remote.chat import INTERRUPTED, RemoteChatSession, stream_remote_chat
from hanlin.engine.remote.client import RemoteClient
from hanlin.engine.remote.completion import RemoteCompleter
from hanlin.engine.remote.endpoint import Endpoint, RemoteTarget
from hanlin.engine.remote.errors import RemoteHTTPError
from tests.support.remote_servers import HanlinServe

pytestmark = pytest.mark.slow

GREEDY = Sampling(temperature=0.0)
COUNT = [ChatMessage("user", "Count from 1 to 20, separated by commas.")]


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HanlinServe]:
    with HanlinServe(tmp_path_factory.mktemp("serve")) as server:
        yield server


def target(server: HanlinServe, model: str = "smollm2") -> RemoteTarget:
    return RemoteTarget(Endpoint("box", server.url + "/v1", configured=True), model)


def health(server: HanlinServe) -> dict:
    with urllib.request.urlopen(server.url + "/health", timeout=5) as r:
        return json.loads(r.read())


def test_chat_with_history_and_completion(serve: HanlinServe) -> None:
    assert [m.id for m in RemoteClient(target(serve).endpoint).models()] == ["smollm2"]
    session = RemoteChatSession(target(serve), sampling=GREEDY)
    events: list[StreamEvent] = []
    first = session.send(COUNT[0].content, max_tokens=8, on_event=events.append)
    assert len(events) > 1 and first.content == "".join(e.text for e in events).strip()
    assert first.stats.stop_reason == "length" and first.stats.generated_tokens == 8
    second = session.send("Again, please.", max_tokens=6)
    assert second.stats.prompt_tokens > first.stats.prompt_tokens + 8
    completer = RemoteCompleter(target(serve))
    assert completer.prepare() == "suffix"  # hanlin serve: /v1/completions with suffix
    request = CompletionRequest(prefix="def add(a, b):\n    return", max_tokens=8)
    result = completer.complete(request)
    assert result.text.strip() and result.template == "remote:suffix"


def test_an_unknown_model_names_the_ones_there(serve: HanlinServe) -> None:
    with pytest.raises(RemoteHTTPError) as info:
        stream_remote_chat(target(serve, "qwen9-404b"), COUNT)
    assert info.value.status == 404 and "`smollm2`" in (info.value.hint or "")


def test_cancel_stops_the_generation_on_the_server(serve: HanlinServe) -> None:
    cancel = CancelToken()
    seen: list[str] = []

    def on_event(event: StreamEvent) -> None:
        seen.append(event.text)
        if len(seen) == 3:
            cancel.cancel("stop")

    before = health(serve)["cancelled"]
    reply = stream_remote_chat(
        target(serve), COUNT, sampling=GREEDY, max_tokens=400, cancel=cancel, on_event=on_event
    )
    assert reply.stats.stop_reason == "cancelled" and reply.content
    deadline = time.monotonic() + 5
    while health(serve)["cancelled"] == before or health(serve)["generating"]:
        assert time.monotonic() < deadline, health(serve)
        time.sleep(0.05)


def test_hanlin_serve_killed_mid_answer(tmp_path: Path) -> None:
    with HanlinServe(tmp_path / "home") as server:
        seen: list[str] = []

        def on_event(event: StreamEvent) -> None:
            seen.append(event.text)
            if len(seen) == 4:
                server.kill()

        reply = stream_remote_chat(
            target(server), COUNT, sampling=GREEDY, max_tokens=400, on_event=on_event
        )
    assert reply.stats.stop_reason == INTERRUPTED
    assert reply.content == "".join(seen).strip()
    assert "connection" in (reply.stats.error or "")
