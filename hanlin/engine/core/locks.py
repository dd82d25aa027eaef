"""Cross-process advisory locks on files (flock on POSIX, msvcrt on Windows).

Why: the desktop app and the command line may pull the same model at the same
time; without a lock both would append to one `.part` file and corrupt it. The
lock lives as long as the process holding it (the OS drops it when a process
dies, so a crash never leaves a stale lock), and a small JSON note beside it
says who holds it, so the refused caller can name the other pull.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import BusyError

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class FileLock:
    """An exclusive lock on `path`; `info` is published in `path` + ".json" while held."""

    def __init__(self, path: Path, what: str, info: dict[str, Any] | None = None) -> None:
        self.path = path
        self.what = what
        self.info = {
            "pid": os.getpid(),
            "started": time.time(),
            "command": " ".join(sys.argv[:4]),
            **(info or {}),
        }
        self._handle: IO[bytes] | None = None

    @property
    def info_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.info_path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def acquire(self, wait: float = 0.0, cancel: CancelToken | None = None) -> FileLock:
        """Take the lock, polling up to `wait` seconds; BusyError names the holder."""
        cancel = cancel or NEVER_CANCELLED
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - kept open while the lock is held
        deadline = time.monotonic() + wait
        while not _try_lock(handle):
            if time.monotonic() >= deadline:
                handle.close()
                raise self._busy_error()
            if cancel.wait(0.1):
                handle.close()
                cancel.raise_if_cancelled()
        self._handle = handle
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
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            self.info_path.unlink(missing_ok=True)
        try:
            _unlock(handle)
        finally:
            handle.close()

    def __enter__(self) -> FileLock:
        if self._handle is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = ["FileLock"]
