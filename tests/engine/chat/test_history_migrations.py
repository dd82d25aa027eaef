"""History schema migrations: an older file is backed up, upgraded in one transaction, and
keeps every conversation; a failed step or a newer file leaves the file as it was."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from hanlin.engine.chat import history_migrations
from hanlin.engine.chat.history import History
from hanlin.engine.chat.history_migrations import Migration, latest_version, migrate
from hanlin.engine.core import paths
from hanlin.engine.core.errors import HistoryError
from tests.installers.support import kept

FIXTURE = Path(__file__).parents[2] / "installers" / "fixtures" / "hanlin-home-0.1.0"
#: the table of schema 3 (files attached to messages)
ATTACHMENT_COLUMNS = [
    "id",
    "message_id",
    "position",
    "path",
    "label",
    "language",
    "size_bytes",
    "tokens",
    "tokens_estimated",
    "text",
]


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _indexes(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        return {r[0] for r in rows}
    finally:
        conn.close()


def _columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()]
    finally:
        conn.close()


def _dump(history: History) -> list[dict]:
    return [
        {
            "conversation": dataclasses.asdict(c),
            "messages": [dataclasses.asdict(m) for m in history.messages(c.id)],
        }
        for c in sorted(history.list(), key=lambda c: c.id)
    ]


@pytest.fixture
def old_file() -> Path:
    """The history database Hanlin 0.1.0 wrote (committed test data), as the user's file."""
    target = paths.data_dir() / "history.sqlite3"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(FIXTURE / "data" / "history.sqlite3", target)
    assert _version(target) == 1
    return target


def _expected_conversations() -> list[dict]:
    return json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))["conversations"]


def _backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".schema*-backup-*"))


def test_a_new_file_gets_the_latest_schema_and_no_backup() -> None:
    with History() as history:
        path = history.path
        history.create("x")
    assert _version(path) == latest_version() == 3
    assert "conversations_by_activity" in _indexes(path)
    assert "attachments_by_message" in _indexes(path)
    assert _backups(path) == []


def test_a_file_from_0_1_0_is_backed_up_then_upgraded_with_nothing_lost(old_file: Path) -> None:
    before = old_file.read_bytes()
    with History() as history:
        assert history.problem is None
        assert kept(_dump(history), _expected_conversations())
        # full-text search still finds old text; new writes get fresh ids after the old ones
        assert [c.title for c in history.search("mutex")] == [
            "Explain Python's GIL in two sentences"
        ]
        conv = history.list()[-1]
        new = history.append(conv.id, "user", "after the upgrade")
        old_ids = [m["id"] for c in _expected_conversations() for m in c["messages"]]
        assert new.id > max(old_ids)
    assert _version(old_file) == latest_version()
    assert "conversations_by_activity" in _indexes(old_file)
    assert _columns(old_file, "attachments") == ATTACHMENT_COLUMNS
    (backup,) = _backups(old_file)
    assert backup.name.startswith("history.sqlite3.schema1-backup-")
    assert _version(backup) == 1
    with History(backup) as copy:  # the copy is the old file, complete (opening upgrades it)
        assert kept(_dump(copy), _expected_conversations())
    assert len(before) > 0


def test_opening_an_upgraded_file_again_changes_nothing(old_file: Path) -> None:
    History().close()
    History().close()
    assert len(_backups(old_file)) == 1
    assert _version(old_file) == latest_version()


def test_steps_can_run_again_after_0_1_0_reset_the_version(old_file: Path) -> None:
    """Hanlin 0.1.0 writes user_version=1 on open whatever it found: a downgrade and an
    upgrade run the steps over their own results."""
    History().close()
    conn = sqlite3.connect(old_file)
    conn.execute("PRAGMA user_version=1")
    conn.close()
    with History() as history:
        assert kept(_dump(history), _expected_conversations())
    assert _version(old_file) == latest_version()


