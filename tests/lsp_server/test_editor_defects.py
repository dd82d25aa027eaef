"""Defects seen in real editors, reproduced with real requests over stdio (issue 8).

- the first line of a block accepted after an indentation-only line had one space too many;
- no `hanlin/status` without a model (VS Code said "starting" forever), nor when the time
  budget left a request empty;
- INFO lines went to stderr, which editors show as errors (now `window/logMessage`);
- "shown" stayed 0 with clients that send no `didShowCompletion` (VS Code);
- no completion trigger characters (Neovim 0.11 never popped up items).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from hanlin.lsp_server.handlers.completion import TRIGGER_CHARACTERS
from tests.lsp_server.harness import (
    inline_at,
    inline_capabilities,
    insert,
    items_of,
    lsp_session,
    open_doc,
    raw_message,
    wait_for_state,
)
from tests.support.commands import HANLIN_LSP

pytestmark = [pytest.mark.slow]

INDENTED = "def add(a, b):\n    "  # the cursor at the end of an indentation-only line


def _options(model: Path, **extra: object) -> dict[str, object]:
    return {"model": str(model), "maxTokens": 12, "timeBudgetMs": 20_000, "threads": 1, **extra}


def _apply(text: str, line: int, start: int, end: int, new_text: str) -> str:
    lines = text.split("\n")
    lines[line] = lines[line][:start] + new_text + lines[line][end:]
    return "\n".join(lines)


@pytest.mark.asyncio
async def _wait_status(client: Any, pred: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for status in client.status_updates:
            if pred(status):
                return status
        if time.monotonic() > deadline:
            raise AssertionError(f"no such hanlin/status; got {client.status_updates}")
        await asyncio.sleep(0.05)


@pytest.mark.asyncio
async def _stats(client: Any) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="hanlin.stats", arguments=[])
    )
    return result if isinstance(result, dict) else result._asdict()


def _total(stats: dict[str, Any], key: str) -> int:
    total = stats["total"]
    return total[key] if isinstance(total, dict) else getattr(total, key)


# -- (a) indentation ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_inline_item_after_indentation_has_no_extra_space(smollm2_path: Path) -> None:
    """SmolLM2 continues `"    "` with the token `" return"`: 5 spaces once accepted."""
    uri = "file:///tmp/hanlin-test/indent.py"
    async with lsp_session(_options(smollm2_path)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, uri, INDENTED)
        items = items_of(await inline_at(client, uri, 1, 4))
        assert len(items) == 1
        item = items[0]
        assert isinstance(item.insert_text, str) and item.insert_text.strip()
        r = item.range
        assert r is not None and r.start == r.end == types.Position(line=1, character=4)
        accepted = _apply(INDENTED, 1, 4, 4, item.insert_text)
        first = accepted.split("\n")[1]
        assert first.startswith("    ") and not first.startswith("     "), repr(first)


@pytest.mark.asyncio
async def test_completion_item_after_indentation_has_no_extra_space(smollm2_path: Path) -> None:
    uri = "file:///tmp/hanlin-test/indent_items.py"
    async with lsp_session(
        _options(smollm2_path), capabilities=inline_capabilities(inline=False)
    ) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, uri, INDENTED)
        result = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=1, character=4),
            )
        )
        assert result is not None and len(result.items) == 1
        edit = result.items[0].text_edit
        assert isinstance(edit, types.TextEdit)
        accepted = _apply(
            INDENTED, 1, edit.range.start.character, edit.range.end.character, edit.new_text
        )
        first = accepted.split("\n")[1]
        assert first.startswith("    ") and not first.startswith("     "), repr(first)


# -- (b) hanlin/status in every state ---------------------------------------------------


@pytest.mark.asyncio
async def test_without_a_model_the_status_says_so_and_how_to_set_one() -> None:
    async with lsp_session() as client:
        status = await _wait_status(client, lambda s: s["state"] == "idle")
        assert status["message"] == "No completion model configured"
        assert "hanlin.model" in status["hint"] and "hanlin models use" in status["hint"]
        assert status["reason"] is None


@pytest.mark.asyncio
async def test_status_follows_loading_ready_and_failed(smollm2_path: Path) -> None:
    async with lsp_session(_options(smollm2_path)) as client:
        ready = await _wait_status(client, lambda s: s["state"] == "ready")
        states = [s["state"] for s in client.status_updates]
        assert states.index("loading") < states.index("ready")
        assert ready["message"].startswith("Ready: ") and ready["model"]
    async with lsp_session({"model": "/nowhere/missing.gguf"}) as client:
        failed = await _wait_status(client, lambda s: s["state"] == "failed")
        assert failed["message"] and failed["hint"] is not None


def _frames(data: bytes) -> list[dict[str, Any]]:
    messages = []
    while data:
        header, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in header.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        messages.append(json.loads(rest[:length]))
        data = rest[length:]
    return messages


def test_a_request_the_time_budget_left_empty_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server's side of stop reason "time" (the engine's budget logic has its own tests):
    a real server object writing real frames, one status with the reason and one log line,
    and a status without it once a request answers again."""
    from pygls.io_ import StdoutWriter

    from hanlin.lsp_server.server import HanlinLanguageServer

    server = HanlinLanguageServer()
    sent = io.BytesIO()
    server.protocol.set_writer(StdoutWriter(sent))
    with caplog.at_level(logging.INFO, logger="hanlin.lsp_server.server"):
        server.note_result("time", "", 2139)
        server.note_result("time", "", 2139, logged=True)  # the service logged its note
        server.note_result("stop", "return a + b", 40)
        server.note_result("stop", "return a", 40)  # nothing to clear: no status
    statuses = [m["params"] for m in _frames(sent.getvalue()) if m["method"] == "hanlin/status"]
    assert [s["reason"] for s in statuses] == ["time", "time", None]
    assert "1500 ms time budget" in statuses[0]["message"] and statuses[0]["hint"]
    assert statuses[2]["message"] == "No completion model configured"
    budget_lines = [r.getMessage() for r in caplog.records if "budget" in r.getMessage()]
    assert budget_lines == [
        "no completion: the request ran out of its 1500 ms budget (prompt 2139 tokens)"
    ]


