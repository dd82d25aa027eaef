"""Log lines to the editor as `window/logMessage`, with their level.

Editors show a server's stderr as errors (VS Code's output channel prints every
stderr line as `[error]`), so once a client is connected the server's own log
records go to it as `window/logMessage` with the matching `MessageType` — what
pygls-based servers (the vscode-python-tools template), pyright and
rust-analyzer do — and leave stderr. Before `initialize`, and for records that
cannot be sent (pygls' own, which would log their own sending), stderr (or the
`--log-file`) still gets them; `--log-file` always gets everything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from lsprotocol import types

__all__ = ["ClientLogHandler", "message_type", "not_sent_to_client"]

#: records of these loggers never go to the client: sending a message logs one of theirs
_LOCAL_ONLY = ("pygls", "asyncio")
_SENT = "hanlin_sent_to_client"


def message_type(levelno: int) -> types.MessageType:
    """The LSP MessageType for a Python logging level."""
    if levelno >= logging.ERROR:
        return types.MessageType.Error
    if levelno >= logging.WARNING:
        return types.MessageType.Warning
    if levelno >= logging.INFO:
        return types.MessageType.Info
    return types.MessageType.Log


class ClientLogHandler(logging.Handler):
    """Sends records through `send(MessageType, text)` once `connect()` was called."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._send: Callable[[types.MessageType, str], Any] | None = None
        self._local = threading.local()
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def connect(self, send: Callable[[types.MessageType, str], Any] | None) -> None:
        """Start (a callable) or stop (None) sending records to the client."""
        self._send = send

    @property
    def connected(self) -> bool:
        return self._send is not None

    def filter(self, record: logging.LogRecord) -> bool:
        send = self._send
        if send is None or record.name.startswith(_LOCAL_ONLY):
            return False
        if getattr(self._local, "busy", False):  # a record logged while sending one
            return False
        return super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        send = self._send
        if send is None:
            return
        self._local.busy = True
        try:
            send(message_type(record.levelno), self.format(record))
            setattr(record, _SENT, True)
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False


def not_sent_to_client(record: logging.LogRecord) -> bool:
    """A filter for the stderr handler: keep only what the client did not get."""
    return not getattr(record, _SENT, False)
