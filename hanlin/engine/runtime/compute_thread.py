"""One OS thread for every llama.cpp compute call in the process.

Why it exists: llama.cpp's CPU backend, as llama-cpp-python builds it, runs each graph
with OpenMP, and OpenMP keeps a team of worker threads per *calling* thread. Once a
second thread has decoded, the two teams compete for the cores: on a 2-core machine,
SmolLM2-135M's single-token `llama_decode` took 9.9 ms when one thread did all the
work, 17.5 ms when two threads took turns, and 16 ms when the prompt had been evaluated
on one thread and the tokens were decoded on another — for as long as the process
lives. Hanlin decodes from many threads: a chat worker per message, the language
server's request thread and its idle thread (prefetch, warm-up), the API server's batch
loop. So they do not call `llama_decode` themselves: they hand the call to this thread
and wait for it (`run_compute`; a few tens of microseconds against milliseconds of
decoding), and every team but one stays asleep.

The thread is started on first use and again in a forked child. A call made on the
compute thread itself runs directly.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["on_compute_thread", "run_compute"]

T = TypeVar("T")


class _Call:
    __slots__ = ("args", "done", "error", "fn", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _ComputeThread:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="hanlin-compute", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        calls = self.calls
        while True:
            call = calls.get()
            try:
                call.result = call.fn(*call.args)
            except BaseException as exc:  # handed back to the caller, who re-raises it
                call.error = exc
            call.done.set()


_worker: _ComputeThread | None = None
_worker_lock = threading.Lock()


def _current() -> _ComputeThread:
    global _worker
    worker = _worker
    if worker is None or worker.pid != os.getpid():
        with _worker_lock:
            worker = _worker
            if worker is None or worker.pid != os.getpid():  # none yet, or a forked child
                worker = _worker = _ComputeThread()
    return worker


def on_compute_thread() -> bool:
    """Whether the caller is the compute thread."""
    worker = _worker
    return worker is not None and threading.current_thread() is worker.thread


def run_compute(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the compute thread; its result, or its exception raised here."""
    worker = _current()
    if threading.current_thread() is worker.thread:
        return fn(*args)
    call = _Call(fn, args)
    worker.calls.put(call)
    call.done.wait()
    if call.error is not None:
        raise call.error
    return call.result  # type: ignore[no-any-return]
