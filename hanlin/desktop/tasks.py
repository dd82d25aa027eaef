"""The one runner through which the Qt front end calls the engine.

Why: engine calls (loading a model, downloading, generating) are plain synchronous
functions that can take seconds or minutes. Running them on the GUI thread would
freeze the window, and hand-rolled threads in every widget leak, race and crash on
quit. Every widget therefore submits its work here (the git-cola ``QRunnable``
pattern): the task runs on a private ``QThreadPool``; its result, error and
progress come back *on the GUI thread* through a ``QObject`` channel with queued
signals, so callbacks may touch widgets freely.

API::

    runner = TaskRunner(parent)
    handle = runner.submit(
        fn,                      # fn(cancel: CancelToken, on_progress: ProgressCallback) -> T
        on_done=callback,        # callback(result: T)                 (GUI thread)
        on_error=callback,       # callback(error: BaseException)      (GUI thread)
        on_progress=callback,    # callback(progress)                  (GUI thread, coalesced)
        on_cancelled=callback,   # callback() when fn raised Cancelled (GUI thread)
        key="chat",              # optional: a newer task with the same key makes
    )                            #   this one's result stale (dropped, never delivered)
    handle.cancel()              # flips the task's CancelToken; fn decides how to stop
    runner.cancel_all()          # every running task
    runner.shutdown(5000)        # on quit: cancel all, then waitForDone(timeout_ms)

Rules the runner guarantees:

- ``fn`` never runs on the GUI thread; callbacks always do.
- Exactly one of ``on_done`` / ``on_error`` / ``on_cancelled`` is called per task,
  unless the task went stale (a newer task with the same ``key`` was submitted) or
  the runner was shut down, in which case none is.
- A task that raises ``hanlin.engine.core.errors.Cancelled`` calls ``on_cancelled`` (if given),
  never ``on_error``. A cancelled task that returns normally (e.g. ``stream_chat``
  returns the partial reply) calls ``on_done`` with what it returned.
- An error with no ``on_error`` is re-raised on the GUI thread, where the
  application's excepthook (``hanlin.desktop.errors``) shows it; under pytest-qt that
  fails the test, as unexpected errors should.
- Progress is coalesced: the worker may report thousands of times a second; the
  GUI receives the latest value whenever it is free, never a backlog. ``fn`` may
  report anything (a ``Progress``, a string, a partial text); it is passed through.
- ``runner.busyChanged(bool)`` is emitted when the number of running tasks goes
  from 0 to 1 and back; ``runner.active_count()`` tells how many run now.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import Cancelled

T = TypeVar("T")

TaskFn = Callable[[CancelToken, Callable[[Any], None]], T]

_ids = itertools.count(1)


@dataclass(eq=False)
class TaskHandle(Generic[T]):
    """What ``submit`` returns: the task's id, key and cancel token."""

    id: int
    key: str | None
    token: CancelToken
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self, reason: str = "Stopped.") -> None:
        """Ask the task to stop. It stops at its next cancellation check."""
        self.token.cancel(reason)

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    @property
    def finished(self) -> bool:
        """True once the worker function returned or raised (callbacks may still be queued)."""
        return self._finished.is_set()


@dataclass(eq=False)
class _Task:
    handle: TaskHandle[Any]
    fn: TaskFn[Any]
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None
    on_progress: Callable[[Any], None] | None
    on_cancelled: Callable[[], None] | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    latest_progress: Any = None
    progress_pending: bool = False


class _Channel(QObject):
    """Lives on the GUI thread; workers emit on it, Qt queues the calls to the GUI thread."""

    done = Signal(int, object)
    failed = Signal(int, object)
    progress = Signal(int)


