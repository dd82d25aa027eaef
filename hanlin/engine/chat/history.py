"""Chat history: conversations and their messages in SQLite (WAL).

Why SQLite: the desktop app saves the answer being written *while it streams*, so
killing the app mid-answer loses at most the last few tokens; a transactional
database in WAL mode gives that without ever leaving a half-written file (house
rule 5). The file is `paths.data_dir() / "history.sqlite3"`.

What lives here:
- conversations: title, timestamps and per-conversation settings (model id,
  system prompt, thinking on/off);
- messages: role, the answer text, and the model's reasoning ("thinking") kept in
  its own column. Thinking is for display only: `model_turns()` never returns it,
  so it is never fed back to the model;
- search by text over titles and message bodies (FTS5 when SQLite has it, LIKE
  otherwise);
- `StreamingMessage`: an assistant message updated in place as tokens arrive,
  committed every few chunks or every ~250 ms, and marked complete at the end;
- truncation after a message (edit a user message / regenerate an answer) and
  export to Markdown and JSON;
- attachments: the files sent with a user message (path, label, language, size,
  tokens and the text as sent, table `attachments`); `model_turns()` puts them back
  into the message as they were sent, so a reopened conversation's prompt is the
  same even after the files changed on disk.

`History` is safe to share between threads (one connection behind a lock): the
GUI thread reads and edits, the generation worker writes the streaming answer.
This module imports no Qt.

Upgrades keep the history: the file's schema version is `PRAGMA user_version`;
`MIGRATIONS` (history_migrations.py) lists, in order, the steps from one
version to the next. Opening an older file copies it aside first
(`history.sqlite3.schema<N>-backup-<time>`, with SQLite's backup API), then applies
every pending step and the new version number in one transaction: a step that fails
rolls back and leaves the file as it was. A file from a newer Hanlin is refused with
a clear error, never changed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hanlin.engine.chat.attachments import Attachment, compose_user_message
from hanlin.engine.chat.history_migrations import (
    SCHEMA_V1,
    backup_before_migrating,
    latest_version,
    migrate,
    schema_version,
)
from hanlin.engine.core import paths
from hanlin.engine.core.errors import HistoryError
from hanlin.engine.core.quarantine import move_aside

DEFAULT_TITLE = "New chat"
MESSAGE_ROLES = ("system", "user", "assistant")
EXPORT_FORMAT = "hanlin.conversation/1"
_TITLE_LENGTH = 60

_FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts
    USING fts5(content, content='messages', content_rowid='id');
CREATE TRIGGER IF NOT EXISTS messages_fts_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_au AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
"""


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    model_id: str | None
    system_prompt: str
    thinking: bool


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    thinking: str | None
    #: seconds the model spent reasoning, for "Thought for N s"
    thinking_s: float | None
    model_id: str | None
    #: False while streaming, or if the app died before the answer ended
    complete: bool
    #: ttft_s, tokens_per_s, generated_tokens, stop_reason... as the engine reported them
    stats: dict[str, Any] | None
    created_at: float
    #: files sent with a user message, text as sent (engine/chat/attachments.py)
    attachments: tuple[Attachment, ...] = ()


def default_path() -> Path:
    return paths.data_dir() / "history.sqlite3"


def title_from(text: str) -> str:
    """A conversation title from the first user message: its first line, shortened."""
    line = " ".join(text.strip().split())
    if not line:
        return DEFAULT_TITLE
    return line if len(line) <= _TITLE_LENGTH else line[: _TITLE_LENGTH - 1].rstrip() + "…"


