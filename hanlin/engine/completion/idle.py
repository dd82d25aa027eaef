"""One background thread for completion work nobody waits for, cancelled by real requests.

Why: the time between keystrokes is the cheapest time the model has. A newly opened or
focused file, a cursor jump, the full prompt behind a small-window answer and the
completion the user sees after accepting a shown one (prefetch) can all be evaluated
then, so the next real request finds them in the KV cache or the response cache.
Idle work must never delay a real request: `interrupt()` flips the running task's
cancel token (the engine checks it between prompt chunks of ~150 ms and between
tokens) and drops what is queued. Only the newest task is kept: older idle work is
about a cursor the user has left.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import Cancelled, HanlinError

__all__ = ["IdleWorker"]

log = logging.getLogger(__name__)

IdleTask = Callable[[CancelToken], object]


class IdleWorker:
    """Runs the latest submitted task on a daemon thread; `interrupt()` cancels it."""

    def __init__(self, name: str = "hanlin-idle") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._pending: tuple[str, IdleTask] | None = None
        self._running: CancelToken | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        #: tasks run to the end / cancelled, by label (tests and the stats read them)
        self.done: dict[str, int] = {}
        self.cancelled: dict[str, int] = {}

    def submit(self, label: str, task: IdleTask) -> None:
        """Run `task(token)` when the thread is free, replacing any queued task."""
        with self._cond:
            if self._closed:
                return
            self._pending = (label, task)
            if self._running is not None:
                self._running.cancel("newer idle work")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def interrupt(self, reason: str = "a completion request") -> None:
        """Cancel the running task and drop the queued one (a real request needs the model)."""
        with self._cond:
            self._pending = None
            if self._running is not None:
                self._running.cancel(reason)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing runs or waits; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._pending is None and self._running is None, timeout
            )

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._pending is not None or self._running is not None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            if self._running is not None:
                self._running.cancel("shutting down")
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                assert self._pending is not None
                label, task = self._pending
                self._pending = None
                token = CancelToken()
                self._running = token
            try:
                task(token)
            except Cancelled:
                pass
            except HanlinError as exc:
                log.info("idle %s stopped: %s", label, exc)
            except Exception:
                log.exception("idle %s failed", label)
            finally:
                with self._cond:
                    counts = self.cancelled if token.cancelled else self.done
                    counts[label] = counts.get(label, 0) + 1
                    self._running = None
                    self._cond.notify_all()
