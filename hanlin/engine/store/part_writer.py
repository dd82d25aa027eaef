"""Append downloaded bytes to a `.part` file and hash them, off the receiving thread.

Why: receiving (HTTP parsing in Python), writing and sha256 are each a large
share of a pull's CPU time. hashlib and file writes release the GIL, so doing
them on a worker thread overlaps them with the network loop instead of adding
them up. Bytes are batched (1 MiB by default) so the worker makes few calls.

What a crash can lose is bounded: at most `batch * (depth + 1)` bytes that
were received but not yet written (a few MiB); `flush()` (called on every
retry, cancel and exit path) writes everything received so far. After a write
error (a full disk) the file is truncated back to the last complete write and
the error is re-raised to the caller.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import queue
import threading
from pathlib import Path
from typing import BinaryIO

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.units import MiB


def _write_all(handle: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = handle.write(view)
        if n is None or n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]


class PartWriter:
    """The `.part` file being filled: `append` bytes, `flush` to wait until they are on disk."""

    def __init__(self, path: Path, *, batch: int = MiB, depth: int = 2) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: BinaryIO = open(path, "r+b" if path.exists() else "wb", buffering=0)  # noqa: SIM115
        self._handle.seek(0, 2)
        #: bytes safely written to the file (updated by the worker)
        self.written = self._handle.tell()
        self._hasher = hashlib.sha256()
        self._batch = batch
        self._pending = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ caller side
    def hash_existing(self, cancel: CancelToken) -> None:
        """Hash what the file already holds (a resumed download), before appending."""
        with open(self.path, "rb") as src:
            left = self.written
            while left > 0:
                cancel.raise_if_cancelled()
                block = src.read(min(8 * MiB, left))
                if not block:
                    raise OSError(errno.EIO, f"{self.path} shrank while being resumed")
                self._hasher.update(block)
                left -= len(block)

    def append(self, data: bytes) -> None:
        self._raise_error()
        self._pending += data
        if len(self._pending) >= self._batch:
            self._submit()

    def flush(self) -> int:
        """Write everything appended so far; returns the file size. Re-raises a write error."""
        if self._pending and self._error is None:
            self._submit()
        if self._thread is not None:
            self._queue.join()
        self._raise_error()
        return self.written

    def restart(self) -> None:
        """Empty the file and the hash (the server ignored Range and sends from byte 0)."""
        self._pending.clear()
        self.flush()
        self._handle.seek(0)
        self._handle.truncate(0)
        self.written = 0
        self._hasher = hashlib.sha256()

    def sha256(self) -> str:
        self.flush()
        return self._hasher.hexdigest()

    def close(self) -> None:
        """Flush what can be flushed, stop the worker, close the file (errors are not raised)."""
        with contextlib.suppress(OSError):
            self.flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._handle.close()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self) -> None:
        block = bytes(self._pending)
        self._pending.clear()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="part-writer", daemon=True)
            self._thread.start()
        self._queue.put(block)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    # ------------------------------------------------------------------ worker side
    def _work(self) -> None:
        while True:
            block = self._queue.get()
            try:
                if block is None:
                    return
                if self._error is not None:
                    continue
                try:
                    _write_all(self._handle, block)
                except OSError as exc:
                    self._error = exc
                    try:  # keep only whole, hashed writes
                        self._handle.truncate(self.written)
                        self._handle.seek(self.written)
                    except OSError:
                        pass
                    continue
                self._hasher.update(block)
                self.written += len(block)
            finally:
                self._queue.task_done()


__all__ = ["PartWriter"]
