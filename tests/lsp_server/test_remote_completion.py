"""hanlin-lsp completing from a remote server: the real server over stdio, real `llama-server`s.

The `endpoint` setting (a `hanlin remote add` name or a URL) sends completions to
llama-server's `/infill` when the model has FIM tokens (a tiny generated qwen2.5-coder-style
GGUF), else to `/v1/completions` (SmolLM2); the app's `completion_model` may name a remote
model too; an unreachable server is reported and the language server stays up.
"""

# ruff: noqa: F811 - pytest fixtures imported from tests/support are used as parameters

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types

from hanlin.engine.core.settings import RemoteEndpoint, Settings, save_settings
from tests.lsp_server.harness import (
    inline_at,
    items_of,
    lsp_session,
    open_doc,
    server_stats,
    wait_for_state,
)
from tests.support.remote_servers import LlamaServer, free_port, llama_server_bin, smol_server  # noqa: F401

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

URI = "file:///tmp/hanlin-test/calc.py"
SOURCE = "def add(a, b):\n    return "
CURSOR = (1, 11)
OTHER_URI = "file:///tmp/hanlin-test/util.py"
OTHER = "def helper(x):\n    return x * 2\n" * 30
PRIMES = "primes = [\n    2,\n    3,\n    5,\n    7,\n    \n]\n"


@pytest.fixture(scope="module")
def fim_server(llama_server_bin: Path, tiny_fim_path: Path, tmp_path_factory) -> Iterator:
    log = tmp_path_factory.mktemp("lsp-fim") / "fim.log"
    with LlamaServer(llama_server_bin, tiny_fim_path, alias="tiny-coder", ctx=4096, log=log) as s:
        yield s


async def test_completion_from_llama_server_infill(fim_server: LlamaServer) -> None:
    save_settings(Settings(remote=[RemoteEndpoint("lab", fim_server.url)]))
    options = {"endpoint": "lab", "maxTokens": 8, "timeBudgetMs": 20_000}
    async with lsp_session(options) as client:
        assert await wait_for_state(client) == "ready"
        ready = [s for s in client.status_updates if s["state"] == "ready"][-1]
        assert ready["model"] == "lab/tiny-coder" and ready["template"] == "remote:infill"
        assert ready["backend"] == "remote"
        # the other file enters the context ring when the user leaves it
        open_doc(client, OTHER_URI, OTHER)
        await inline_at(client, OTHER_URI, 0, 0)
        open_doc(client, URI, SOURCE)
        await inline_at(client, URI, *CURSOR)
        stats = await server_stats(client)
        last = stats["requests"][-1]
        assert last["template"] == "remote:infill" and last["generatedTokens"] > 0
        # util.py went to the server as input_extra: it read far more than calc.py alone
        assert last["tokensEvaluated"] + last["tokensCached"] > 200
        assert stats["totals"]["requests"] >= 2


async def test_completion_from_a_model_without_fim_and_from_completion_model(
    smol_server: LlamaServer,
) -> None:
    # no `endpoint`: the app's completion_model names a remote model
    save_settings(
        Settings(
            completion_model="lab/smollm2", remote=[RemoteEndpoint("lab", smol_server.url + "/v1")]
        )
    )
    async with lsp_session({"maxTokens": 8, "timeBudgetMs": 20_000}) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, SOURCE)
        items = items_of(await inline_at(client, URI, *CURSOR))
        assert len(items) == 1 and items[0].insert_text.strip()
        assert items[0].range.start == types.Position(*CURSOR)
        stats = await server_stats(client)
        assert stats["model"] == "lab/smollm2" and stats["template"] == "remote:suffix"


async def test_a_newer_keystroke_cancels_the_remote_request(smol_server: LlamaServer) -> None:
    options = {"endpoint": smol_server.url, "maxTokens": 1000, "timeBudgetMs": 60_000}
    async with lsp_session(options) as client:
        assert await wait_for_state(client) == "ready"
        # SmolLM2 lists "primes" for all of its 1000 tokens (~15 s) unless stopped
        open_doc(client, URI, PRIMES)
        first = asyncio.ensure_future(inline_at(client, URI, 5, 4))
        await asyncio.sleep(1.0)  # it is streaming by now
        second = await inline_at(client, URI, 0, 6)  # replaces the first (a one-liner)
        assert items_of(await first) == []  # cancelled: no item, at once
        assert second is not None
        assert (await server_stats(client))["totals"]["cancelled"] == 1
        deadline = asyncio.get_running_loop().time() + 5
        while smol_server.slots_busy():
            assert asyncio.get_running_loop().time() < deadline, "the server kept generating"
            await asyncio.sleep(0.05)


async def test_an_unreachable_endpoint_is_reported(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with lsp_session({"endpoint": dead}) as client:
        assert await wait_for_state(client) == "failed"
        await asyncio.sleep(0.2)
        messages = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert any("Cannot reach" in m and "connection refused" in m for m in messages), messages
        open_doc(client, URI, SOURCE)
        assert items_of(await inline_at(client, URI, *CURSOR)) == []  # still answering
