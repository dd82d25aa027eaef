"""hanlin-lsp with real models over stdio: completion, typing, cancellation, UTF-16, size.

SmolLM2-135M (no FIM tokens: the prefix-only template) through real llama.cpp,
and a tiny generated qwen2.5-coder-style GGUF for the FIM path.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsprotocol import types

from hanlin.engine.completion.stats import load_completion_stats
from tests.lsp_server.harness import (
    inline_at,
    inline_capabilities,
    insert,
    items_of,
    lsp_session,
    open_doc,
    server_stats,
    wait_for_state,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

URI = "file:///tmp/hanlin-test/fib.py"
SOURCE = (
    "def fibonacci(n):\n"
    '    """Return the n-th Fibonacci number."""\n'
    "    if n < 2:\n"
    "        return n\n"
    "    return "
)
CURSOR = (4, 11)


def _options(model: Path, **extra: object) -> dict[str, object]:
    return {"model": str(model), "maxTokens": 16, "timeBudgetMs": 20_000, **extra}


async def test_inline_completion_with_smollm2(smollm2_path: Path) -> None:
    async with lsp_session(_options(smollm2_path)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, SOURCE)
        result = await inline_at(client, URI, *CURSOR)
        items = items_of(result)
        assert len(items) == 1
        item = items[0]
        assert isinstance(item.insert_text, str) and item.insert_text.strip()
        assert "<|" not in item.insert_text  # never a special token
        assert item.range.start == types.Position(line=4, character=11)
        assert item.command is not None and item.command.command == "hanlin.acceptCompletion"
        stats = await server_stats(client)
        assert stats["template"] == "prefix-only"
        assert stats["requests"] and stats["requests"][-1]["text"] == item.insert_text
        # progress was reported while loading
        reports = [r for rs in client.progress_reports.values() for r in rs]
        assert any(isinstance(r, types.WorkDoneProgressBegin) for r in reports)
        assert any(isinstance(r, types.WorkDoneProgressEnd) for r in reports)

        # accepting runs the item's command: the stats file counts it, with its characters
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=item.command.command, arguments=item.command.arguments
            )
        )
    stats = load_completion_stats()
    assert stats.languages["python"].offered >= 1
    assert stats.languages["python"].accepted == 1
    assert stats.languages["python"].chars_accepted == len(item.insert_text)


async def test_typing_replay_reuses_the_kv_cache(smollm2_path: Path) -> None:
    """Type a function character by character, asking for a completion after each key."""
    typed = "    a, b = 0, 1\n    for _ in range(n):\n        a, b"
    async with lsp_session(_options(smollm2_path, maxTokens=8)) as client:
        assert await wait_for_state(client) == "ready"
        header = "def fib(n):\n"
        open_doc(client, URI, header)
        line, col, version = 1, 0, 1
        answered = 0
        for ch in typed:
            version += 1
            insert(client, URI, version, line, col, ch)
            if ch == "\n":
                line, col = line + 1, 0
            else:
                col += 1
            result = await inline_at(client, URI, line, col)
            answered += result is not None
        assert answered == len(typed)
        stats = await server_stats(client)
        requests = stats["requests"]
        assert len(requests) >= len(typed) // 2
        computed = [r for r in requests if not r["fromCache"]]
        # after the first request, each keystroke evaluates only a few new tokens
        assert computed
        later = computed[len(computed) // 2 :]
        assert sum(r["tokensCached"] for r in later) > sum(r["tokensEvaluated"] for r in later)


async def test_cancellation_storm_answers_the_latest(smollm2_path: Path) -> None:
    """Hundreds of edits and requests without waiting: every request is answered, the last
    one with a completion, and the server stays responsive."""
    async with lsp_session(_options(smollm2_path, maxTokens=12)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, "")
        text = "import os\n\n\ndef list_python_files(folder):\n    return [name for name in os."
        pending = []
        line, col, version = 0, 0, 1
        for ch in text * 3:
            version += 1
            insert(client, URI, version, line, col, ch)
            if ch == "\n":
                line, col = line + 1, 0
            else:
                col += 1
            pending.append(asyncio.ensure_future(inline_at(client, URI, line, col)))
        assert len(pending) > 200
        started = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 240)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors[:3]
        # superseded requests were dropped, so far fewer generations ran than requests
        stats = await server_stats(client)
        assert len(stats["requests"]) < len(pending) / 2
        assert stats["totals"]["cancelled"] + len(pending) - len(stats["requests"]) > 0
        last = items_of(results[-1])
        assert last and last[0].insert_text.strip()
        assert time.monotonic() - started < 240
        # still responsive afterwards
        again = await asyncio.wait_for(inline_at(client, URI, line, col), 60)
        assert items_of(again)


async def test_cancel_request_is_honoured(smollm2_path: Path) -> None:
    # no small-window answer and no warm-up on open: the request must still be reading its
    # whole prompt when the cancel lands
    options = _options(
        smollm2_path, maxTokens=200, multiline=True, smallWindow=False, idleWork=False
    )
    async with lsp_session(options) as client:
        assert await wait_for_state(client) == "ready"
        # a long prefix, so the request is still evaluating its prompt when the cancel lands
        story = "".join(
            f"# Chapter {i}: the dragon flew over mountain {i} and river {i * 7} at dawn.\n"
            for i in range(120)
        )
        open_doc(client, URI, story + "\n")
        future = client.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=URI),
                position=types.Position(line=120, character=0),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            ),
        )
        msg_id = next(reversed(client.protocol._request_futures))
        await asyncio.sleep(0.05)
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        with pytest.raises(Exception, match=r"(?i)cancel"):
            await asyncio.wait_for(asyncio.wrap_future(future), 60)
        # the server is free again at once
        open_doc(client, "file:///tmp/hanlin-test/b.py", "x = ")
        assert await asyncio.wait_for(inline_at(client, "file:///tmp/hanlin-test/b.py", 0, 4), 60)


async def test_utf16_positions_with_emoji_and_cjk(smollm2_path: Path) -> None:
    text = 'greeting = "你好 😀😀"  # 问候\nname = "世界🌍"\nprint(greeting, '
    async with lsp_session(_options(smollm2_path, maxTokens=8)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, text)
        # end of line 2 in UTF-16 units (no astral characters there): 16
        result = await inline_at(client, URI, 2, 16)
        items = items_of(result)
        assert items and items[0].range.start.character == 16
        stats = await server_stats(client)
        assert stats["requests"][-1]["promptTokens"] > 0
        # line 0 is 27 UTF-16 units long (two emoji count 2 each); 28 is past its end
        assert items_of(await inline_at(client, URI, 0, 28)) == []
        # an incremental edit positioned after the emoji lands in the right place
        insert(client, URI, 2, 1, 13, "!")  # after '世界🌍' (2 + 2 units) + 'name = "' (8)
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=URI))
        )
        result = await inline_at(client, URI, 1, 15)  # after '!"' on line 1
        assert result is not None
        stats = await server_stats(client)
        assert stats["requests"] == [] or stats["requests"][-1]["promptTokens"] > 0


async def test_five_megabyte_document(smollm2_path: Path) -> None:
    line = "value_{0} = compute(value_{1}, factor=3.5)  # step {0}\n"
    body = "".join(line.format(i, i - 1) for i in range(1, 90_000))
    assert len(body) > 5_000_000
    async with lsp_session(_options(smollm2_path, maxTokens=8)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, body)
        last_line = body.count("\n")
        insert(client, URI, 2, last_line, 0, "value_90000 = compute(")
        started = time.monotonic()
        result = await asyncio.wait_for(inline_at(client, URI, last_line, 22), 120)
        assert result is not None
        assert time.monotonic() - started < 120
        stats = await server_stats(client)
        # the model ran, on a window of the file, not five megabytes of tokens
        assert 0 < stats["requests"][-1]["promptTokens"] < 20_000
        # an edit in the middle of the big document and a request there
        insert(client, URI, 3, 45_000, 0, "# edited\n")
        assert await asyncio.wait_for(inline_at(client, URI, 45_000, 9), 120) is not None


async def test_completion_fallback_without_inline_capability(smollm2_path: Path) -> None:
    caps = inline_capabilities(inline=False)
    async with lsp_session(_options(smollm2_path), capabilities=caps) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, SOURCE + "fib")
        result = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=URI),
                position=types.Position(line=4, character=14),
            )
        )
        assert isinstance(result, types.CompletionList)
        assert len(result.items) == 1
        item = result.items[0]
        edit = item.text_edit
        assert isinstance(edit, types.TextEdit)
        # the edit replaces the word being typed with word + completion
        assert edit.range.start == types.Position(line=4, character=11)
        assert edit.new_text.startswith("fib") and len(edit.new_text) > 3
        assert item.filter_text == edit.new_text
        assert item.command and item.command.command == "hanlin.acceptCompletion"


async def test_completion_is_not_duplicated_for_inline_clients(smollm2_path: Path) -> None:
    async with lsp_session(_options(smollm2_path)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, SOURCE)
        result = await client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=URI),
                position=types.Position(line=4, character=11),
            )
        )
        assert result is None or not result.items
        assert (await server_stats(client))["requests"] == []


async def test_max_tokens_setting_change_applies(smollm2_path: Path) -> None:
    async with lsp_session(
        _options(smollm2_path, maxTokens=24), configuration={"hanlin": {"maxTokens": 24}}
    ) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, "# Numbers from one to fifty:\n# 1, 2, 3, 4, 5,")
        await inline_at(client, URI, 1, 16)
        before = (await server_stats(client))["requests"][-1]
        client.set_configuration({"hanlin": {"maxTokens": 2}})
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await asyncio.sleep(0.5)
        open_doc(client, "file:///tmp/hanlin-test/other.py", "# Count: 10, 11, 12,")
        await inline_at(client, "file:///tmp/hanlin-test/other.py", 0, 20)
        after = (await server_stats(client))["requests"][-1]
        assert after["generatedTokens"] <= 2 < before["generatedTokens"] or (
            before["stopReason"] != "length" and after["generatedTokens"] <= 2
        )
        # the model stayed loaded: no reload for a request-level setting
        assert (await server_stats(client))["state"] == "ready"


async def test_fim_model_uses_its_fim_template(tiny_fim_path: Path) -> None:
    async with lsp_session(_options(tiny_fim_path, maxTokens=8)) as client:
        assert await wait_for_state(client) == "ready"
        open_doc(client, URI, "def f(x):\n    return \n\nprint(f(2))\n")
        result = await inline_at(client, URI, 1, 11)
        assert result is not None
        stats = await server_stats(client)
        assert stats["template"] == "qwen2.5-coder"
        request = stats["requests"][-1]
        assert request["template"] == "qwen2.5-coder"
        assert request["promptTokens"] > 0
        for item in items_of(result):
            assert "<|fim" not in item.insert_text and "<|endoftext|>" not in item.insert_text


async def test_a_file_opened_is_read_while_the_user_reads(smollm2_path: Path) -> None:
    """didOpen warms the prompt in idle time: the first keystroke at the end of the file
    then reads only a few new tokens, where without idle work it reads the whole file."""
    story = "".join(f"def step_{i}(x):\n    return x * {i} + {i * 3}\n\n" for i in range(24))
    evaluated = {}
    for idle in (True, False):
        # persistKv off: the second session would otherwise start from the first one's
        # saved state (which is what persistence is for, tested in tests/engine/completion)
        options = _options(
            smollm2_path,
            maxTokens=4,
            idleWork=idle,
            extraContext=False,
            smallWindow=False,
            persistKv=False,
            timeBudgetMs=300_000,  # the whole prompt, however loaded the machine
        )
        async with lsp_session(options) as client:
            assert await wait_for_state(client) == "ready"
            open_doc(client, URI, story)
            deadline = time.monotonic() + 90
            while idle and time.monotonic() < deadline:  # the user reads the file
                if (await server_stats(client))["totals"]["warm_tokens"] >= 300:
                    break
                await asyncio.sleep(0.25)
            await inline_at(client, URI, story.count("\n"), 0)
            stats = await server_stats(client)
            evaluated[idle] = stats["requests"][-1]["tokensEvaluated"]
    assert evaluated[False] > 300
    assert evaluated[True] < evaluated[False] / 5
