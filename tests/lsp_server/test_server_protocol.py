"""hanlin-lsp over stdio without a model: capabilities, sync, robustness, settings.

Each test starts the real server process (`python -m hanlin.lsp_server.main`).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from lsprotocol import types

from hanlin.engine.completion.stats import load_completion_stats
from tests.lsp_server.harness import (
    SERVER_COMMAND,
    frame,
    inline_at,
    items_of,
    lsp_session,
    open_doc,
    raw_message,
    server_stats,
    wait_for_state,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

URI = "file:///tmp/hanlin-test/example.py"


async def test_capabilities_advertise_inline_completion() -> None:
    async with lsp_session() as client:
        caps = client.init_result.capabilities
        assert caps is not None
        assert caps.inline_completion_provider is not None
        assert caps.completion_provider is not None
        assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
        assert "hanlin.acceptCompletion" in caps.execute_command_provider.commands
        assert caps.position_encoding == types.PositionEncodingKind.Utf16


async def test_without_a_model_requests_answer_empty_at_once() -> None:
    async with lsp_session() as client:
        assert (await server_stats(client))["state"] == "idle"
        open_doc(client, URI, "def add(a, b):\n    return ")
        started = time.monotonic()
        result = await inline_at(client, URI, 1, 11)
        assert items_of(result) == []
        assert time.monotonic() - started < 5
        # unknown documents and positions past the end: no item, no error
        assert items_of(await inline_at(client, "file:///nowhere.py", 0, 0)) == []
        assert items_of(await inline_at(client, URI, 1, 500)) == []
        assert items_of(await inline_at(client, URI, 99, 0)) == []


async def _raw_session(payload: bytes) -> tuple[list[dict], int]:
    """Write raw bytes to a fresh server's stdin; return the framed messages it wrote."""
    proc = await asyncio.create_subprocess_exec(
        *SERVER_COMMAND,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(payload)
    await proc.stdin.drain()
    proc.stdin.close()
    out = await asyncio.wait_for(proc.stdout.read(), 60)
    await asyncio.wait_for(proc.wait(), 30)
    # parse the whole stream as frames: any stray byte on stdout breaks this
    messages = []
    while out:
        header, _, rest = out.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        length = next(int(x.split(b":")[1]) for x in lines if x.startswith(b"Content-Length"))
        messages.append(json.loads(rest[:length]))
        out = rest[length:]
    assert proc.returncode is not None
    return messages, proc.returncode


INITIALIZE = raw_message(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"processId": None, "capabilities": {}},
    }
) + raw_message({"jsonrpc": "2.0", "method": "initialized", "params": {}})
SHUTDOWN = raw_message({"jsonrpc": "2.0", "id": 99, "method": "shutdown"}) + raw_message(
    {"jsonrpc": "2.0", "method": "exit"}
)


async def test_malformed_messages_do_not_kill_the_server() -> None:
    garbage = [
        frame(b"{this is not json"),
        frame(b"[1, 2, 3]"),
        frame(b'{"jsonrpc": "1.0", "id": 3, "method": "initialize"}'),
        b"Content-Length: abc\r\n\r\n{}",
        b'Content-Length: 5\r\n\r\n{"jsonrpc": "2.0"}',  # body longer than announced
        b"X-Unknown-Header: 1\r\n\r\n",
        raw_message({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"x": 1}}),
        raw_message({"jsonrpc": "2.0", "method": "$/unknownNotification", "params": {}}),
        # a request whose params do not fit the method
        raw_message(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "textDocument/inlineCompletion",
                "params": {"textDocument": 5},
            }
        ),
        raw_message({"jsonrpc": "2.0", "id": 6, "method": "hanlin/noSuchMethod", "params": {}}),
    ]
    after = [
        raw_message(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": "x"}
                },
            }
        ),
        raw_message(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "textDocument/inlineCompletion",
                "params": {
                    "textDocument": {"uri": URI},
                    "position": {"line": 0, "character": 1},
                    "context": {"triggerKind": 2},
                },
            }
        ),
        raw_message({"jsonrpc": "2.0", "id": 8, "method": "hanlin/completionStats"}),
    ]
    messages, code = await _raw_session(INITIALIZE + b"".join(garbage) + b"".join(after) + SHUTDOWN)
    by_id = {m["id"]: m for m in messages if "id" in m and ("result" in m or "error" in m)}
    assert "result" in by_id[1]
    assert by_id[3]["error"]["code"] == -32600  # not JSON-RPC 2.0
    assert "error" in by_id[5]  # invalid params answered, not ignored
    assert by_id[6]["error"]["code"] == -32601  # method not found
    assert by_id[7]["result"]["items"] == []  # the server still answers
    assert by_id[8]["result"]["state"] == "idle"
    assert "result" in by_id[99]
    assert code == 0


