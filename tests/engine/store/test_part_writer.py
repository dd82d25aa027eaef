"""engine/part_writer.py: bytes land in order, the hash covers resumed prefixes, errors surface."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.store import part_writer
from hanlin.engine.store.part_writer import PartWriter


def test_append_flush_and_hash_across_a_resume(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    path = tmp_path / "x.part"
    with PartWriter(path, batch=256 * 1024) as writer:
        for i in range(0, 1_000_000, 10_000):
            writer.append(data[i : i + 10_000])
        assert writer.flush() == 1_000_000
    assert path.read_bytes() == data[:1_000_000]
    with PartWriter(path, batch=256 * 1024) as writer:  # a later process continues
        assert writer.written == 1_000_000
        writer.hash_existing(CancelToken())
        writer.append(data[1_000_000:])
        assert writer.sha256() == hashlib.sha256(data).hexdigest()
    assert path.read_bytes() == data


def test_close_writes_what_was_received(tmp_path: Path) -> None:
    path = tmp_path / "y.part"
    writer = PartWriter(path, batch=1 << 20)
    writer.append(b"abc" * 1000)  # below one batch: still pending
    writer.close()
    assert path.read_bytes() == b"abc" * 1000


def test_restart_empties_file_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "z.part"
    with PartWriter(path, batch=4) as writer:
        writer.append(b"old bytes")
        writer.flush()
        writer.restart()
        writer.append(b"new")
        assert writer.sha256() == hashlib.sha256(b"new").hexdigest()
    assert path.read_bytes() == b"new"


def test_write_error_keeps_whole_writes_and_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = part_writer._write_all
    calls = {"n": 0}

    def flaky(handle, data: bytes) -> None:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            handle.write(data[:5])  # a torn write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(handle, data)

    monkeypatch.setattr(part_writer, "_write_all", flaky)
    path = tmp_path / "full.part"
    writer = PartWriter(path, batch=10)
    with pytest.raises(OSError) as err:
        for _ in range(10):
            writer.append(b"0123456789")
        writer.flush()
    assert err.value.errno == errno.ENOSPC
    writer.close()
    assert path.read_bytes() == b"0123456789" * 2  # the torn write was cut off
