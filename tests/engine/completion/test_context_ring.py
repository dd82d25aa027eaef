"""The ring of other files' context: bounded, deduplicated, stable order, oldest evicted."""

from __future__ import annotations

import threading

from hanlin.engine.completion.context_ring import ContextChunk, ContextRing, chunk_similarity

MODELS_PY = "\n".join(
    [
        "from dataclasses import dataclass",
        "",
        "@dataclass",
        "class User:",
        "    id: int",
        "    name: str",
        "    email: str",
        "",
        "    def display(self) -> str:",
        '        return f"{self.name} <{self.email}>"',
    ]
)


def _numbered(n: int, tag: str = "line") -> str:
    return "\n".join(f"{tag}_{i} = {i}" for i in range(n)) + "\n"


def test_chunks_keep_insertion_order_and_exclude_the_current_file() -> None:
    ring = ContextRing()
    ring.add_document("models.py", MODELS_PY)
    ring.add_document("db.py", "import sqlite3\n\nconn = sqlite3.connect('app.db')\n")
    ring.add_document("api.py", "from models import User\n\ndef get_user(uid): ...\n")
    names = [c.filename for c in ring.chunks()]
    assert names == ["models.py", "db.py", "api.py"]
    assert [c.filename for c in ring.chunks(exclude="db.py")] == ["models.py", "api.py"]
    assert ring.chunks()[0].text == MODELS_PY


def test_same_chunk_added_again_does_not_reshuffle_the_prompt() -> None:
    ring = ContextRing()
    ring.add_document("models.py", MODELS_PY)
    ring.add_document("db.py", "import sqlite3\n")
    before = ring.chunks()
    ring.add_document("models.py", MODELS_PY)  # re-opened: no change
    assert ring.chunks() == before


def test_near_duplicates_are_dropped_by_similarity() -> None:
    ring = ContextRing(similarity_threshold=0.8)
    base = _numbered(20)
    assert ring.add_chunk(ContextChunk("a.py", base))
    # one line changed out of twenty: still the same chunk for prompt purposes
    edited = base.replace("line_3 = 3", "line_3 = 33")
    assert chunk_similarity(base, edited) > 0.8
    assert not ring.add_chunk(ContextChunk("a.py", edited))
    assert len(ring) == 1
    assert ring.add_chunk(ContextChunk("b.py", _numbered(20, "other")))
    assert len(ring) == 2


def test_oldest_chunks_are_evicted_by_count() -> None:
    ring = ContextRing(max_chunks=3)
    for i in range(5):
        ring.add_document(f"f{i}.py", _numbered(5, f"v{i}"))
    assert [c.filename for c in ring.chunks()] == ["f2.py", "f3.py", "f4.py"]


def test_total_characters_are_capped() -> None:
    ring = ContextRing(max_chars=1000, chunk_lines=1000)
    for i in range(10):
        ring.add_document(f"f{i}.py", _numbered(30, f"name{i}"))  # ~400 chars each
    assert ring.total_chars <= 1000
    assert ring.chunks()[-1].filename == "f9.py"
    assert len(ring) >= 2


def test_a_long_document_contributes_the_window_around_the_cursor() -> None:
    ring = ContextRing(chunk_lines=16)
    text = _numbered(200)
    ring.add_document("big.py", text, cursor_line=120)
    (chunk,) = ring.chunks()
    lines = chunk.text.splitlines()
    assert len(lines) == 16
    assert "line_120 = 120" in lines
    # moving the cursor by a line or two picks the same aligned window
    ring2 = ContextRing(chunk_lines=16)
    ring2.add_document("big.py", text, cursor_line=121)
    assert ring2.chunks()[0].text == chunk.text


def test_head_of_file_without_cursor_and_blank_documents_ignored() -> None:
    ring = ContextRing(chunk_lines=4)
    ring.add_document("blank.py", "   \n\n")
    assert len(ring) == 0
    ring.add_document("big.py", _numbered(50))
    assert ring.chunks()[0].text.startswith("line_0 = 0\n")


def test_remove_and_clear() -> None:
    ring = ContextRing()
    ring.add_document("a.py", "a = 1\n")
    ring.add_document("b.py", "b = 2\n")
    ring.remove("a.py")
    assert [c.filename for c in ring.chunks()] == ["b.py"]
    ring.add_document("a.py", "a = 1\n")  # can come back after removal
    assert len(ring) == 2
    ring.clear()
    assert ring.chunks() == []


def test_concurrent_adds_stay_bounded() -> None:
    ring = ContextRing(max_chunks=8)

    def worker(k: int) -> None:
        for i in range(50):
            ring.add_document(f"w{k}_{i}.py", _numbered(3, f"w{k}x{i}"))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ring) == 8


def test_the_stalest_chunk_is_evicted_not_the_oldest_nor_the_new_one() -> None:
    ring = ContextRing(max_chunks=3)
    for name in ("a.py", "b.py", "c.py"):
        ring.add_document(name, _numbered(5, name[0]))
    # the user comes back to a.py: its chunk is seen again (fresh) but keeps its place
    ring.add_document("a.py", _numbered(5, "a"))
    assert [c.filename for c in ring.chunks()] == ["a.py", "b.py", "c.py"]
    ring.add_document("d.py", _numbered(5, "d"))
    # b.py is the stalest now; the new chunk stays, and the order of the rest is kept
    assert [c.filename for c in ring.chunks()] == ["a.py", "c.py", "d.py"]


def test_a_new_chunk_too_big_for_the_ring_evicts_the_others_but_stays() -> None:
    ring = ContextRing(max_chars=150)
    ring.add_document("a.py", _numbered(8, "a"))
    ring.add_document("b.py", _numbered(12, "b"))
    assert [c.filename for c in ring.chunks()] == ["b.py"]


def test_staged_chunks_enter_only_when_committed() -> None:
    ring = ContextRing()
    ring.add_document("a.py", _numbered(5, "a"))
    ring.stage("b.py", _numbered(5, "b"))
    ring.stage("c.py", "   \n")  # blank: nothing to stage
    assert ring.staged == 1
    assert [c.filename for c in ring.chunks()] == ["a.py"]  # the prompt is unchanged
    assert ring.commit_staged() == 1
    assert ring.staged == 0
    assert [c.filename for c in ring.chunks()] == ["a.py", "b.py"]
    ring.stage("d.py", _numbered(5, "d"))
    ring.remove("d.py")
    assert ring.commit_staged() == 0
