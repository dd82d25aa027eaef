"""Drive the real, installed `hanlin-lsp` over stdio with pytest-lsp's client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

from tests.support.commands import HANLIN_LSP

ROOT = Path(__file__).resolve().parents[2]
SERVER_COMMAND = [*HANLIN_LSP, "--log-level", "debug"]


def inline_capabilities(
    *, inline: bool = True, configuration: bool = True
) -> types.ClientCapabilities:
    """What an editor like VS Code advertises (the parts that matter here)."""
    return types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(configuration=configuration),
        window=types.WindowClientCapabilities(work_done_progress=True),
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
            completion=types.CompletionClientCapabilities(),
            inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
        ),
    )


@contextlib.asynccontextmanager
async def lsp_session(
    init_options: dict[str, Any] | None = None,
    *,
    capabilities: types.ClientCapabilities | None = None,
    configuration: dict[str, Any] | None = None,
    root: Path | None = None,
) -> AsyncIterator[LanguageClient]:
    """Start the server, initialize it, yield the client; shut down cleanly afterwards."""
    client = make_test_lsp_client()
    client.status_updates: list[dict[str, Any]] = []  # type: ignore[misc]

    @client.feature("hanlin/status")
    def _status(params: Any) -> None:
        client.status_updates.append(_plain(params))  # type: ignore[attr-defined]

    if configuration is not None:
        client.set_configuration(configuration)
    await client.start_io(*SERVER_COMMAND, cwd=str(ROOT))
    root = root or ROOT
    client.init_result = await client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=capabilities or inline_capabilities(),
            initialization_options=init_options,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        )
    )
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 20)
        with contextlib.suppress(Exception):
            await client.stop()


def _plain(value: Any) -> Any:
    """pygls hands custom params over as named tuples; turn them into dicts."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def server_stats(client: LanguageClient) -> dict[str, Any]:
    result = await client.protocol.send_request_async("hanlin/completionStats", None)
    return _plain(result)


async def wait_for_state(
    client: LanguageClient, states: tuple[str, ...] = ("ready", "failed"), timeout: float = 120
) -> str:
    """Poll `hanlin/completionStats` until the model reaches one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await server_stats(client)
        if stats["state"] in states:
            return stats["state"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"model state stayed {stats['state']!r}")
        await asyncio.sleep(0.2)


def open_doc(
    client: LanguageClient, uri: str, text: str, language: str = "python", version: int = 1
) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=version, text=text
            )
        )
    )


def insert(client: LanguageClient, uri: str, version: int, line: int, char: int, text: str) -> None:
    pos = types.Position(line=line, character=char)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=pos, end=pos), text=text
                )
            ],
        )
    )


async def inline_at(
    client: LanguageClient, uri: str, line: int, char: int
) -> types.InlineCompletionList | list[types.InlineCompletionItem] | None:
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=char),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )


def items_of(result: Any) -> list[types.InlineCompletionItem]:
    if result is None:
        return []
    if isinstance(result, list):
        return result
    return list(result.items)


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def raw_message(obj: Any) -> bytes:
    return frame(json.dumps(obj).encode("utf-8"))