def _fts_query(text: str) -> str:
    """User text to an FTS5 query: every word must appear (as a prefix), quotes escaped."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"*' for w in words)


class History:
    """The chat history database. Thread-safe; close() when done."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        #: a readable note when the file was damaged and moved aside at open
        self.problem: str | None = None
        self._lock = threading.RLock()
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            try:
                aside = move_aside(self.path, f"cannot be opened ({exc})", label="damaged")
                # its write-ahead log belongs to it: kept beside it, never replayed into
                # the new file; the shared-memory index is rebuilt from scratch
                wal = self.path.with_name(self.path.name + "-wal")
                if wal.exists():
                    wal.replace(aside.with_name(aside.name + "-wal"))
                self.path.with_name(self.path.name + "-shm").unlink(missing_ok=True)
            except OSError as move_exc:
                raise HistoryError(
                    f"The chat history {self.path} cannot be opened ({exc}).",
                    f"move or delete that file, then restart Hanlin ({move_exc})",
                ) from exc
            self.problem = (
                f"The chat history was damaged ({exc}); it was moved to {aside} "
                "and a new, empty history was started."
            )
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            paths.ensure(self.path.parent)
        except OSError as exc:
            raise HistoryError(
                f"Cannot create {self.path.parent}: {exc}", "check the disk and permissions"
            ) from exc
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            # Before anything is written: damage found now moves the file aside untouched.
            _check_integrity(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a killed process never loses a committed transaction.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._upgrade(conn)
            self.fts = self._try_fts(conn)
        except (sqlite3.DatabaseError, HistoryError):
            conn.close()
            raise
        return conn

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """Bring the file to the newest schema (a new file: create it), keeping its data."""
        version = schema_version(conn)
        latest = latest_version()
        if version > latest:
            raise HistoryError(
                f"The chat history {self.path} was written by a newer Hanlin "
                f"(schema {version}; this version reads up to {latest}).",
                "update Hanlin to open it; it was left unchanged",
            )
        tables = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conversations'"
        ).fetchone()
        if version == 0 and tables is None:
            conn.executescript(SCHEMA_V1)  # a new file: version 1, then every migration
            conn.execute("PRAGMA user_version=1")
            version = 1
        elif version == 0:
            version = 1  # tables without a version number: what Hanlin 0.1.0 wrote
        if version == latest:
            return
        backup = None
        if tables is not None:
            backup = backup_before_migrating(conn, self.path, version)
        try:
            migrate(conn, version)
        except sqlite3.Error as exc:
            kept = f"; a copy from before is at {backup}" if backup else ""
            raise HistoryError(
                f"Could not upgrade the chat history {self.path} from schema {version} "
                f"to {latest} ({exc}). It was left unchanged{kept}.",
                "check free disk space and permissions, then restart Hanlin",
            ) from exc

    @staticmethod
    def _try_fts(conn: sqlite3.Connection) -> bool:
        try:
            existed = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'"
            ).fetchone()
            conn.executescript(_FTS_SCHEMA)
            if not existed:
                conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
            return True
        except sqlite3.OperationalError:  # SQLite built without FTS5
            return False

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise HistoryError(
                    f"Could not save the chat history ({exc}).",
                    f"check free disk space and permissions for {self.path}",
                ) from exc

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise HistoryError(f"Could not read the chat history ({exc}).") from exc

    # -- conversations ----------------------------------------------------------------

    def create(
        self,
        title: str = DEFAULT_TITLE,
        *,
        model_id: str | None = None,
        system_prompt: str = "",
        thinking: bool = True,
    ) -> Conversation:
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO conversations(title, created_at, updated_at, model_id, system_prompt,"
                " thinking) VALUES (?, ?, ?, ?, ?, ?)",
                (title, now, now, model_id, system_prompt, int(thinking)),
            )
            cid = int(cur.lastrowid or 0)
        return self.get(cid)

    def get(self, conversation_id: int) -> Conversation:
        rows = self._query("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        if not rows:
            raise HistoryError(f"Conversation {conversation_id} does not exist (it was deleted).")
        return _conversation(rows[0])

    def list(self) -> list[Conversation]:
        """All conversations, the most recently active first."""
        rows = self._query("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC")
        return [_conversation(r) for r in rows]

    def rename(self, conversation_id: int, title: str) -> None:
        title = " ".join(title.split()) or DEFAULT_TITLE
        self._update_conversation(conversation_id, title=title)

    def update(
        self,
        conversation_id: int,
        *,
        model_id: str | None = None,
        system_prompt: str | None = None,
        thinking: bool | None = None,
    ) -> Conversation:
        """Change per-conversation settings; None leaves a field as it is."""
        changes: dict[str, Any] = {}
        if model_id is not None:
            changes["model_id"] = model_id
        if system_prompt is not None:
            changes["system_prompt"] = system_prompt
        if thinking is not None:
            changes["thinking"] = int(thinking)
        if changes:
            self._update_conversation(conversation_id, touch=False, **changes)
        return self.get(conversation_id)

    def _update_conversation(self, conversation_id: int, touch: bool = True, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        args = list(fields.values())
        if touch:
            sets += ", updated_at = ?"
            args.append(time.time())
        with self._tx() as c:
            cur = c.execute(
                f"UPDATE conversations SET {sets} WHERE id = ?", (*args, conversation_id)
            )
            if cur.rowcount == 0:
                raise HistoryError(
                    f"Conversation {conversation_id} does not exist (it was deleted)."
                )

    def delete(self, conversation_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def search(self, text: str) -> list[Conversation]:
        """Conversations whose title or any message contains every word of `text`."""
        text = text.strip()
        if not text:
            return self.list()
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if self.fts:
            sql = (
                "SELECT * FROM conversations WHERE title LIKE ? ESCAPE '\\' OR id IN ("
                " SELECT m.conversation_id FROM messages m JOIN messages_fts f ON f.rowid = m.id"
                " WHERE messages_fts MATCH ?)"
                " ORDER BY updated_at DESC, id DESC"
            )
            try:
                return [_conversation(r) for r in self._query(sql, (like, _fts_query(text)))]
            except HistoryError:
                pass  # an odd query FTS cannot parse: fall back to LIKE below
        sql = (
            "SELECT * FROM conversations WHERE title LIKE ? ESCAPE '\\' OR id IN ("
            " SELECT conversation_id FROM messages WHERE content LIKE ? ESCAPE '\\')"
            " ORDER BY updated_at DESC, id DESC"
        )
        return [_conversation(r) for r in self._query(sql, (like, like))]

    # -- messages ---------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self._query(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )
        files = self._attachments(
            "SELECT * FROM attachments WHERE message_id IN"
            " (SELECT id FROM messages WHERE conversation_id = ?)",
            (conversation_id,),
        )
        return [_message(r, files.get(r["id"], ())) for r in rows]

    def message(self, message_id: int) -> StoredMessage:
        rows = self._query("SELECT * FROM messages WHERE id = ?", (message_id,))
        if not rows:
            raise HistoryError(f"Message {message_id} does not exist (it was deleted).")
        files = self._attachments("SELECT * FROM attachments WHERE message_id = ?", (message_id,))
        return _message(rows[0], files.get(message_id, ()))

    def _attachments(self, sql: str, args: tuple[Any, ...]) -> dict[int, tuple[Attachment, ...]]:
        """Attachments by message id, in the order they were attached."""
        out: dict[int, list[Attachment]] = {}
        for r in self._query(sql + " ORDER BY message_id, position", args):
            out.setdefault(r["message_id"], []).append(_attachment(r))
        return {k: tuple(v) for k, v in out.items()}

    def append(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        thinking: str | None = None,
        thinking_s: float | None = None,
        model_id: str | None = None,
        complete: bool = True,
        stats: dict[str, Any] | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> StoredMessage:
        """Add a message; the first user message also titles an untitled conversation.

        `attachments` (files sent with a user message) are stored with it, text included.
        """
        if role not in MESSAGE_ROLES:
            raise ValueError(f"role must be one of {MESSAGE_ROLES}, not {role!r}")
        now = time.time()
        with self._tx() as c:
            row = c.execute(
                "SELECT title FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is None:
                raise HistoryError(
                    f"Conversation {conversation_id} does not exist (it was deleted)."
                )
            cur = c.execute(
                "INSERT INTO messages(conversation_id, role, content, thinking, thinking_s,"
                " model_id, complete, stats, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    role,
                    content,
                    thinking,
                    thinking_s,
                    model_id,
                    int(complete),
                    json.dumps(stats) if stats is not None else None,
                    now,
                ),
            )
            mid = int(cur.lastrowid or 0)
            for position, a in enumerate(attachments):
                c.execute(
                    "INSERT INTO attachments(message_id, position, path, label, language,"
                    " size_bytes, tokens, tokens_estimated, text)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        mid,
                        position,
                        a.path,
                        a.label,
                        a.language,
                        a.size_bytes,
                        a.tokens,
                        int(a.tokens_estimated),
                        a.text,
                    ),
                )
            if role == "user" and row["title"] == DEFAULT_TITLE:
                title = content if content.strip() or not attachments else attachments[0].label
                c.execute(
                    "UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
                    (title_from(title), now, conversation_id),
                )
            else:
                c.execute(
                    "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
                )
        return self.message(mid)

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        thinking: str | None = None,
        thinking_s: float | None = None,
        complete: bool | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        """Rewrite parts of a message in place (one transaction); None keeps a field."""
        fields: dict[str, Any] = {}
        if content is not None:
            fields["content"] = content
        if thinking is not None:
            fields["thinking"] = thinking
        if thinking_s is not None:
            fields["thinking_s"] = thinking_s
        if complete is not None:
            fields["complete"] = int(complete)
        if stats is not None:
            fields["stats"] = json.dumps(stats)
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as c:
            c.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*fields.values(), message_id))

    def delete_message(self, message_id: int) -> bool:
        """Delete one message (an answer that never got a token); False if it was gone."""
        with self._tx() as c:
            return c.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount > 0

    def truncate_after(
        self, conversation_id: int, message_id: int, *, inclusive: bool = False
    ) -> int:
        """Delete the messages after `message_id` (and it too if `inclusive`). Returns the count.

        Edit = truncate inclusive at the edited user message, then append the new text;
        regenerate = truncate inclusive at the last assistant message.
        """
        op = ">=" if inclusive else ">"
        with self._tx() as c:
            cur = c.execute(
                f"DELETE FROM messages WHERE conversation_id = ? AND id {op} ?",
                (conversation_id, message_id),
            )
            c.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?",
                (time.time(), conversation_id),
            )
            return cur.rowcount

    def stream_assistant(
        self,
        conversation_id: int,
        *,
        model_id: str | None = None,
        min_interval_s: float = 0.25,
        max_pending_chunks: int = 8,
    ) -> StreamingMessage:
        """Start an empty, incomplete assistant message to be filled as tokens arrive."""
        msg = self.append(conversation_id, "assistant", "", model_id=model_id, complete=False)
        return StreamingMessage(self, msg.id, min_interval_s, max_pending_chunks)

    def model_turns(self, conversation_id: int) -> list[tuple[str, str]]:
        """(role, content) pairs to send to the model: system prompt first, never thinking.

        Empty assistant messages (an answer stopped before its first token) are left out.
        A user message's attachments come first in its content, as they were sent
        (`compose_user_message`), from the stored text, whatever the files hold now.
        """
        conv = self.get(conversation_id)
        turns: list[tuple[str, str]] = []
        if conv.system_prompt.strip():
            turns.append(("system", conv.system_prompt))
        for m in self.messages(conversation_id):
            if m.role == "assistant" and not m.content:
                continue
            turns.append((m.role, compose_user_message(m.content, m.attachments)))
        return turns

    # -- export -----------------------------------------------------------------------

    def export_json(self, conversation_id: int) -> dict[str, Any]:
        conv = self.get(conversation_id)
        return {
            "format": EXPORT_FORMAT,
            "id": conv.id,
            "title": conv.title,
            "created_at": _iso(conv.created_at),
            "updated_at": _iso(conv.updated_at),
            "model_id": conv.model_id,
            "system_prompt": conv.system_prompt,
            "thinking": conv.thinking,
            "messages": [
                {
                    "role": m.role,
                    "content": m.content,
                    "thinking": m.thinking,
                    "thinking_s": m.thinking_s,
                    "model_id": m.model_id,
                    "complete": m.complete,
                    "stats": m.stats,
                    "created_at": _iso(m.created_at),
                    "attachments": [a.to_dict() for a in m.attachments],
                }
                for m in self.messages(conversation_id)
            ],
        }

    def export_markdown(self, conversation_id: int) -> str:
        conv = self.get(conversation_id)
        out = [f"# {conv.title}", ""]
        meta = [f"Exported from Hanlin on {_iso(time.time())}"]
        if conv.model_id:
            meta.append(f"model `{conv.model_id}`")
        out += ["_" + " · ".join(meta) + "_", ""]
        if conv.system_prompt.strip():
            out += ["## System", "", conv.system_prompt.strip(), ""]
        for m in self.messages(conversation_id):
            out += [f"## {m.role.capitalize()}", ""]
            if m.thinking:
                secs = f" for {m.thinking_s:.0f} s" if m.thinking_s is not None else ""
                out += [
                    f"<details><summary>Thought{secs}</summary>",
                    "",
                    m.thinking.strip(),
                    "",
                    "</details>",
                    "",
                ]
            for a in m.attachments:
                out += [f"_Attached `{a.label}` ({a.tokens:,} tokens)_", ""]
            out += [m.content.strip() or "_(no answer)_", ""]
            if not m.complete:
                out += ["_(answer interrupted)_", ""]
        return "\n".join(out).rstrip() + "\n"


