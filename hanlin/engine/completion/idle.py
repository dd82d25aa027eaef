"""One background thread for completion work nobody waits for, cancelled by real requests.

Why: the time between keystrokes is the cheapest time the model has. A newly opened or
focused file, a cursor jump, the full prompt behind a small-window answer and the
completion the user sees after accepting a shown one (prefetch) can all be evaluated
then, so the next real request finds them in the KV cache or the response cache.
Idle work must never delay a real request: `interrupt()` flips the running task's
cancel token (the engine checks it between prompt chunks of ~150 ms and between
tokens) and drops what is queued. Only the newest task is kept: older idle work is
about a cursor the user has left.

One exception: a task may carry a `key` saying which request it computes the answer
of (a prefetch: the request after accepting the shown completion). When exactly that
request arrives while the task still runs, cancelling it would throw away work that is
most of the way to the answer, so `interrupt(unless=key, wait_s=...)` lets it finish —
but only when its token (`IdleToken`) says its prompt will be evaluated within the wait,
and then it must stop generating by the end of the wait (`finish_by`; its answer so far
is the answer). A task still far from its answer is cancelled at once, as any other.
Follow-up tasks (`then`, e.g. the full prompt's warm-up after a prefetch from the small
window) run only when nothing interrupted or replaced the chain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import Cancelled, HanlinError

__all__ = ["IdleTask", "IdleToken", "IdleWorker"]

log = logging.getLogger(__name__)

#: how often a join re-checks the caller's own cancel token (seconds)
_JOIN_POLL_S = 0.01
#: a joined task stops generating at `finish_by`, after its current step: this long at most
JOIN_GRACE_S = 0.15
#: a join needs the task's prompt evaluated at least this long before the wait ends (time
#: to write something)
JOIN_MIN_GENERATE_S = 0.05


class IdleToken(CancelToken):
    """The cancel token of an idle task, with what a request that would join it needs.

    The task (the engine's prefetch) sets `prompt_eta` (a `time.perf_counter()` time: when
    it expects its prompt evaluated; the time it was, once it is); a joining request sets
    `finish_by`, the time by which the task stops generating and answers with what it has.
    """

    __slots__ = ("finish_by", "prompt_eta")

    def __init__(self) -> None:
        super().__init__()
        self.prompt_eta: float | None = None
        self.finish_by: float | None = None


IdleTask = Callable[[CancelToken], object]


@dataclass(frozen=True, slots=True)
class _Job:
    label: str
    task: IdleTask
    key: Hashable | None = None


class IdleWorker:
    """Runs the latest submitted task on a daemon thread; `interrupt()` cancels it."""

    def __init__(self, name: str = "hanlin-idle") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._running: IdleToken | None = None
        self._running_key: Hashable | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        #: tasks run to the end / cancelled, by label (tests and the stats read them)
        self.done: dict[str, int] = {}
        self.cancelled: dict[str, int] = {}
        #: joins: a keyed task that ended while its request waited; one the request did not
        #: wait for (too far from its answer) or gave up on (not done within the wait)
        self.joined = 0
        self.given_up = 0

    def submit(
        self,
        label: str,
        task: IdleTask,
        *,
        key: Hashable | None = None,
        then: Sequence[tuple[str, IdleTask]] = (),
    ) -> bool:
        """Run `task(token)` when the thread is free, replacing any queued task (and
        cancelling the running one), then the `then` tasks in order.

        A task whose `key` equals the running task's is already being computed: nothing
        changes and False is returned.
        """
        with self._cond:
            if self._closed:
                return False
            running = self._running
            if (
                key is not None
                and running is not None
                and not running.cancelled
                and self._running_key == key
            ):
                return False
            self._pending = [_Job(label, task, key), *(_Job(lb, t) for lb, t in then)]
            if running is not None:
                running.cancel("newer idle work")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return True

    def interrupt(
        self,
        reason: str = "a completion request",
        *,
        unless: Hashable | None = None,
        wait_s: float = 0.0,
        cancel: CancelToken | None = None,
    ) -> bool:
        """Cancel the running task and drop the queued ones (a real request needs the model).

        When the running task's key equals `unless` (it computes what the caller wants) and
        its prompt will be evaluated within `wait_s`, it runs on instead, told to finish by
        the end of that time (the wait also ends when `cancel` fires); returns True when it
        ended by itself.
        """
        with self._cond:
            self._pending = []
            running = self._running
            if running is None:
                return False
            if unless is not None and self._running_key == unless and not running.cancelled:
                now = time.perf_counter()
                finish_by = now + max(0.0, wait_s)
                eta = running.prompt_eta
                if eta is not None and eta <= finish_by - JOIN_MIN_GENERATE_S:
                    running.finish_by = finish_by
                    deadline = time.monotonic() + max(0.0, wait_s) + JOIN_GRACE_S
                    while self._running is running:
                        left = deadline - time.monotonic()
                        if left <= 0 or (cancel is not None and cancel.cancelled):
                            break
                        self._cond.wait(min(left, _JOIN_POLL_S) if cancel is not None else left)
                    if self._running is not running:
                        self.joined += 1
                        return True
                self.given_up += 1
            running.cancel(reason)
            return False

    @property
    def running_key(self) -> Hashable | None:
        """The key of the task running now (None: none, or it has no key)."""
        with self._cond:
            return self._running_key if self._running is not None else None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing runs or waits; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and self._running is None, timeout)

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._pending) or self._running is not None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = []
            if self._running is not None:
                self._running.cancel("shutting down")
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                if self._closed:
                    return
                job = self._pending.pop(0)
                token = IdleToken()
                self._running, self._running_key = token, job.key
            try:
                job.task(token)
            except Cancelled:
                pass
            except HanlinError as exc:
                log.info("idle %s stopped: %s", job.label, exc)
            except Exception:
                log.exception("idle %s failed", job.label)
            finally:
                with self._cond:
                    counts = self.cancelled if token.cancelled else self.done
                    counts[job.label] = counts.get(job.label, 0) + 1
                    self._running, self._running_key = None, None
                    self._cond.notify_all()
