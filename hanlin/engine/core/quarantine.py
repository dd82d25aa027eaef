"""Move a damaged file aside, under a name of its own, instead of deleting or overwriting it.

Why one helper: the settings file, the chat history database, the model list and the
completion statistics all start afresh when their file cannot be read, and what the user
had must survive that. Each damaged file is renamed beside itself
(`NAME.broken-YYYYMMDD-HHMMSS`), never deleted, and a second damaged file within the same
second gets its own name (`…-2`) instead of silently replacing the first — a plain
`Path.replace` to a timestamped name loses the earlier copy on POSIX.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

__all__ = ["move_aside"]

log = logging.getLogger(__name__)

#: give up looking for a free name after this many (only a runaway loop gets there)
_MAX_TRIES = 1000


def move_aside(path: Path, reason: str, *, label: str = "broken") -> Path:
    """Rename `path` to `NAME.<label>-<timestamp>[-N]` beside it and return the new path.

    `reason` says what is wrong with the file; it goes to the log with the new name.
    Raises OSError when the file cannot be moved (already gone, a read-only folder): the
    caller decides whether that is fatal.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, _MAX_TRIES + 1):
        aside = path.with_name(f"{path.name}.{label}-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            _rename_no_clobber(path, aside)
        except FileExistsError:
            continue
        log.warning("%s %s; moved it to %s", path, reason, aside)
        return aside
    raise OSError(errno.EEXIST, f"no free name to move {path} aside", str(path))


def _rename_no_clobber(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, raising FileExistsError instead of replacing an existing `dst`."""
    if os.name == "nt":
        os.rename(src, dst)  # Windows refuses an existing target by itself
        return
    try:
        os.link(src, dst)  # atomic: fails if dst exists, even when another process races us
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # a filesystem without hard links (FAT, some network shares): check, then rename
        if dst.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(dst)) from exc
        os.rename(src, dst)
        return
    os.unlink(src)
