"""What happened to a suggestion: shown, accepted, partly accepted; and the totals.

- `workspace/executeCommand hanlin.acceptCompletion [itemId]`: the command each
  item carries (Copilot's convention); editors run it when the user accepts.
- an item counts as shown once: on `didShowCompletion`, on an accept or partial
  accept, or when the next request for its document comes where the user typed
  through it (`HanlinLanguageServer.note_request`: VS Code sends no didShow);
- `textDocument/didShowCompletion {item}` and
  `textDocument/didPartiallyAcceptCompletion {item, acceptedLength}`: custom
  notifications some clients send (Copilot's language server protocol).
- `workspace/executeCommand hanlin.stats`: the totals on disk plus what is
  not flushed yet, for an editor's "show statistics" command.

Counts go to hanlin.engine.completion.stats (a local file; nothing leaves the machine).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from hanlin.engine.completion.stats import load_completion_stats
from hanlin.lsp_server.handlers._params import field
from hanlin.lsp_server.handlers.completion import ACCEPT_COMMAND
from hanlin.lsp_server.server import HanlinLanguageServer, ShownItem

__all__ = ["STATS_COMMAND", "register"]

log = logging.getLogger(__name__)

STATS_COMMAND = "hanlin.stats"
DID_SHOW = "textDocument/didShowCompletion"
DID_PARTIALLY_ACCEPT = "textDocument/didPartiallyAcceptCompletion"


def _item_id(item: Any) -> str | None:
    """The id our accept command carries inside an item a client echoes back."""
    value = field(item, "command", "arguments", "0")
    return value if isinstance(value, str) else None


def _lookup(ls: HanlinLanguageServer, item_id: str | None, item: Any = None) -> ShownItem:
    if item_id and (known := ls.shown.get(item_id)) is not None:
        return known
    text = field(item, "insertText")
    if not isinstance(text, str):
        text = field(item, "insert_text")
    return ShownItem(language="", text=text if isinstance(text, str) else "")


def register(server: HanlinLanguageServer) -> None:
    @server.command(ACCEPT_COMMAND)
    async def accept_completion(ls: HanlinLanguageServer, *args: Any) -> None:
        item_id = args[0] if args and isinstance(args[0], str) else None
        if item_id is None and args:
            item_id = field(args[0], "id")
        shown = _lookup(ls, item_id)
        # what was accepted was on screen, whether or not the client said so
        ls.count_shown(shown, item_id)
        ls.shown.pop(item_id or "", None)
        ls.acceptance.accepted(shown.language, len(shown.text))
        await ls.loop.run_in_executor(None, ls.flush_stats)

    @server.command(STATS_COMMAND)
    async def show_stats(ls: HanlinLanguageServer, *args: Any) -> dict[str, Any]:
        await ls.loop.run_in_executor(None, ls.flush_stats)
        stats = await ls.loop.run_in_executor(None, load_completion_stats)
        total = stats.total
        return {
            "total": asdict(total),
            "acceptanceRate": total.acceptance_rate,
            "languages": {k: asdict(v) for k, v in stats.languages.items()},
            "since": stats.since,
            "updated": stats.updated,
            "path": str(ls.acceptance.path),
        }

    @server.feature(DID_SHOW)
    def did_show(ls: HanlinLanguageServer, params: Any) -> None:
        item = field(params, "item")
        item_id = _item_id(item)
        ls.count_shown(_lookup(ls, item_id, item), item_id)

    @server.feature(DID_PARTIALLY_ACCEPT)
    def did_partially_accept(ls: HanlinLanguageServer, params: Any) -> None:
        item = field(params, "item")
        length = field(params, "acceptedLength")
        item_id = _item_id(item)
        shown = _lookup(ls, item_id, item)
        ls.count_shown(shown, item_id)
        chars = length if isinstance(length, int) and length >= 0 else len(shown.text)
        ls.acceptance.partially_accepted(shown.language, chars)