class StreamingMessage:
    """An assistant message written while it streams.

    Call `update(content, thinking)` with the full text so far after every chunk; it
    commits when `min_interval_s` passed or `max_pending_chunks` chunks piled up since
    the last commit, so a killed process loses at most those. `finish()` writes the
    final text, the stats and marks the message complete.
    """

    def __init__(
        self, history: History, message_id: int, min_interval_s: float, max_pending_chunks: int
    ) -> None:
        self.history = history
        self.message_id = message_id
        self._min_interval = min_interval_s
        self._max_pending = max_pending_chunks
        self._last_write = time.monotonic()
        self._pending = 0
        self.writes = 0

    def update(self, content: str, thinking: str | None = None, *, force: bool = False) -> bool:
        """Record the text so far; returns True if it was committed now."""
        self._pending += 1
        now = time.monotonic()
        if (
            not force
            and self._pending < self._max_pending
            and now - self._last_write < self._min_interval
        ):
            return False
        self.history.update_message(self.message_id, content=content, thinking=thinking or None)
        self._last_write = now
        self._pending = 0
        self.writes += 1
        return True

    def finish(
        self,
        content: str,
        thinking: str | None = None,
        *,
        thinking_s: float | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        self.history.update_message(
            self.message_id,
            content=content,
            thinking=thinking or None,
            thinking_s=thinking_s,
            complete=True,
            stats=stats,
        )
        self.writes += 1


def _check_integrity(conn: sqlite3.Connection) -> None:
    """Raise sqlite3.DatabaseError unless `PRAGMA quick_check` finds the file sound.

    quick_check answers one row "ok", or up to 100 rows describing the damage (broken
    pages, bad cell offsets) of a file that may still open and even read for a while.
    """
    problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        first = problems[0].replace("*** in database main ***", "").strip().splitlines()
        detail = first[0] if first else "no details"
        raise sqlite3.DatabaseError(f"its integrity check failed: {detail}")


def _conversation(r: sqlite3.Row) -> Conversation:
    return Conversation(
        id=r["id"],
        title=r["title"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        model_id=r["model_id"],
        system_prompt=r["system_prompt"],
        thinking=bool(r["thinking"]),
    )


def _attachment(r: sqlite3.Row) -> Attachment:
    return Attachment(
        path=r["path"],
        label=r["label"],
        language=r["language"],
        size_bytes=r["size_bytes"],
        tokens=r["tokens"],
        tokens_estimated=bool(r["tokens_estimated"]),
        text=r["text"],
    )


def _message(r: sqlite3.Row, attachments: tuple[Attachment, ...] = ()) -> StoredMessage:
    return StoredMessage(
        id=r["id"],
        conversation_id=r["conversation_id"],
        role=r["role"],
        content=r["content"],
        thinking=r["thinking"],
        thinking_s=r["thinking_s"],
        model_id=r["model_id"],
        complete=bool(r["complete"]),
        stats=json.loads(r["stats"]) if r["stats"] else None,
        created_at=r["created_at"],
        attachments=attachments,
    )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
