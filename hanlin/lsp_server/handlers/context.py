"""Bridge from open documents to the engine's context ring and completion request.

The prompt sees a window of the current file around the cursor. The window's
start moves in coarse steps (multiples of `PREFIX_STEP`), not per keystroke,
so the prompt's beginning stays the same while the user types and the KV
cache keeps matching; the engine truncates further to the model's context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pygls.uris import to_fs_path

from hanlin.lsp_server.config import ServerConfig
from hanlin.lsp_server.documents import Document
from hanlin.lsp_server.server import HanlinLanguageServer

if TYPE_CHECKING:
    from hanlin.engine.completion.engine import CompletionRequest

__all__ = [
    "PREFIX_CHARS",
    "SUFFIX_CHARS",
    "add_to_ring",
    "build_request",
    "commit_ring",
    "filename_of",
    "warm_document",
]

#: at most this many characters before the cursor (plus up to one step) reach the engine
PREFIX_CHARS = 24_000
PREFIX_STEP = 4_096
#: at most this many characters after the cursor
SUFFIX_CHARS = 8_000


def filename_of(uri: str) -> str:
    return to_fs_path(uri) or uri


def add_to_ring(ls: HanlinLanguageServer, uri: str) -> None:
    """Offer a document's text (around its last cursor line) to the context ring.

    The chunk is only staged: it enters the ring (and so the prompt) at the next focus
    change or idle warm-up (`commit_ring`), never between two keystrokes of one file,
    where it would change the prompt's cached prefix.
    """
    ring = ls.context_ring
    doc = ls.documents.get(uri)
    if ring is None or doc is None or not ls.config.extra_context:
        return
    ring.stage(filename_of(uri), doc.text, cursor_line=ls.last_line.get(uri))


def commit_ring(ls: HanlinLanguageServer) -> None:
    """Let the staged chunks into the ring (the prompt is about to change anyway)."""
    if ls.context_ring is not None:
        ls.context_ring.commit_staged()


def warm_document(ls: HanlinLanguageServer, uri: str) -> bool:
    """Evaluate the prompt for `uri` in idle time, at its last cursor line or its end.

    Editors tell a server nothing about the cursor until the first request, so a file
    just opened is warmed where the user last was (or at its end, where typing into a
    new file starts); the ring's chunks and the file's header are shared by any cursor.
    """
    doc = ls.documents.get(uri)
    if doc is None or not ls.service.ready:
        return False
    commit_ring(ls)
    line = ls.last_line.get(uri)
    offset = len(doc.text) if line is None else doc.offset_at(line, 0) or 0
    return ls.service.warm(build_request(ls, doc, offset, ls.config))


def prefix_window_start(offset: int, text: str) -> int:
    """A start for the prefix window that changes only every PREFIX_STEP characters."""
    if offset <= PREFIX_CHARS:
        return 0
    start = ((offset - PREFIX_CHARS) // PREFIX_STEP) * PREFIX_STEP
    newline = text.find("\n", start, offset)
    return newline + 1 if newline != -1 else start


def build_request(
    ls: HanlinLanguageServer, doc: Document, offset: int, config: ServerConfig
) -> CompletionRequest:
    # imported here: hanlin.engine.completion.engine pulls in llama.cpp, which the server
    # must not wait for before answering `initialize`
    from hanlin.engine.completion.engine import CompletionRequest

    text = doc.text
    filename = filename_of(doc.uri)
    start = prefix_window_start(offset, text)
    end = min(len(text), offset + SUFFIX_CHARS)
    if end < len(text):
        newline = text.rfind("\n", offset, end)
        end = newline + 1 if newline != -1 else end
    ring = ls.context_ring
    extra = ring.chunks(exclude=filename) if ring is not None and config.extra_context else ()
    return CompletionRequest(
        prefix=text[start:offset],
        suffix=text[offset:end],
        language=doc.language_id or None,
        filename=filename,
        extra_context=extra,
        multiline=None if config.multiline else False,
        max_tokens=config.max_tokens,
        time_budget_ms=config.time_budget_ms,
        repo_name=ls.repo_name,
        small_window=config.small_window,
    )
