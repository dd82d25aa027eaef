"""LSP handlers, one small module per concern; `register_all` wires them to a server."""

from __future__ import annotations

from hanlin.lsp_server.handlers import acceptance, completion, lifecycle, sync
from hanlin.lsp_server.server import HanlinLanguageServer

__all__ = ["register_all"]


def register_all(server: HanlinLanguageServer) -> None:
    lifecycle.register(server)
    sync.register(server)
    completion.register(server)
    acceptance.register(server)
