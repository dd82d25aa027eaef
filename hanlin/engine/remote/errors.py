"""What can go wrong talking to a remote OpenAI-compatible server, each with what to do next.

Why a module of its own: the front ends (CLI one-liner, the window's banner, the
language server's `window/showMessage`) map `HanlinError` in one place each, and a
remote server fails in more ways than a local file does. Every case the user can
act on differently is its own class, so a front end (or a test) can tell an
unreachable host from a refused key without parsing the message.
"""

from __future__ import annotations

from hanlin.engine.core.errors import HanlinError

__all__ = [
    "RemoteAuthError",
    "RemoteBusyError",
    "RemoteDisconnectedError",
    "RemoteError",
    "RemoteHTTPError",
    "RemoteProtocolError",
    "RemoteTimeoutError",
    "RemoteUnreachableError",
    "RemoteUnsupportedError",
]


class RemoteError(HanlinError):
    """A remote server could not be used for this request."""


class RemoteUnreachableError(RemoteError):
    """Nothing answers at the address (connection refused, unknown host, connect timeout)."""


class RemoteAuthError(RemoteError):
    """The server refused the API key, or wants one and none was given (HTTP 401/403)."""


class RemoteTimeoutError(RemoteError):
    """The server accepted the connection but did not start answering in time."""


class RemoteProtocolError(RemoteError):
    """The server answered something that is not the OpenAI-compatible API (bad JSON...)."""


class RemoteDisconnectedError(RemoteError):
    """The connection broke (or stalled) after the answer had started."""


class RemoteBusyError(RemoteError):
    """HTTP 503: the server is loading a model or its queue is full; try again later."""

    def __init__(self, message: str, hint: str | None = None, retry_after: float | None = None):
        super().__init__(message, hint)
        self.retry_after = retry_after


class RemoteUnsupportedError(RemoteError):
    """The server does not offer this endpoint or feature (404/405/501 on it)."""


class RemoteHTTPError(RemoteError):
    """Any other HTTP error; the server's own message is in `message`."""

    def __init__(self, message: str, hint: str | None = None, status: int = 0):
        super().__init__(message, hint)
        self.status = status
