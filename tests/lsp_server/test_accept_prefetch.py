"""Accept a shown completion and type on, through hanlin-lsp over stdio with real SmolLM2:
the request after the acceptance is answered by the prefetch the server made while the
completion was on screen.

This is the editor's real sequence (what bench/completion_latency.py's `accept` pattern
does): inlineCompletion -> didShowCompletion -> the item's hanlin.acceptCompletion
command -> didChange inserting the text -> inlineCompletion at the new cursor. It checks
that the key the prefetch was stored under is the one the editor's next request has.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp_server.harness import (
    inline_at,
    insert,
    items_of,
    lsp_session,
    open_doc,
    server_stats,
    wait_for_state,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

URI = "file:///tmp/hanlin-test/orders.py"
SOURCE = (
    "def order_total(order):\n"
    "    subtotal = sum(item.price * item.quantity for item in order.items)\n"
    "    tax = subtotal * order.tax_rate\n"
    "    shipping = 0 if subtotal > 100 else order.shipping_fee\n"
    "    total = "
)
CURSOR = (4, 12)


def _after(line: int, char: int, text: str) -> tuple[int, int]:
    """The cursor after inserting `text` at (line, char) (ASCII: UTF-16 = characters)."""
    if "\n" not in text:
        return line, char + len(text)
    return line + text.count("\n"), len(text.rsplit("\n", 1)[1])


async def _show_and_accept(
    client: LanguageClient, uri: str, cursor: tuple[int, int], *, wait_for_prefetch: bool
) -> tuple[int, int]:
    """Ask at `cursor`, show the item, accept it (command + didChange): the new cursor."""
    result = await inline_at(client, uri, *cursor)
    items = items_of(result)
    assert len(items) == 1
    item = items[0]
    text = item.insert_text
    assert isinstance(text, str) and text.strip()
    client.protocol.notify("textDocument/didShowCompletion", {"item": {"insertText": text}})
    if wait_for_prefetch:  # the user reads the suggestion; the server prefetches meanwhile
        deadline = time.monotonic() + 60
        while (await server_stats(client))["totals"]["prefetches"] < 1:
            assert time.monotonic() < deadline, "no prefetch within 60 s"
            await asyncio.sleep(0.05)
    assert item.command is not None
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=item.command.command, arguments=item.command.arguments)
    )
    insert(client, uri, 2, *cursor, text)
    return _after(*cursor, text)


async def test_the_request_after_accepting_is_answered_by_the_prefetch(
    smollm2_path: Path,
) -> None:
    """The user reads the suggestion, accepts it: the next one is ready when asked."""
    options = {
        "model": str(smollm2_path),
        "maxTokens": 12,
        "timeBudgetMs": 20_000,
        "persistKv": False,
    }
    async with lsp_session(options) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, SOURCE)
        line, char = await _show_and_accept(client, URI, CURSOR, wait_for_prefetch=True)
        await server_stats(client)  # start the request list afresh
        started = time.perf_counter()
        await inline_at(client, URI, line, char)
        latency_ms = (time.perf_counter() - started) * 1000
        stats = await server_stats(client)
        answer = stats["requests"][-1]
        assert answer["prefetched"] and answer["fromCache"], answer
        assert answer["tokensEvaluated"] == 0 and answer["generatedTokens"] == 0
        assert answer["waitedMs"] == 0
        assert stats["totals"]["prefetch_hits"] == 1
        # no model work, only the round trip (slack for busy shared cores)
        assert latency_ms < 250, latency_ms


async def test_accepting_at_once_in_a_cold_file_still_gets_the_prefetch(
    smollm2_path: Path,
) -> None:
    """A big file just opened: the shown answer comes from the small window (the full
    prompt is thousands of tokens), and the user accepts it at once. The prefetch works
    on the cached window, and the request waits for it rather than starting over."""
    body = "".join(
        f"def order_total_{i}(order):\n"
        f"    subtotal = sum(item.price * item.quantity for item in order.items_{i})\n"
        f"    return subtotal * (1 + order.tax_rate_{i})\n\n"
        for i in range(120)
    )
    text = body + SOURCE
    cursor = (text.count("\n"), CURSOR[1])
    options = {
        "model": str(smollm2_path),
        "maxTokens": 12,
        "timeBudgetMs": 1500,
        "persistKv": False,
    }
    async with lsp_session(options) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, text)
        line, char = await _show_and_accept(client, URI, cursor, wait_for_prefetch=False)
        shown = (await server_stats(client))["requests"][-1]
        await inline_at(client, URI, line, char)
        stats = await server_stats(client)
        answer = stats["requests"][-1]
        assert answer["prefetched"] and answer["fromCache"], (shown, answer)
        assert stats["totals"]["prefetch_hits"] == 1
        # it waited for the prefetch at most the share of its budget the service allows
        assert answer["waitedMs"] <= 1500 * 0.75 + 100
