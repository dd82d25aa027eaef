"""Chat against a real llama.cpp `llama-server` running SmolLM2: streaming, stop, history,
reasoning split, the thinking switch, cancel, a wrong key, and the server killed mid-answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.chat.stream import ChatMessage
from hanlin.engine.chat.thinking import StreamEvent
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.settings import RemoteEndpoint
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.remote.chat import (
    INTERRUPTED,
    RemoteChatSession,
    build_chat_body,
    stream_remote_chat,
)
from hanlin.engine.remote.client import RemoteClient
from hanlin.engine.remote.endpoint import Endpoint, RemoteTarget, endpoint_from_settings
from hanlin.engine.remote.errors import RemoteAuthError
from tests.conftest import smollm2_gguf
from tests.support.remote_servers import THINK_TEMPLATE, LlamaServer

pytestmark = pytest.mark.slow

GREEDY = Sampling(temperature=0.0)
COUNT = [ChatMessage("user", "Count from 1 to 20, separated by commas.")]


def target_of(server: LlamaServer, **endpoint: object) -> RemoteTarget:
    return RemoteTarget(Endpoint("lab", server.url, configured=True, **endpoint), server.alias)


def test_models_and_a_streamed_answer(smol_server: LlamaServer) -> None:
    models = RemoteClient(Endpoint("lab", smol_server.url + "/v1")).models()
    assert [m.id for m in models] == ["smollm2"]
    assert models[0].context_length == 2048
    events: list[StreamEvent] = []
    reply = stream_remote_chat(
        target_of(smol_server),
        [ChatMessage("system", "You are a helpful assistant."), *COUNT],
        sampling=GREEDY,
        max_tokens=8,
        on_event=events.append,
    )
    assert len(events) > 1 and {e.kind for e in events} == {"answer"}
    assert reply.content == "".join(e.text for e in events).strip()
    assert reply.thinking is None
    stats = reply.stats
    assert stats.stop_reason == "length" and stats.generated_tokens == 8
    assert stats.prompt_tokens > 10 and 0 < stats.ttft_s < stats.total_s
    assert stats.tokens_per_s > 0 and stats.endpoint == "lab"
    assert stats.sampling == {"temperature": 0.0, "max_tokens": 8}


def test_stop_strings_end_the_answer(smol_server: LlamaServer) -> None:
    target = target_of(smol_server)
    free = stream_remote_chat(target, COUNT, sampling=GREEDY, max_tokens=24)
    assert "3" in free.content
    stopped = stream_remote_chat(target, COUNT, sampling=GREEDY, max_tokens=24, stop=["3"])
    assert "3" not in stopped.content and stopped.stats.stop_reason == "stop"
    assert stopped.content and free.content.startswith(stopped.content)


def test_a_session_sends_its_history(smol_server: LlamaServer) -> None:
    session = RemoteChatSession(target_of(smol_server), system="Be brief.", sampling=GREEDY)
    first = session.send("My name is Ada.", max_tokens=6)
    second = session.send("What is my name?", max_tokens=6)
    assert [m.role for m in session.history] == ["user", "assistant", "user", "assistant"]
    assert session.history[1].content == first.content
    # the second prompt holds the whole first turn, which the server had cached
    assert second.stats.prompt_tokens > first.stats.prompt_tokens + first.stats.generated_tokens
    assert second.stats.cached_tokens > 0
    assert session.last_stats is second.stats
    session.clear()
    assert session.history == [] and len(session.messages()) == 1  # the system prompt stays


def test_cancel_aborts_the_request_on_the_server(smol_server: LlamaServer) -> None:
    cancel = CancelToken()
    seen: list[str] = []

    def on_event(event: StreamEvent) -> None:
        seen.append(event.text)
        if len(seen) == 3:
            cancel.cancel("Stopped by the user.")

    reply = stream_remote_chat(
        target_of(smol_server), COUNT, sampling=GREEDY, max_tokens=1500, cancel=cancel,
        on_event=on_event,
    )
    assert reply.stats.stop_reason == "cancelled"
    assert reply.content and reply.content == "".join(seen).strip()
    # 1500 tokens would keep the slot busy for many seconds: it stops as the connection closes
    deadline = time.monotonic() + 3
    while smol_server.slots_busy():
        assert time.monotonic() < deadline, "the server kept generating after the cancel"
        time.sleep(0.05)


def test_the_server_killed_mid_answer_keeps_the_partial_answer(
    llama_server_bin: Path, tmp_path: Path
) -> None:
    with LlamaServer(llama_server_bin, smollm2_gguf(), log=tmp_path / "kill.log") as server:
        seen: list[str] = []

        def on_event(event: StreamEvent) -> None:
            seen.append(event.text)
            if len(seen) == 4:
                server.kill()

        reply = stream_remote_chat(
            target_of(server), COUNT, sampling=GREEDY, max_tokens=400, on_event=on_event
        )
    assert reply.stats.stop_reason == INTERRUPTED
    assert reply.content and reply.content == "".join(seen).strip()
    assert "connection" in (reply.stats.error or "") and "lab" in (reply.stats.error or "")


@pytest.fixture(scope="module")
def keyed_server(llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    log = tmp_path_factory.mktemp("keyed") / "keyed.log"
    with LlamaServer(llama_server_bin, smollm2_gguf(), api_key="s3cret", log=log) as server:
        yield server


def test_a_wrong_or_missing_key_is_refused(
    keyed_server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = RemoteEndpoint("lab", keyed_server.url, key_env="LAB_KEY")
    with pytest.raises(RemoteAuthError) as missing:
        stream_remote_chat(RemoteTarget(endpoint_from_settings(remote), "smollm2"), COUNT)
    assert "HTTP 401" in missing.value.message
    assert "$LAB_KEY, which is not set" in (missing.value.hint or "")
    monkeypatch.setenv("LAB_KEY", "wrong")
    with pytest.raises(RemoteAuthError) as wrong:
        RemoteClient(endpoint_from_settings(remote)).models()
    assert "check the key in $LAB_KEY" in (wrong.value.hint or "")
    monkeypatch.setenv("LAB_KEY", "s3cret")
    reply = stream_remote_chat(
        RemoteTarget(endpoint_from_settings(remote), "smollm2"), COUNT, max_tokens=4
    )
    assert reply.content


@pytest.fixture(scope="module")
def think_servers(
    llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LlamaServer, LlamaServer]]:
    """SmolLM2 with a reasoning template: one server splits it out, one leaves it inline."""
    folder = tmp_path_factory.mktemp("think")
    template = folder / "think.jinja"
    template.write_text(THINK_TEMPLATE)
    args = ["--jinja", "--chat-template-file", str(template)]
    split = LlamaServer(
        llama_server_bin, smollm2_gguf(), extra=[*args, "--reasoning-format", "deepseek"],
        log=folder / "split.log",
    )
    inline = LlamaServer(
        llama_server_bin, smollm2_gguf(), extra=[*args, "--reasoning-format", "none"],
        log=folder / "inline.log",
    )
    with split, inline:
        yield split, inline


def test_reasoning_is_split_from_the_answer(think_servers: tuple[LlamaServer, LlamaServer]) -> None:
    split, inline = think_servers
    question = [ChatMessage("user", "What is 2+2?")]
    events: list[StreamEvent] = []
    separate = stream_remote_chat(
        target_of(split), question, sampling=GREEDY, max_tokens=12, on_event=events.append
    )
    # SmolLM2 never closes the block the template opened: everything is thinking
    assert separate.thinking and separate.content == ""
    assert {e.kind for e in events} == {"thinking"}
    assert "<think>" not in separate.thinking
    # `<think>` inline in the content goes through the same splitter as local models
    together = stream_remote_chat(target_of(inline), question, sampling=GREEDY, max_tokens=12)
    assert together.content == "" and together.thinking == separate.thinking


def test_the_thinking_switch_reaches_the_template(
    think_servers: tuple[LlamaServer, LlamaServer],
) -> None:
    split, _ = think_servers
    reply = stream_remote_chat(
        target_of(split), [ChatMessage("user", "What is 2+2?")], sampling=GREEDY,
        max_tokens=8, thinking=False,
    )
    assert reply.content and reply.thinking is None
    # what was thought before is never sent back
    history = [
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!", thinking="SECRET-REASONING"),
        ChatMessage("user", "Bye"),
    ]
    body = build_chat_body("smollm2", history, thinking=False)
    assert "SECRET" not in json.dumps(body)
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in build_chat_body("smollm2", history)
