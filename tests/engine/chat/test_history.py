"""engine.chat.history: conversations, messages, search, streaming writes, truncation, export,
damage."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from hanlin.engine.chat.history import DEFAULT_TITLE, History, StreamingMessage, title_from
from hanlin.engine.core import paths
from hanlin.engine.core.errors import HistoryError


@pytest.fixture
def history():
    h = History()
    yield h
    h.close()


def test_lives_in_the_data_dir_in_wal_mode(history):
    assert history.path == paths.data_dir() / "history.sqlite3"
    assert history.path.exists()
    mode = sqlite3.connect(history.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_create_list_rename_delete(history):
    a = history.create()
    b = history.create("Second", model_id="smol", system_prompt="Be brief.", thinking=False)
    assert a.title == DEFAULT_TITLE
    assert (b.model_id, b.system_prompt, b.thinking) == ("smol", "Be brief.", False)
    history.append(a.id, "user", "hello")  # a becomes the most recent
    assert [c.id for c in history.list()] == [a.id, b.id]
    history.rename(b.id, "  Renamed   chat ")
    assert history.get(b.id).title == "Renamed chat"
    history.delete(a.id)
    assert [c.id for c in history.list()] == [b.id]
    with pytest.raises(HistoryError):
        history.get(a.id)


def test_first_user_message_titles_the_conversation(history):
    c = history.create()
    history.append(c.id, "user", "Explain   Python's GIL\nin two sentences please " * 3)
    title = history.get(c.id).title
    assert title.startswith("Explain Python's GIL in two sentences")
    assert len(title) <= 60
    history.append(c.id, "user", "another question")
    assert history.get(c.id).title == title
    assert title_from("   ") == DEFAULT_TITLE


def test_update_per_conversation_settings(history):
    c = history.create()
    c2 = history.update(
        c.id, model_id="qwen3-4b-q4km", system_prompt="You are terse.", thinking=False
    )
    assert (c2.model_id, c2.system_prompt, c2.thinking) == (
        "qwen3-4b-q4km",
        "You are terse.",
        False,
    )
    c3 = history.update(c.id, thinking=True)
    assert c3.thinking and c3.model_id == "qwen3-4b-q4km"


def test_delete_cascades_messages(history):
    c = history.create()
    history.append(c.id, "user", "hi")
    history.append(c.id, "assistant", "hello")
    history.delete(c.id)
    n = history._query("SELECT COUNT(*) AS n FROM messages")[0]["n"]
    assert n == 0


@pytest.mark.parametrize("use_fts", [True, False])
def test_search_by_title_and_text(history, use_fts):
    if use_fts and not history.fts:
        pytest.skip("this SQLite has no FTS5")
    history.fts = use_fts
    a = history.create("Rust lifetimes")
    b = history.create()
    history.append(b.id, "user", "How do I reverse a linked list in Python?")
    history.append(b.id, "assistant", "Use an iterative approach with three pointers.")
    c = history.create("Other")
    history.append(c.id, "user", "nothing relevant")
    assert [x.id for x in history.search("lifetimes")] == [a.id]
    assert [x.id for x in history.search("pointers")] == [b.id]
    assert [x.id for x in history.search("linked list")] == [b.id]
    assert history.search("zebra") == []
    assert len(history.search("")) == 3
    # quotes and operators are text, not query syntax
    assert history.search('"AND (') == []


def test_search_sees_text_updated_while_streaming(history):
    c = history.create()
    history.append(c.id, "user", "q")
    s = history.stream_assistant(c.id)
    s.update("the answer mentions quokkas", force=True)
    assert [x.id for x in history.search("quokkas")] == [c.id]


def test_thinking_stored_apart_and_never_in_model_turns(history):
    c = history.create(system_prompt="Be kind.")
    history.append(c.id, "user", "2+2?")
    history.append(c.id, "assistant", "4", thinking="two plus two is four", thinking_s=1.5)
    history.append(c.id, "user", "and 3+3?")
    s = history.stream_assistant(c.id)  # stopped before the first token: left out
    assert s.message_id
    msgs = history.messages(c.id)
    assert msgs[1].thinking == "two plus two is four" and msgs[1].content == "4"
    turns = history.model_turns(c.id)
    assert turns == [
        ("system", "Be kind."),
        ("user", "2+2?"),
        ("assistant", "4"),
        ("user", "and 3+3?"),
    ]
    assert all("two plus two" not in text for _, text in turns)


def test_streaming_message_commits_every_few_chunks_and_finishes(history):
    c = history.create()
    history.append(c.id, "user", "count")
    s = history.stream_assistant(c.id, model_id="smol", min_interval_s=60, max_pending_chunks=4)
    assert isinstance(s, StreamingMessage)
    text = ""
    committed = []
    for i in range(10):
        text += f"{i} "
        committed.append(s.update(text))
    assert committed.count(True) == 2  # after chunks 4 and 8
    other = History()  # a second connection sees only what was committed
    stored = other.message(s.message_id)
    assert stored.content == "0 1 2 3 4 5 6 7 " and not stored.complete
    s.finish(text, "hmm", thinking_s=0.4, stats={"tokens_per_s": 99.0, "stop_reason": "stop"})
    stored = other.message(s.message_id)
    assert stored.content == text and stored.complete and stored.thinking == "hmm"
    assert stored.stats == {"tokens_per_s": 99.0, "stop_reason": "stop"}
    other.close()


def test_streaming_message_commits_on_time(history):
    c = history.create()
    s = history.stream_assistant(c.id, min_interval_s=0.05, max_pending_chunks=1000)
    assert s.update("a") is False
    time.sleep(0.06)
    assert s.update("ab") is True
    assert history.message(s.message_id).content == "ab"


def test_truncate_after_for_edit_and_regenerate(history):
    c = history.create()
    u1 = history.append(c.id, "user", "one")
    history.append(c.id, "assistant", "1")
    u2 = history.append(c.id, "user", "two")
    a2 = history.append(c.id, "assistant", "2")
    assert history.truncate_after(c.id, a2.id, inclusive=True) == 1  # regenerate
    assert [m.content for m in history.messages(c.id)] == ["one", "1", "two"]
    assert history.truncate_after(c.id, u2.id, inclusive=True) == 1  # edit "two"
    history.append(c.id, "user", "TWO")
    assert [m.content for m in history.messages(c.id)] == ["one", "1", "TWO"]
    assert history.truncate_after(c.id, u1.id) == 2
    assert [m.content for m in history.messages(c.id)] == ["one"]


def test_delete_one_message_keeps_the_ones_after_it(history):
    c = history.create()
    history.append(c.id, "user", "first")
    empty = history.stream_assistant(c.id)  # an answer stopped before its first token
    history.append(c.id, "user", "second")
    later = history.append(c.id, "assistant", "answer")
    assert history.delete_message(empty.message_id)
    assert [m.content for m in history.messages(c.id)] == ["first", "second", "answer"]
    assert not history.delete_message(empty.message_id)
    assert history.message(later.id).content == "answer"


def test_export_markdown_and_json(history):
    c = history.create("Export me", model_id="smol", system_prompt="Sys.")
    history.append(c.id, "user", "Show code")
    history.append(c.id, "assistant", "```python\nprint(1)\n```", thinking="plan", thinking_s=2.0)
    md = history.export_markdown(c.id)
    assert md.startswith("# Export me\n")
    assert "## System\n\nSys." in md
    assert "## User\n\nShow code" in md
    assert "<details><summary>Thought for 2 s</summary>" in md
    assert "```python\nprint(1)\n```" in md
    data = history.export_json(c.id)
    json.dumps(data)  # serialisable
    assert data["format"] == "hanlin.conversation/1"
    assert data["title"] == "Export me" and data["model_id"] == "smol"
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["thinking"] == "plan"


def test_reopen_keeps_everything(history):
    c = history.create("Keep")
    history.append(c.id, "user", "persist me")
    history.close()
    again = History()
    assert [m.content for m in again.messages(c.id)] == ["persist me"]
    again.close()


def test_damaged_file_is_moved_aside_not_crashing(hanlin_home):
    path = paths.data_dir() / "history.sqlite3"
    paths.ensure(path.parent)
    path.write_bytes(b"this is not a database" * 100)
    h = History()
    assert h.problem and "moved" in h.problem
    assert h.list() == []
    assert list(path.parent.glob("history.sqlite3.damaged-*"))
    h.close()


def _damage_a_page(path):
    """Overwrite the cell pointers of one b-tree page so that the file still opens and reads
    its schema, but `PRAGMA quick_check` reports the damage (rather than failing itself)."""
    original = path.read_bytes()
    page_size = int.from_bytes(original[16:18], "big")
    for page in range(1, len(original) // page_size):
        data = bytearray(original)
        start = page * page_size + 8 + 2  # past the leaf page header: the cell pointers
        data[start : start + 40] = b"\xff" * 40
        path.write_bytes(bytes(data))
        check = sqlite3.connect(path)
        try:
            result = check.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError:
            result = None  # damage that SQLite itself trips over: not the case tested here
        finally:
            check.close()
        if result not in (None, "ok"):
            return bytes(data)
    raise AssertionError("no page damage that only quick_check sees")


def test_damage_only_an_integrity_check_finds_is_moved_aside_too(hanlin_home):
    """A file that opens fine but whose quick_check fails (a broken page of messages)."""
    h = History()
    c = h.create("kept aside")
    for i in range(300):
        h.append(c.id, "user", f"message {i} " + "lorem ipsum " * 30)
    h.close()
    path = h.path
    data = _damage_a_page(path)

    again = History()
    assert again.problem and "moved" in again.problem and "damaged" in again.problem
    assert again.list() == []  # a new, empty history
    (aside,) = path.parent.glob("history.sqlite3.damaged-*")
    assert aside.read_bytes() == bytes(data)  # the damaged file is kept as it was
    c2 = again.create("fresh")
    again.append(c2.id, "user", "works")
    assert [m.content for m in again.messages(c2.id)] == ["works"]
    again.close()
    healthy = History()
    assert healthy.problem is None  # the new file is fine
    healthy.close()


def test_killed_writer_loses_at_most_the_uncommitted_tail(hanlin_home):
    """A process streaming into the DB is SIGKILLed; the DB is intact with the partial answer."""
    script = textwrap.dedent(
        """
        import sys, time
        from hanlin.engine.chat.history import History
        h = History()
        c = h.create("killed")
        h.append(c.id, "user", "long answer please")
        s = h.stream_assistant(c.id, min_interval_s=0.01, max_pending_chunks=3)
        text = ""
        i = 0
        while True:
            text += f"tok{i} "
            if s.update(text) and i > 30:
                print("COMMITTED", flush=True)
            i += 1
            time.sleep(0.001)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=str(paths.Path.cwd())
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "COMMITTED"
    proc.kill()
    proc.wait(10)
    h = History()
    assert h.problem is None
    assert sqlite3.connect(h.path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    (conv,) = h.list()
    user, answer = h.messages(conv.id)
    assert user.content == "long answer please"
    assert answer.content.startswith("tok0 tok1 tok2 ") and not answer.complete
    assert len(answer.content.split()) > 30
    h.close()


def test_ids_are_never_reused_after_truncation(history):
    """A stopped answer's late write must not land in the message that replaced it."""
    c = history.create()
    history.append(c.id, "user", "q")
    old = history.stream_assistant(c.id)
    history.truncate_after(c.id, old.message_id, inclusive=True)
    new = history.stream_assistant(c.id)
    assert new.message_id != old.message_id
    old.finish("late text from the stopped worker")
    assert history.message(new.message_id).content == ""
