"""Schema versions of the chat history database, and the steps from each to the next.

Why: a newer Hanlin installed over an older one must open the user's history with
nothing lost. The schema version lives in SQLite's own header field
(`PRAGMA user_version`). Version 1 is `SCHEMA_V1`, exactly what Hanlin 0.1.0 created;
every later change is a `Migration` appended to `MIGRATIONS`, in order, each turning a
version N-1 file into version N. `History` (history.py) copies an older file aside
with `backup_before_migrating` and then runs `migrate`, which applies every pending
step and the new version number in a single transaction.

Rules for adding a migration:
- append, never edit or reorder one that shipped; its `version` is the previous + 1;
- never change `SCHEMA_V1`: a new file is created as version 1 and then migrated,
  so new and upgraded files always end up identical;
- write steps that can run twice (`IF NOT EXISTS`, checks before `ALTER`): Hanlin
  0.1.0 resets the version number to 1 when it opens a newer file, so after a
  downgrade and an upgrade the steps run again over their own results;
- SQL only through the given connection, and no COMMIT: `migrate` owns the transaction;
- add the upgrade to tests/engine/chat/test_history_migrations.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hanlin.engine.core.errors import HistoryError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_V1",
    "Migration",
    "backup_before_migrating",
    "latest_version",
    "migrate",
    "schema_version",
]

#: the tables Hanlin 0.1.0 created (schema version 1); frozen: later changes are migrations
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    model_id TEXT,
    system_prompt TEXT NOT NULL DEFAULT '',
    thinking INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS messages (
    -- AUTOINCREMENT: ids are never reused, so a late write from a stopped answer
    -- can never land in a newer message that took the deleted one's id
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL DEFAULT '',
    thinking TEXT,
    thinking_s REAL,
    model_id TEXT,
    complete INTEGER NOT NULL DEFAULT 1,
    stats TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
"""


@dataclass(frozen=True)
class Migration:
    """One step: turns a schema `version - 1` file into a schema `version` file."""

    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]

    @classmethod
    def sql(cls, version: int, description: str, *statements: str) -> Migration:
        """A step made of SQL statements, run in order."""

        def apply(conn: sqlite3.Connection) -> None:
            for statement in statements:
                conn.execute(statement)

        return cls(version, description, apply)


MIGRATIONS: list[Migration] = [
    Migration.sql(
        2,
        "index conversations by last activity (the sidebar's order)",
        "CREATE INDEX IF NOT EXISTS conversations_by_activity"
        " ON conversations(updated_at DESC, id DESC)",
    ),
    Migration.sql(
        3,
        "files attached to messages, with the text as sent (engine/chat/attachments.py)",
        "CREATE TABLE IF NOT EXISTS attachments ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
        " position INTEGER NOT NULL,"
        " path TEXT NOT NULL,"
        " label TEXT NOT NULL,"
        " language TEXT NOT NULL DEFAULT '',"
        " size_bytes INTEGER NOT NULL,"
        " tokens INTEGER NOT NULL,"
        " tokens_estimated INTEGER NOT NULL DEFAULT 0,"
        " text TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS attachments_by_message ON attachments(message_id, position)",
    ),
]


def latest_version(migrations: list[Migration] | None = None) -> int:
    steps = MIGRATIONS if migrations is None else migrations
    return steps[-1].version if steps else 1


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _check_order(migrations: list[Migration]) -> None:
    for expected, step in enumerate(migrations, start=2):
        if step.version != expected:
            raise AssertionError(
                f"history migrations out of order: {step.version} where {expected} belongs"
            )


def migrate(
    conn: sqlite3.Connection, from_version: int, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Apply every step after `from_version` and set the new version, in one transaction.

    Returns the steps applied. On any error everything rolls back (the file keeps its
    old version and data) and the sqlite3 error is raised. `conn` must be in
    autocommit mode (isolation_level=None), as History's connection is.
    """
    steps = MIGRATIONS if migrations is None else migrations
    _check_order(steps)
    if not [m for m in steps if m.version > from_version]:
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        # another process (the app and `hanlin serve`, say) may have upgraded the file
        # while this one waited for the write lock: start from what the file says now
        current = max(from_version, schema_version(conn))
        pending = [m for m in steps if m.version > current]
        for step in pending:
            step.apply(conn)
        if pending:
            conn.execute(f"PRAGMA user_version={pending[-1].version:d}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return pending


def backup_before_migrating(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    """A consistent copy of the open database beside it, before a migration changes it.

    `history.sqlite3.schema1-backup-20250101-120000` (a second one in the same second
    gets `-2`...); SQLite's backup API copies committed data, WAL included.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.schema{version}-backup-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.schema{version}-backup-{stamp}-{n}")
    try:
        dest = sqlite3.connect(target)
        try:
            conn.backup(dest)
        finally:
            dest.close()
    except (sqlite3.Error, OSError) as exc:
        target.unlink(missing_ok=True)
        raise HistoryError(
            f"Could not back up the chat history to {target} before upgrading it ({exc}); "
            "it was left unchanged.",
            "check free disk space and permissions, then restart Hanlin",
        ) from exc
    return target
