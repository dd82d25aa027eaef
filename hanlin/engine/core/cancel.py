"""Cancellation tokens and progress reports for long-running engine work.

Engine calls are plain synchronous functions: the caller picks the thread.
Each long call takes a `CancelToken` and checks it between chunks or tokens,
raising `Cancelled`; each takes an optional `on_progress` callback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from hanlin.engine.core.errors import Cancelled


class CancelToken:
    """A thread-safe, one-way flag: once cancelled, it stays cancelled."""

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason or "Cancelled.")

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking early on cancel. True if cancelled."""
        return self._event.wait(timeout)


#: A token nobody will ever cancel, for callers that do not need one.
NEVER_CANCELLED = CancelToken()


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress report. `total` is None when unknown (indeterminate)."""

    stage: str
    done: float = 0.0
    total: float | None = None
    detail: str = ""
    #: bytes or tokens per second, when meaningful
    rate: float | None = None
    #: seconds left, when it can be estimated
    eta: float | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


ProgressCallback = Callable[[Progress], None]