async def test_broken_model_file_is_reported_and_server_stays_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 100)
    async with lsp_session({"model": str(broken)}) as client:
        assert await wait_for_state(client) == "failed"
        await asyncio.sleep(0.2)
        errors = [m for m in client.messages if m.type == types.MessageType.Error]
        assert errors, "a failed load must be shown to the user"
        assert "broken.gguf" in errors[0].message
        open_doc(client, URI, "import os\n")
        assert items_of(await inline_at(client, URI, 1, 0)) == []
        failed = [s for s in client.status_updates if s["state"] == "failed"]
        assert failed and failed[-1]["message"]


async def test_unknown_model_id_says_what_to_do() -> None:
    async with lsp_session({"model": "no-such-model-xyz"}) as client:
        assert await wait_for_state(client) == "failed"
        await asyncio.sleep(0.2)
        assert any("no-such-model-xyz" in m.message for m in client.messages)


async def test_acceptance_notifications_update_the_stats_file() -> None:
    async with lsp_session() as client:
        item = {
            "insertText": "return a + b",
            "command": {
                "title": "Accept",
                "command": "hanlin.acceptCompletion",
                "arguments": ["unknown-id"],
            },
        }
        client.protocol.notify("textDocument/didShowCompletion", {"item": item})
        client.protocol.notify(
            "textDocument/didPartiallyAcceptCompletion", {"item": item, "acceptedLength": 6}
        )
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="hanlin.acceptCompletion", arguments=["unknown-id"])
        )
        stats = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="hanlin.stats", arguments=[])
        )
        total = stats.total if hasattr(stats, "total") else stats["total"]
        total = total._asdict() if hasattr(total, "_asdict") else total
        assert total["shown"] == 1
        assert total["partially_accepted"] == 1
        assert total["accepted"] == 1
        assert total["chars_accepted"] == 6
    on_disk = load_completion_stats().total
    assert (on_disk.shown, on_disk.accepted, on_disk.partially_accepted) == (1, 1, 1)


async def test_settings_change_loads_the_new_model(tmp_path: Path) -> None:
    """workspace/didChangeConfiguration makes the server pull `hanlin` again."""
    broken = tmp_path / "other.gguf"
    broken.write_bytes(b"not a gguf at all")
    async with lsp_session(configuration={"hanlin": {"maxTokens": 8}}) as client:
        assert (await server_stats(client))["state"] == "idle"
        client.set_configuration({"hanlin": {"model": str(broken)}})
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        assert await wait_for_state(client) == "failed"
        await asyncio.sleep(0.2)
        assert any("other.gguf" in m.message for m in client.messages)


async def test_desktop_settings_file_choice_is_followed(tmp_path: Path) -> None:
    """No `model` from the editor: the server follows completion_model in settings.toml."""
    from hanlin.engine.core.settings import Settings, save_settings

    missing = tmp_path / "chosen-in-the-app.gguf"
    async with lsp_session() as client:
        assert (await server_stats(client))["state"] == "idle"
        save_settings(Settings(completion_model=str(missing)))
        assert await wait_for_state(client, timeout=30) == "failed"
        await asyncio.sleep(0.2)
        assert any("chosen-in-the-app.gguf" in m.message for m in client.messages)


async def test_stdout_carries_only_protocol() -> None:
    """A served session writes nothing but framed JSON-RPC to stdout, and exits cleanly."""
    messages, code = await _raw_session(INITIALIZE + SHUTDOWN)
    ids = [m.get("id") for m in messages if "result" in m]
    assert ids == [1, 99]
    assert code == 0


async def test_exit_without_shutdown_reports_failure() -> None:
    messages, code = await _raw_session(
        INITIALIZE + raw_message({"jsonrpc": "2.0", "method": "exit"})
    )
    assert [m.get("id") for m in messages if "result" in m] == [1]
    assert code == 1  # the LSP specification's exit status without `shutdown`
