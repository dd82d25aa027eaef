"""The models of every configured remote server, fetched side by side.

Why its own module: `hanlin models list`, `hanlin remote list` and the window's model
picker all show remote models next to local ones, and one slow or dead server must
neither hide the others nor hold the listing for long. Each server is asked on its own
thread with short limits; a failure becomes that server's `error`, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.settings import RemoteEndpoint
from hanlin.engine.remote.client import RemoteClient, RemoteModel
from hanlin.engine.remote.endpoint import Endpoint, RemoteTarget, endpoint_from_settings
from hanlin.engine.remote.transport import Timeouts

__all__ = ["LISTING_TIMEOUTS", "RemoteListing", "list_remote_models"]

#: a listing answers quickly or not at all (the window and the CLI wait for it)
LISTING_TIMEOUTS = Timeouts(connect=3.0, first_byte=5.0, stall=5.0, total=8.0)


@dataclass(frozen=True)
class RemoteListing:
    """One server's answer: its models, or why there are none to show."""

    name: str
    url: str
    endpoint: Endpoint | None
    models: list[RemoteModel] = field(default_factory=list)
    error: HanlinError | None = None
    seconds: float | None = None

    def targets(self) -> list[RemoteTarget]:
        if self.endpoint is None:
            return []
        return [RemoteTarget(self.endpoint, m.id) for m in self.models]


def _one(remote: RemoteEndpoint, timeouts: Timeouts) -> RemoteListing:
    try:
        endpoint = endpoint_from_settings(remote)
    except HanlinError as exc:
        return RemoteListing(remote.name, remote.url, None, error=exc)
    try:
        models, seconds = RemoteClient(endpoint, timeouts).check()
    except HanlinError as exc:
        return RemoteListing(remote.name, endpoint.url, endpoint, error=exc)
    return RemoteListing(remote.name, endpoint.url, endpoint, models, seconds=seconds)


def list_remote_models(
    remotes: Sequence[RemoteEndpoint], timeouts: Timeouts = LISTING_TIMEOUTS
) -> list[RemoteListing]:
    """Every remote's models, in the order of `remotes` (settings.toml's order)."""
    if not remotes:
        return []
    with ThreadPoolExecutor(min(8, len(remotes)), thread_name_prefix="hanlin-remote-list") as pool:
        return list(pool.map(lambda r: _one(r, timeouts), remotes))