class _Runnable(QRunnable):
    def __init__(self, task: _Task, channel: _Channel) -> None:
        super().__init__()
        self._task = task
        self._channel = channel
        self.setAutoDelete(True)

    def run(self) -> None:  # worker thread
        task = self._task
        handle = task.handle

        def report(value: Any) -> None:
            # Coalesce: keep only the newest value; queue a delivery only if none is pending.
            with task.lock:
                task.latest_progress = value
                if task.progress_pending:
                    return
                task.progress_pending = True
            self._channel.progress.emit(handle.id)

        try:
            result = task.fn(handle.token, report)
        except BaseException as exc:  # delivered to the GUI thread, never swallowed
            handle._finished.set()
            self._channel.failed.emit(handle.id, exc)
        else:
            handle._finished.set()
            self._channel.done.emit(handle.id, result)


class TaskRunner(QObject):
    """Runs engine calls off the GUI thread and delivers their outcome on it."""

    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._channel = _Channel(self)
        queued = Qt.ConnectionType.QueuedConnection
        self._channel.done.connect(self._on_done, queued)
        self._channel.failed.connect(self._on_failed, queued)
        self._channel.progress.connect(self._on_progress, queued)
        self._tasks: dict[int, _Task] = {}
        self._latest_by_key: dict[str, int] = {}
        self._closed = False

    # -- public -----------------------------------------------------------------------

    def submit(
        self,
        fn: TaskFn[T],
        *,
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        key: str | None = None,
    ) -> TaskHandle[T]:
        """Run ``fn(cancel, on_progress)`` on the pool; see the module docstring."""
        if self._closed:
            raise RuntimeError("TaskRunner.submit() after shutdown()")
        handle: TaskHandle[T] = TaskHandle(next(_ids), key, CancelToken())
        task = _Task(handle, fn, on_done, on_error, on_progress, on_cancelled)
        if key is not None:
            self._latest_by_key[key] = handle.id
        was_idle = not self._tasks
        self._tasks[handle.id] = task
        self._pool.start(_Runnable(task, self._channel))
        if was_idle:
            self.busyChanged.emit(True)
        return handle

    def active_count(self) -> int:
        """Tasks submitted whose outcome has not been delivered yet."""
        return len(self._tasks)

    def is_current(self, handle: TaskHandle[Any]) -> bool:
        """False once a newer task with the same key was submitted."""
        return handle.key is None or self._latest_by_key.get(handle.key) == handle.id

    def cancel_key(self, key: str, reason: str = "Stopped.") -> None:
        """Cancel every running task submitted with this key."""
        for task in list(self._tasks.values()):
            if task.handle.key == key:
                task.handle.cancel(reason)

    def cancel_all(self, reason: str = "Stopped.") -> None:
        for task in list(self._tasks.values()):
            task.handle.cancel(reason)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel every task and wait for the workers. True if all finished in time.

        Nothing is delivered after this: callbacks may refer to widgets being destroyed.
        """
        self._closed = True
        self.cancel_all("The application is closing.")
        finished = self._pool.waitForDone(timeout_ms)
        self._tasks.clear()
        return finished

    def wait_for_done(self, timeout_ms: int = -1) -> bool:
        """Block until the workers are idle (tests, benchmarks). Callbacks stay queued."""
        return self._pool.waitForDone(timeout_ms)

    # -- GUI-thread delivery ------------------------------------------------------------

    def _take(self, task_id: int) -> _Task | None:
        task = self._tasks.pop(task_id, None)
        if task is not None and not self._tasks:
            self.busyChanged.emit(False)
        if task is None or self._closed or not self.is_current(task.handle):
            return None
        return task

    @Slot(int, object)
    def _on_done(self, task_id: int, result: object) -> None:
        task = self._take(task_id)
        if task is not None and task.on_done is not None:
            task.on_done(result)

    @Slot(int, object)
    def _on_failed(self, task_id: int, error: object) -> None:
        task = self._take(task_id)
        if task is None:
            return
        assert isinstance(error, BaseException)
        if isinstance(error, Cancelled):
            if task.on_cancelled is not None:
                task.on_cancelled()
            return
        if task.on_error is not None:
            task.on_error(error)
            return
        raise error

    @Slot(int)
    def _on_progress(self, task_id: int) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return
        with task.lock:
            value = task.latest_progress
            task.progress_pending = False
        if self._closed or not self.is_current(task.handle) or task.on_progress is None:
            return
        task.on_progress(value)
