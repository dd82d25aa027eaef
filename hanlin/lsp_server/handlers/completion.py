"""textDocument/inlineCompletion (ghost text), textDocument/completion (fallback),
and `hanlin/completionStats` (per-request engine figures, for the benchmark).

Handlers are thin and async: they snapshot the document, hand the blocking
completion to the generation thread and await it. A newer request for the
same document flips the older one's cancel token (the engine checks it
between tokens); `$/cancelRequest` cancels the awaiting task, which flips the
token too. Requests before the model is ready, for unknown documents or for
positions outside the document get no item, at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from lsprotocol import types

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import HanlinError
from hanlin.lsp_server.documents import utf16_len
from hanlin.lsp_server.handlers.context import add_to_ring, build_request, commit_ring
from hanlin.lsp_server.server import SHOWN_ANCHOR_CHARS, HanlinLanguageServer

__all__ = ["ACCEPT_COMMAND", "TRIGGER_CHARACTERS", "Found", "complete_at", "register"]

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "hanlin.acceptCompletion"
#: how many per-request engine results `hanlin/completionStats` keeps
MAX_RECENT_RESULTS = 10_000
_WORD_TAIL = re.compile(r"[A-Za-z0-9_$]+$")
#: characters after which clients ask for items by themselves (Neovim 0.11's `autotrigger`
#: asks only after these; VS Code and JetBrains ask for inline completions on every edit):
#: a member, a call or an index opened, an argument or value begun, a new word
TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", ":", "=", " "]


@dataclass(frozen=True, slots=True)
class Found:
    """A completion to offer, and where it was asked for (for counting it as shown)."""

    text: str
    language: str
    offset: int
    before: str


async def complete_at(ls: HanlinLanguageServer, uri: str, position: types.Position) -> Found | None:
    """The completion at a position, or None for "no item"."""
    doc = ls.documents.get(uri)
    if doc is None:
        return None
    offset = doc.offset_at(position.line, position.character, strict=True)
    if offset is None:
        return None
    ls.note_request(uri, doc.text, offset)
    before = doc.text[max(0, offset - SHOWN_ANCHOR_CHARS) : offset]
    token = CancelToken()
    if (previous := ls.inflight.get(uri)) is not None:
        previous.cancel("a newer request for the same document")
    ls.inflight[uri] = token
    try:
        if not ls.service.ready:
            return None
        if ls.last_uri is not None and ls.last_uri != uri:
            add_to_ring(ls, ls.last_uri)  # the user left that file: its context is now settled
        if ls.last_uri != uri:
            commit_ring(ls)  # a focus change: this prompt differs from the last one anyway
        ls.last_uri = uri
        ls.last_line[uri] = position.line
        config = ls.config
        request = build_request(ls, doc, offset, config)
        try:
            result = await ls.run_blocking(ls.service.complete, request, token)
        except asyncio.CancelledError:
            token.cancel("the client cancelled the request")
            raise
        except HanlinError as exc:
            log.warning("completion failed: %s", exc)
            return None
    finally:
        if ls.inflight.get(uri) is token:
            del ls.inflight[uri]
    if result is None:
        return None
    ls.recent_results.append(result.to_dict())
    if len(ls.recent_results) > MAX_RECENT_RESULTS:
        del ls.recent_results[: len(ls.recent_results) - MAX_RECENT_RESULTS]
    ls.note_result(
        getattr(result, "stop_reason", None),
        result.text,
        getattr(result, "prompt_tokens", None),
        logged=bool(getattr(result, "budget_note", None)),  # completion_service logged it
    )
    if not result.text:
        return None
    return Found(result.text, doc.language_id, offset, before)


def _remember(ls: HanlinLanguageServer, uri: str, found: Found) -> str:
    item_id = ls.remember_item(
        found.language, found.text, uri=uri, offset=found.offset, before=found.before
    )
    ls.acceptance.offered(found.language)
    return item_id


def _accept_command(item_id: str) -> types.Command:
    return types.Command(
        title="Accept Hanlin completion", command=ACCEPT_COMMAND, arguments=[item_id]
    )


def _client_has_inline_completion(ls: HanlinLanguageServer) -> bool:
    caps = ls.client_capabilities
    return bool(caps and caps.text_document and caps.text_document.inline_completion)


def _documentation(ls: HanlinLanguageServer, text: str, language: str) -> types.MarkupContent | str:
    """The whole suggestion, as a Markdown code block where the client renders Markdown."""
    caps = ls.client_capabilities
    formats = (
        caps.text_document.completion.completion_item.documentation_format
        if caps
        and caps.text_document
        and caps.text_document.completion
        and caps.text_document.completion.completion_item
        else None
    )
    if formats and types.MarkupKind.Markdown in formats:
        return types.MarkupContent(
            kind=types.MarkupKind.Markdown, value=f"```{language}\n{text}\n```"
        )
    return text


def register(server: HanlinLanguageServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: HanlinLanguageServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        found = await complete_at(ls, params.text_document.uri, params.position)
        if found is None:
            return types.InlineCompletionList(items=[])
        text = found.text
        item_id = _remember(ls, params.text_document.uri, found)
        return types.InlineCompletionList(
            items=[
                types.InlineCompletionItem(
                    insert_text=text,
                    range=types.Range(start=params.position, end=params.position),
                    command=_accept_command(item_id),
                )
            ]
        )

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(resolve_provider=False, trigger_characters=TRIGGER_CHARACTERS),
    )
    async def completion(
        ls: HanlinLanguageServer, params: types.CompletionParams
    ) -> types.CompletionList | None:
        # Clients with ghost text ask inlineCompletion; answering here too would
        # run the model twice per keystroke and show the same text twice.
        if _client_has_inline_completion(ls):
            return None
        uri = params.text_document.uri
        found = await complete_at(ls, uri, params.position)
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        text, language = found.text, found.language
        doc = ls.documents.get(uri)
        offset = doc.offset_at(params.position.line, params.position.character) if doc else None
        if doc is None or offset is None:  # closed while we were generating
            return types.CompletionList(is_incomplete=True, items=[])
        # Replace the word being typed by word+completion, so that clients which
        # filter by the word before the cursor keep the item.
        match = _WORD_TAIL.search(doc.text[doc.line_starts[params.position.line] : offset])
        word = match.group(0) if match else ""
        start = types.Position(
            line=params.position.line,
            character=params.position.character - utf16_len(word, doc.encoding),
        )
        new_text = word + text
        first_line = new_text.split("\n", 1)[0].strip() or new_text.strip()
        item_id = _remember(ls, uri, found)
        item = types.CompletionItem(
            label=first_line[:80] + ("…" if len(first_line) > 80 or "\n" in text.strip() else ""),
            kind=types.CompletionItemKind.Text,
            detail="Hanlin",
            documentation=_documentation(ls, new_text, language),
            filter_text=new_text,
            sort_text="0",
            preselect=True,
            insert_text_format=types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(
                range=types.Range(start=start, end=params.position), new_text=new_text
            ),
            command=_accept_command(item_id),
        )
        return types.CompletionList(is_incomplete=True, items=[item])

    @server.feature("hanlin/completionStats")
    def completion_stats(ls: HanlinLanguageServer, params: Any) -> dict[str, Any]:
        requests, ls.recent_results = ls.recent_results, []
        return {
            "requests": requests,
            "totals": ls.service.engine_totals(),
            "state": ls.service.state,
            "model": ls.service.model_name,
            "template": ls.service.template_name,
        }
