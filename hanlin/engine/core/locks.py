"""Cross-process advisory locks on files, with a bounded wait that names who holds them.

Why: the desktop app and the command line may pull the same model at the same
time; without a lock both would append to one `.part` file and corrupt it. The
same goes for the model list, completion statistics and settings.toml.

The locking itself is the `filelock` package's (flock on POSIX, msvcrt on
Windows; the OS drops the lock when a process dies, so a crash never leaves a
stale lock). What Hanlin adds on top:

- a bounded wait that a `CancelToken` can cut short (`Cancelled`), after which
  the refusal is a `BusyError` that says *who* holds the lock: a small JSON note
  beside the lock file records the holder's pid, command line and start time;
- one object per lock attempt: `FileLock(path, what).acquire(wait=...)`, usable
  as a context manager; `release()` is idempotent and may run on any thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import filelock

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import BusyError

__all__ = ["FileLock"]

#: how often a waiting acquire retries (and looks at its cancel token)
_POLL_S = 0.05


class FileLock:
    """An exclusive lock on `path`; `info` is published in `path` + ".json" while held.

    `what` names the guarded operation for the refusal message, e.g.
    "A download of `qwen3-4b-q4km`" -> "... is already in progress in process 123 (...)".
    """

    def __init__(self, path: Path, what: str, info: dict[str, Any] | None = None) -> None:
        self.path = path
        self.what = what
        self.info = {
            "pid": os.getpid(),
            "started": time.time(),
            "command": " ".join(sys.argv[:4]),
            **(info or {}),
        }
        # thread_local=False: the lock belongs to this object, whichever thread releases it.
        self._lock = filelock.FileLock(str(path), thread_local=False)

    @property
    def info_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock, as its holder described itself (None if unknown or free)."""
        try:
            data = json.loads(self.info_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def acquire(self, wait: float = 0.0, cancel: CancelToken | None = None) -> FileLock:
        """Take the lock, retrying up to `wait` seconds; BusyError names the holder.

        Raises `Cancelled` as soon as `cancel` fires while waiting.
        """
        cancel = cancel or NEVER_CANCELLED
        if self._lock.is_locked:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        while True:
            try:
                self._lock.acquire(timeout=0)
                break
            except filelock.Timeout:
                pass
            cancel.raise_if_cancelled()
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._busy_error()
            if cancel.wait(min(_POLL_S, left)):
                cancel.raise_if_cancelled()
        # The note is a courtesy; the lock itself is what matters.
        with contextlib.suppress(OSError):
            self.info_path.write_text(json.dumps(self.info), encoding="utf-8")
        return self

    def _busy_error(self) -> BusyError:
        holder = self.holder() or {}
        who = f"process {holder.get('pid', '?')}"
        if holder.get("command"):
            who += f" ({holder['command']})"
        if isinstance(holder.get("started"), int | float):
            who += f", started {time.strftime('%H:%M:%S', time.localtime(holder['started']))}"
        return BusyError(
            f"{self.what} is already in progress in {who}",
            "wait for it to finish (or stop it), then try again",
        )

    def release(self) -> None:
        """Let go of the lock (and its note). Does nothing if it is not held."""
        if not self._lock.is_locked:
            return
        with contextlib.suppress(OSError):
            self.info_path.unlink(missing_ok=True)
        self._lock.release(force=True)

    def __enter__(self) -> FileLock:
        if not self._lock.is_locked:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
