"""Document synchronisation: didOpen / didChange (full and incremental) / didSave / didClose.

Each edit also cancels the completion in flight for that document: its answer
would describe text that no longer exists. Other files feed the context ring
when opened or saved (never per keystroke, so prompts stay prefix-stable).
"""

from __future__ import annotations

import logging

from lsprotocol import types

from hanlin.lsp_server.handlers.context import add_to_ring, warm_document
from hanlin.lsp_server.server import HanlinLanguageServer

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(server: HanlinLanguageServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: HanlinLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        ls.documents.open(item.uri, item.text, item.version, item.language_id)
        add_to_ring(ls, item.uri)
        warm_document(ls, item.uri)  # while the user reads; the first keystroke cancels it

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: HanlinLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        doc = ls.documents.get(uri)
        if doc is None:
            log.warning("didChange for a document that is not open: %s", uri)
            return
        if (token := ls.inflight.get(uri)) is not None:
            token.cancel("the document changed")
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                r = change.range
                doc.apply_edit(
                    (r.start.line, r.start.character), (r.end.line, r.end.character), change.text
                )
            else:
                doc.replace_all(change.text)
        doc.version = params.text_document.version

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: HanlinLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        doc = ls.documents.get(params.text_document.uri)
        if doc is not None and params.text is not None:
            doc.replace_all(params.text)
        add_to_ring(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: HanlinLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        if (token := ls.inflight.pop(uri, None)) is not None:
            token.cancel("the document was closed")
        ls.documents.close(uri)
        ls.last_line.pop(uri, None)
        if ls.last_uri == uri:
            ls.last_uri = None