def test_a_failing_step_rolls_everything_back(
    old_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_done_then_fails(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE messages ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
        conn.execute("UPDATE messages SET no_such_column = 1")  # sqlite3.OperationalError

    broken = latest_version() + 1
    steps = [
        *history_migrations.MIGRATIONS,
        Migration(broken, "pin messages (broken on purpose)", half_done_then_fails),
    ]
    monkeypatch.setattr(history_migrations, "MIGRATIONS", steps)
    with pytest.raises(HistoryError) as info:
        History()
    message = str(info.value)
    assert f"from schema 1 to {broken}" in message and "no_such_column" in message
    assert "left unchanged" in message and "schema1-backup" in message
    # not treated as damage: the file stays where it is, at version 1, without step 2 either
    assert old_file.exists()
    assert not list(old_file.parent.glob("*damaged*"))
    assert _version(old_file) == 1
    assert "pinned" not in _columns(old_file, "messages")
    assert "conversations_by_activity" not in _indexes(old_file)
    assert "attachments_by_message" not in _indexes(old_file)
    # with the broken step gone, the same file upgrades and keeps everything
    monkeypatch.setattr(history_migrations, "MIGRATIONS", steps[:-1])
    with History() as history:
        assert kept(_dump(history), _expected_conversations())


def test_a_future_step_with_a_data_change(old_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shape later releases will use: add a column and fill it from existing data."""
    future = latest_version() + 1
    monkeypatch.setattr(
        history_migrations,
        "MIGRATIONS",
        [
            *history_migrations.MIGRATIONS,
            Migration.sql(
                future,
                "count words per message",
                "ALTER TABLE messages ADD COLUMN words INTEGER",
                "UPDATE messages SET words = length(trim(content)) - length(replace(trim(content),"
                " ' ', '')) + (trim(content) != '')",
            ),
        ],
    )
    with History() as history:
        assert kept(_dump(history), _expected_conversations())
    assert _version(old_file) == future
    conn = sqlite3.connect(old_file)
    words = dict(conn.execute("SELECT content, words FROM messages").fetchall())
    conn.close()
    assert words["Add a type hint."] == 4 and words[""] == 0


def test_a_file_from_a_newer_hanlin_is_refused_and_left_alone(old_file: Path) -> None:
    conn = sqlite3.connect(old_file)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    before = old_file.read_bytes()
    with pytest.raises(HistoryError) as info:
        History()
    assert "newer Hanlin" in str(info.value) and "schema 99" in str(info.value)
    assert info.value.hint and "update Hanlin" in info.value.hint
    assert old_file.read_bytes() == before
    assert not list(old_file.parent.glob("*damaged*"))
    assert _backups(old_file) == []


def test_migrations_must_be_in_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None)
    steps = [Migration.sql(3, "skips 2", "SELECT 1")]
    with pytest.raises(AssertionError, match="out of order"):
        migrate(conn, 1, steps)
    conn.close()


def test_shipped_migrations_are_numbered_from_two() -> None:
    versions = [m.version for m in history_migrations.MIGRATIONS]
    assert versions == list(range(2, 2 + len(versions)))
    assert all(m.description for m in history_migrations.MIGRATIONS)


def test_step_3_gives_an_upgraded_file_attachments_that_survive_a_rerun(old_file: Path) -> None:
    """Schema 3: a 0.1.0 file, upgraded, stores files with a message; after 0.1.0 reset the
    version (a downgrade and an upgrade), the step runs again and keeps them."""
    from hanlin.engine.chat.attachments import Attachment

    sent = Attachment("/src/app.py", "app.py", "python", 12, 9, False, "print('hi')\n")
    with History() as history:
        conv = history.list()[0]
        msg = history.append(conv.id, "user", "explain", attachments=[sent])
    conn = sqlite3.connect(old_file)
    conn.execute("PRAGMA user_version=1")
    conn.close()
    with History() as history:
        assert len(history.list()) == len(_expected_conversations())
        assert history.message(msg.id).attachments == (sent,)
        assert history.model_turns(conv.id)[-1] == (
            "user",
            "File: app.py\n```python\nprint('hi')\n```\n\nexplain",
        )
        # deleting the conversation deletes its attachments (ON DELETE CASCADE)
        history.delete(conv.id)
    assert _version(old_file) == latest_version()
    conn = sqlite3.connect(old_file)
    left = conn.execute("SELECT COUNT(*) FROM attachments").fetchone()[0]
    conn.close()
    assert left == 0


def test_a_file_another_process_upgraded_meanwhile_is_not_upgraded_twice(old_file: Path) -> None:
    """Two processes opened the old file; the second migrates after the first committed."""
    counted: list[int] = []
    last = latest_version() + 1
    steps = [
        *history_migrations.MIGRATIONS,
        Migration(last, "count runs", lambda conn: counted.append(last)),
    ]
    first = sqlite3.connect(old_file, isolation_level=None)
    second = sqlite3.connect(old_file, isolation_level=None)
    assert [m.version for m in migrate(first, 1, steps)] == list(range(2, last + 1))
    assert migrate(second, 1, steps) == []  # it read version 1 before; the file is newer now
    assert counted == [last]
    assert _version(old_file) == last
    first.close()
    second.close()
