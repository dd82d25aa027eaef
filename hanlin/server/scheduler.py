"""Parallel slots, a bounded queue, and shutdown: who may generate now, who waits, who is refused.

`--parallel N` requests generate at once (one sequence each in the model's batch
decoder); up to `--max-queue` more wait, first come first served; any more get 503 with
a `Retry-After` estimated from how long requests have been taking, so clients back off
instead of piling up. A waiting request whose client goes away leaves the queue at once
(its cancel token is polled while it waits). `shutdown()` refuses new requests and
cancels every running generation, so SIGTERM ends open streams promptly.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hanlin.engine.core.cancel import CancelToken

__all__ = ["ClientGone", "QueueFull", "Scheduler", "ShuttingDown"]

#: how often a waiting request checks whether its client is still there
_POLL_S = 0.1


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full; retry after {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The server is stopping: no new work."""


class ClientGone(Exception):
    """The client disconnected while its request waited for a slot."""


class Scheduler:
    def __init__(self, parallel: int, max_queue: int) -> None:
        self.parallel = parallel
        self.max_queue = max_queue
        self.busy = 0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._running: set[CancelToken] = set()
        self.closing = False
        self.rejected = 0
        self.served = 0
        #: moving average of how long a slot is held (seconds), for Retry-After
        self._avg_s = 5.0

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def retry_after(self) -> int:
        ahead = self.waiting + 1
        return max(1, min(120, math.ceil(self._avg_s * ahead / self.parallel)))

    async def _acquire(self, cancel: CancelToken) -> None:
        if self.closing:
            raise ShuttingDown
        if self.busy < self.parallel and not self._queue:
            self.busy += 1
            return
        if len(self._queue) >= self.max_queue:
            self.rejected += 1
            raise QueueFull(self.retry_after())
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(fut)
        try:
            while True:
                done, _ = await asyncio.wait({fut}, timeout=_POLL_S)
                if done:
                    return  # the slot was handed over by `_release` (busy unchanged)
                if self.closing:
                    raise ShuttingDown
                if cancel.cancelled:
                    raise ClientGone
        except BaseException:
            if fut in self._queue:
                self._queue.remove(fut)
            elif fut.done() and not fut.cancelled():
                self._release()  # handed a slot just as we left: pass it on
            raise

    def _release(self) -> None:
        while self._queue:
            fut = self._queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.busy -= 1

    @asynccontextmanager
    async def slot(self, cancel: CancelToken) -> AsyncIterator[None]:
        """Hold one of the `parallel` slots (waiting in the queue first if all are busy)."""
        await self._acquire(cancel)
        if self.closing:
            self._release()
            raise ShuttingDown
        started = time.monotonic()
        self._running.add(cancel)
        try:
            yield
        finally:
            self._running.discard(cancel)
            self.served += 1
            held = time.monotonic() - started
            self._avg_s = 0.8 * self._avg_s + 0.2 * held
            self._release()

    def shutdown(self, reason: str = "The server is shutting down") -> None:
        """Refuse new requests, empty the queue, cancel running generations."""
        self.closing = True
        for token in list(self._running):
            token.cancel(reason)