# -- (c) log lines ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_info_lines_go_to_window_log_message_not_stderr() -> None:
    payload = b"".join(
        raw_message(m)
        for m in (
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"processId": None, "capabilities": {}},
            },
            {"jsonrpc": "2.0", "method": "initialized", "params": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
            {"jsonrpc": "2.0", "method": "exit"},
        )
    )
    proc = await asyncio.create_subprocess_exec(
        *HANLIN_LSP,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(payload), 60)
    messages = _frames(out)
    logged = [m["params"] for m in messages if m.get("method") == "window/logMessage"]
    info = [p["message"] for p in logged if p["type"] == types.MessageType.Info]
    assert any("initialize from" in m for m in info)
    assert any("No completion model configured" in p["message"] for p in logged)
    assert b" INFO " not in err, err.decode(errors="replace")


# -- (d) shown without didShowCompletion -------------------------------------------------


@pytest.mark.asyncio
async def test_typing_through_an_item_counts_it_as_shown(smollm2_path: Path) -> None:
    uri = "file:///tmp/hanlin-test/shown.py"
    text = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "
    async with lsp_session(_options(smollm2_path)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, uri, text)
        items = items_of(await inline_at(client, uri, 3, 11))
        assert items and isinstance(items[0].insert_text, str)
        assert _total(await _stats(client), "shown") == 0
        # the user types the item's first character: VS Code asks again, sends no didShow
        insert(client, uri, 2, 3, 11, items[0].insert_text[0])
        later = items_of(await inline_at(client, uri, 3, 12))
        assert _total(await _stats(client), "shown") == 1
        # typing something the new item did not say: it is not counted
        if later and isinstance(later[0].insert_text, str):
            wrong = "Z" if not later[0].insert_text.startswith("Z") else "Q"
            insert(client, uri, 3, 3, 12, wrong)
            await inline_at(client, uri, 3, 13)
        assert _total(await _stats(client), "shown") == 1


@pytest.mark.asyncio
async def test_accepting_counts_as_shown_once(smollm2_path: Path) -> None:
    uri = "file:///tmp/hanlin-test/accept.py"
    async with lsp_session(_options(smollm2_path)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, uri, "def add(a, b):\n    return ")
        items = items_of(await inline_at(client, uri, 1, 11))
        assert items and items[0].command is not None
        client.protocol.notify("textDocument/didShowCompletion", {"item": _as_json(items[0])})
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=items[0].command.command, arguments=items[0].command.arguments
            )
        )
        stats = await _stats(client)
        assert _total(stats, "shown") == 1 and _total(stats, "accepted") == 1


def _as_json(item: types.InlineCompletionItem) -> dict[str, Any]:
    command = item.command
    assert command is not None
    return {
        "insertText": item.insert_text,
        "command": {"title": "", "command": command.command, "arguments": command.arguments},
    }


# -- (f) trigger characters ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_completion_declares_trigger_characters() -> None:
    async with lsp_session() as client:
        provider = client.init_result.capabilities.completion_provider
        assert provider is not None
        assert list(provider.trigger_characters or ()) == TRIGGER_CHARACTERS
        assert {".", "(", " "} <= set(provider.trigger_characters)
