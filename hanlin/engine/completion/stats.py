"""Local, private statistics about inline completions: offered, shown, accepted.

The language server counts what happens to its suggestions; the desktop app
shows the totals (`load_completion_stats()`). The numbers stay in one small
JSON file in the data directory. Nothing is sent anywhere.

Several editors may run a language server each, so a write never replaces
the file with one process's view: `AcceptanceRecorder` keeps the
increments since its last flush and `flush()` adds them to what is on disk
under an advisory lock, then writes the result atomically (temp file +
rename), so a reader sees the old totals or the new ones, never half a file.
A damaged file is moved aside and counting starts again, rather than failing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hanlin.engine.core import paths
from hanlin.engine.core.atomic import write_text_atomic
from hanlin.engine.core.errors import BusyError
from hanlin.engine.core.locks import FileLock
from hanlin.engine.core.quarantine import move_aside

__all__ = [
    "AcceptanceRecorder",
    "AcceptanceStats",
    "LanguageStats",
    "load_completion_stats",
    "stats_file",
]

log = logging.getLogger(__name__)

_VERSION = 1
#: how long a flush waits for another process's flush before keeping its counts for later
FLUSH_LOCK_WAIT_S = 10.0


def stats_file() -> Path:
    return paths.data_dir() / "completion_stats.json"


@dataclass(slots=True)
class LanguageStats:
    """Counters for one language (or all of them together)."""

    #: non-empty suggestions the server returned
    offered: int = 0
    #: suggestions the editor reported as displayed (clients that send didShowCompletion)
    shown: int = 0
    #: suggestions taken whole
    accepted: int = 0
    #: suggestions taken in part (word or line at a time)
    partially_accepted: int = 0
    #: characters inserted from suggestions, whole or partial
    chars_accepted: int = 0

    def add(self, other: LanguageStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def is_empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted (whole or partly) per shown suggestion, else per offered one."""
        base = self.shown or self.offered
        if not base:
            return None
        return min(1.0, (self.accepted + self.partially_accepted) / base)

    @classmethod
    def from_dict(cls, data: Any) -> LanguageStats:
        out = cls()
        if isinstance(data, dict):
            for f in fields(cls):
                value = data.get(f.name, 0)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    setattr(out, f.name, value)
        return out


@dataclass(slots=True)
class AcceptanceStats:
    """Totals and a per-language breakdown (keys: LSP language ids, "" if unknown)."""

    languages: dict[str, LanguageStats] = field(default_factory=dict)
    #: Unix time of the first and latest recorded event (None before any)
    since: float | None = None
    updated: float | None = None

    @property
    def total(self) -> LanguageStats:
        out = LanguageStats()
        for stats in self.languages.values():
            out.add(stats)
        return out

    def language(self, language: str) -> LanguageStats:
        return self.languages.setdefault(language or "", LanguageStats())

    def merge(self, other: AcceptanceStats) -> None:
        for lang, stats in other.languages.items():
            self.language(lang).add(stats)
        if other.since is not None:
            self.since = other.since if self.since is None else min(self.since, other.since)
        if other.updated is not None:
            self.updated = (
                other.updated if self.updated is None else max(self.updated, other.updated)
            )

    def to_json(self) -> str:
        data = {
            "version": _VERSION,
            "since": self.since,
            "updated": self.updated,
            "languages": {k: asdict(v) for k, v in sorted(self.languages.items())},
        }
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json_obj(cls, data: Any) -> AcceptanceStats:
        if not isinstance(data, dict) or not isinstance(data.get("languages", {}), dict):
            raise ValueError("not a completion statistics object")
        out = cls()
        for lang, stats in data.get("languages", {}).items():
            out.languages[str(lang)] = LanguageStats.from_dict(stats)
        for key in ("since", "updated"):
            value = data.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                setattr(out, key, float(value))
        return out


def _read(path: Path) -> AcceptanceStats:
    """Read the file; a missing file is empty stats; a damaged one is moved aside."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AcceptanceStats()
    try:
        return AcceptanceStats.from_json_obj(json.loads(text))
    except ValueError as exc:  # JSONDecodeError is a ValueError
        with contextlib.suppress(OSError):  # another process may have moved it already
            move_aside(path, f"is damaged ({exc}); the statistics start again")
        return AcceptanceStats()


def load_completion_stats(path: Path | None = None) -> AcceptanceStats:
    """The statistics on disk (empty when there are none yet). Never raises for a bad file."""
    path = path or stats_file()
    try:
        text = path.read_text(encoding="utf-8")
        return AcceptanceStats.from_json_obj(json.loads(text))
    except (OSError, ValueError):
        return AcceptanceStats()


class AcceptanceRecorder:
    """Counts events in memory; `flush()` adds them to the file. Thread-safe."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or stats_file()
        self._pending = AcceptanceStats()
        self._lock = threading.Lock()

    def _event(self, language: str | None, **increments: int) -> None:
        now = time.time()
        with self._lock:
            stats = self._pending.language(language or "")
            for name, amount in increments.items():
                setattr(stats, name, getattr(stats, name) + max(0, amount))
            if self._pending.since is None:
                self._pending.since = now
            self._pending.updated = now

    def offered(self, language: str | None) -> None:
        self._event(language, offered=1)

    def shown(self, language: str | None) -> None:
        self._event(language, shown=1)

    def accepted(self, language: str | None, chars: int) -> None:
        self._event(language, accepted=1, chars_accepted=chars)

    def partially_accepted(self, language: str | None, chars: int) -> None:
        self._event(language, partially_accepted=1, chars_accepted=chars)

    @property
    def has_pending(self) -> bool:
        with self._lock:
            return any(not s.is_empty() for s in self._pending.languages.values())

    def flush(self) -> AcceptanceStats | None:
        """Add pending counts to the file; returns the new totals (None if nothing pending)."""
        with self._lock:
            pending, self._pending = self._pending, AcceptanceStats()
        if all(s.is_empty() for s in pending.languages.values()):
            return None
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock = FileLock(lock_path, "Saving completion statistics")
        try:
            # Several editors' servers may flush at once: add, never overwrite.
            with lock.acquire(wait=FLUSH_LOCK_WAIT_S):
                totals = _read(self.path)
                totals.merge(pending)
                write_text_atomic(self.path, totals.to_json())
            return totals
        except (OSError, BusyError) as exc:
            # keep the counts for the next try rather than losing them
            with self._lock:
                pending.merge(self._pending)
                self._pending = pending
            log.warning("could not write completion statistics to %s: %s", self.path, exc)
            return None
