"""Saved KV states on the real SmolLM2 through real llama.cpp: save, restore, damage, mismatch,
LRU eviction, and two processes sharing one store.

The restart itself (a new process reopening a conversation) is tests/e2e/test_kv_restart.py.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import llama_cpp
import pytest

from hanlin.engine.core.settings import Settings, save_settings
from hanlin.engine.runtime import kv_state_store as kvs
from hanlin.engine.runtime.kv_state_store import KVStateStore, kv_cache_dir
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model
from hanlin.engine.runtime.session import build_sampler

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
#: one thread: the test machine's two cores are shared (see tests/engine/chat/test_stream.py)
THREADS = 1
N_CTX = 1024

BASE = (
    "The harbour town woke before dawn. Fishermen carried nets down the stone steps, "
    "gulls argued over the masts, and the baker opened her shutters to the smell of rye. "
)
OTHER = (
    "In the mountains the snow came early that year. The shepherd counted his sheep twice, "
    "mended the fence by the river and climbed to the hut where the old dog waited. "
)
THIRD = (
    "A small robot rolled through the empty library at night, dusting the shelves, "
    "reading the titles aloud and putting every fallen book back on its own shelf, "
    "in the right order, before the first reader arrived. "
)


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Iterator[LoadedModel]:
    loaded = load_model(smollm2_path, options=LoadOptions(n_ctx=N_CTX, threads=THREADS))
    yield loaded
    loaded.close()


@pytest.fixture
def store(tmp_path: Path) -> KVStateStore:
    return KVStateStore(tmp_path / "kv")


def prompt(model: LoadedModel, text: str, repeat: int = 4) -> list[int]:
    """About 37 tokens per paragraph: four are over the 128-token minimum for a save."""
    return model.session.tokenize(text * repeat, add_special=True)


def greedy_tokens(model: LoadedModel, n: int = 8) -> list[int]:
    """The next `n` greedy tokens after what the session evaluated (the cache advances)."""
    with build_sampler(model.vocab, temperature=0.0) as sampler:
        out = []
        for token in model.session.generate(sampler, max_tokens=n):
            out.append(token)
            if len(out) == n:
                break
        return out


def pos_max(model: LoadedModel) -> int:
    return llama_cpp.llama_memory_seq_pos_max(llama_cpp.llama_get_memory(model.ctx), 0)


def saved(store: KVStateStore, model: LoadedModel, tokens: list[int]) -> Path:
    model.session.reset()
    model.session.evaluate(tokens)
    result = store.save(model)
    assert result is not None and result.path.is_file()
    return result.path


# ---------------------------------------------------------------------------- round trip


def test_restore_evaluates_only_the_new_tokens_and_continues_as_if_never_saved(
    model: LoadedModel, store: KVStateStore
) -> None:
    base = prompt(model, BASE)
    more = model.session.tokenize(" What did the baker sell first?")
    new = base + more
    session = model.session

    path = saved(store, model, base)
    assert path.parent.parent == store.root and path.suffix == ".kvstate"
    (entry,) = store.entries()
    assert entry.tokens == tuple(base) and entry.size_bytes == path.stat().st_size
    # never restarted: the cache still holds `base`
    warm = session.evaluate(new)
    assert (warm.cached_tokens, warm.evaluated_tokens) == (len(base), len(more))
    warm_out = greedy_tokens(model)

    session.reset()
    assert pos_max(model) == -1
    restored = store.restore(model, new)
    assert restored is not None
    assert (restored.stored_tokens, restored.matched_tokens) == (len(base), len(base))
    assert restored.path == path and restored.size_bytes == path.stat().st_size
    assert session.tokens == base and pos_max(model) == len(base) - 1
    again = session.evaluate(new)
    assert (again.cached_tokens, again.evaluated_tokens) == (len(base), len(more))
    assert greedy_tokens(model) == warm_out

    session.reset()
    cold = session.evaluate(new)
    assert cold.evaluated_tokens == len(new)
    assert greedy_tokens(model) == warm_out


def test_the_longest_matching_prefix_is_used_and_a_diverging_tail_dropped(
    model: LoadedModel, store: KVStateStore
) -> None:
    base = prompt(model, BASE)
    longer = base + model.session.tokenize(" The first boat came back full of herring.")
    saved(store, model, prompt(model, OTHER))
    path = saved(store, model, longer)
    # the new prompt shares `base` with the longer state, and then says something else
    new = base + model.session.tokenize(" Nobody in the town remembered the storm.")
    model.session.reset()
    restored = store.restore(model, new)
    assert restored is not None and restored.path == path
    assert restored.stored_tokens == len(longer)
    assert len(base) <= restored.matched_tokens < len(longer)
    result = model.session.evaluate(new)
    assert result.cached_tokens == restored.matched_tokens
    assert result.evaluated_tokens == len(new) - restored.matched_tokens


def test_nothing_is_read_when_the_cache_already_holds_the_prompt(
    model: LoadedModel, store: KVStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = prompt(model, BASE)
    saved(store, model, base)
    reads: list[Path] = []
    monkeypatch.setattr(kvs.KVStateStore, "_entries_in", lambda self, f, **kw: reads.append(f))
    # the session holds `base`: a follow-up shares all of it, nothing to gain from disk
    assert store.restore(model, base + model.session.tokenize(" And then?")) is None
    assert reads == []


def test_a_state_that_would_spare_little_is_not_loaded(
    model: LoadedModel, store: KVStateStore
) -> None:
    base = prompt(model, BASE)
    saved(store, model, base)
    model.session.reset()
    # shares only the first sentence or so (< min_restore_gain tokens)
    head = base[:40] + prompt(model, OTHER)
    assert store.restore(model, head) is None
    assert model.session.tokens == []
    assert len(store.entries()) == 1  # not a bad file: kept


def test_a_state_mostly_unused_by_the_prompt_is_not_loaded(
    model: LoadedModel, tmp_path: Path
) -> None:
    """Reading a state costs per stored token: a prompt that would use less than an eighth
    of it (an early message edited in a long chat) is evaluated instead."""
    store = KVStateStore(tmp_path / "kv", min_restore_gain=8)
    base = prompt(model, BASE)
    saved(store, model, base)
    model.session.reset()
    few = len(base) // 8 - 2
    assert store.restore(model, base[:few] + prompt(model, OTHER)) is None
    restored = store.restore(model, base[: 2 * few] + prompt(model, OTHER))
    assert restored is not None and restored.matched_tokens == 2 * few


# ---------------------------------------------------------------------------- saving


def test_save_skips_short_states_and_rewrites_nothing_already_saved(
    model: LoadedModel, store: KVStateStore
) -> None:
    session = model.session
    session.reset()
    session.evaluate(session.tokenize("Hello there.", add_special=True))
    assert store.save(model) is None
    assert not store.root.exists() or store.entries() == []

    base = prompt(model, BASE)
    first = saved(store, model, base)
    again = store.save(model)
    assert again is not None and again.reused and again.path == first

    # the conversation went on: the longer state replaces the shorter one it extends
    session.evaluate(base + session.tokenize(" Then the rain started."))
    longer = store.save(model)
    assert longer is not None and not longer.reused and longer.removed == 1
    assert [e.path for e in store.entries()] == [longer.path]
    assert not first.exists()
    # going back to a prefix of it needs no new file either
    session.truncate(len(base))
    back = store.save(model)
    assert back is not None and back.reused and back.path == longer.path


def test_an_unwritable_store_loses_nothing_but_the_cache(
    model: LoadedModel, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder would be")
    store = KVStateStore(blocker / "kv")
    model.session.reset()
    model.session.evaluate(prompt(model, BASE))
    assert store.save(model) is None
    new = prompt(model, BASE) + model.session.tokenize(" More?")
    model.session.reset()
    assert store.restore(model, new) is None
    assert blocker.read_text().startswith("a file")


def test_settings_size_the_store_and_zero_turns_it_off() -> None:
    assert KVStateStore.from_settings().max_bytes == kvs.DEFAULT_MAX_BYTES  # type: ignore[union-attr]
    assert KVStateStore.from_settings().root == kv_cache_dir()  # type: ignore[union-attr]
    save_settings(Settings(kv_cache_mb=64))
    assert KVStateStore.from_settings().max_bytes == 64 << 20  # type: ignore[union-attr]
    save_settings(Settings(kv_cache_mb=0))
    assert KVStateStore.from_settings() is None


# ---------------------------------------------------------------------------- never trusted


def _flip(offset_of: Callable[[kvs.StateEntry], int]) -> Callable[[Path, kvs.StateEntry], None]:
    def damage(path: Path, entry: kvs.StateEntry) -> None:
        data = bytearray(path.read_bytes())
        data[offset_of(entry)] ^= 0x5A
        path.write_bytes(bytes(data))

    return damage


def _truncate(keep: Callable[[kvs.StateEntry], int]) -> Callable[[Path, kvs.StateEntry], None]:
    def damage(path: Path, entry: kvs.StateEntry) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: keep(entry)])

    return damage


DAMAGE = {
    "payload byte flipped": _flip(lambda e: e.payload_offset + e.payload_bytes // 2),
    "last payload byte flipped": _flip(lambda e: e.size_bytes - 1),
    "token flipped": _flip(lambda e: e.payload_offset - 2),
    "header byte flipped": _flip(lambda e: 60),
    "header digest flipped": _flip(lambda e: 20),
    "magic flipped": _flip(lambda e: 0),
    "payload truncated": _truncate(lambda e: e.payload_offset + e.payload_bytes // 3),
    "last byte missing": _truncate(lambda e: e.size_bytes - 1),
    "header only": _truncate(lambda e: e.payload_offset),
    "empty file": _truncate(lambda e: 0),
    "bytes appended": lambda path, e: path.write_bytes(path.read_bytes() + b"\0" * 16),
}


@pytest.fixture(scope="module")
def pristine(model: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One good state file (saved once for all the damage cases) and its store's root."""
    root = tmp_path_factory.mktemp("pristine") / "kv"
    return saved(KVStateStore(root), model, prompt(model, BASE)), root


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_state_is_deleted_and_never_loaded(
    model: LoadedModel, store: KVStateStore, pristine: tuple[Path, Path], damage: str
) -> None:
    good, good_root = pristine
    path = store.root / good.relative_to(good_root)
    path.parent.mkdir(parents=True)
    shutil.copyfile(good, path)
    (entry,) = store.entries()
    DAMAGE[damage](path, entry)

    model.session.reset()
    new = prompt(model, BASE) + model.session.tokenize(" What did the baker sell first?")
    assert store.restore(model, new) is None
    assert not path.exists(), "a damaged state must be deleted"
    assert model.session.tokens == [] and pos_max(model) == -1
    assert good.exists()


def test_after_a_damaged_state_the_prompt_is_evaluated_cold_and_answers_alike(
    model: LoadedModel, store: KVStateStore
) -> None:
    from hanlin.engine.chat.stream import ChatMessage, stream_chat
    from hanlin.engine.models.catalog import Sampling

    greedy = Sampling(temperature=0.0, max_tokens=12)
    messages = [ChatMessage("system", BASE * 4), ChatMessage("user", "What did the baker do?")]
    model.session.reset()
    cold = stream_chat(model, messages, sampling=greedy)
    assert store.save(model) is not None
    (entry,) = store.entries()
    DAMAGE["payload byte flipped"](entry.path, entry)
    model.session.reset()
    again = stream_chat(model, messages, sampling=greedy, kv_store=store)
    assert again.stats.restored_tokens == 0 and again.stats.cached_tokens == 0
    assert again.stats.evaluated_tokens == again.stats.prompt_tokens
    assert again.content == cold.content
    assert store.entries() == []


def test_a_state_llamacpp_refuses_is_deleted_and_the_sequence_cleared(
    model: LoadedModel, store: KVStateStore
) -> None:
    """Checksums fine, key fine, but the payload is not a whole state: llama.cpp's own
    check (it returns 0) is the last line, and the half-loaded sequence is cleared."""
    base = prompt(model, BASE)
    path = saved(store, model, base)
    key = kvs.state_key(model)
    payload = kvs._copy_state(model, 0)
    short = (ctypes.c_uint8 * (len(payload) // 2)).from_buffer_copy(
        bytes(payload)[: len(payload) // 2]
    )
    header, tokens = kvs._encode_header(key, base, short)
    kvs._write_atomic(path, (kvs._preamble(header), header, tokens, short))
    assert store.entries()[0].payload_bytes == len(short)  # it reads as a valid file

    model.session.reset()
    new = base + model.session.tokenize(" And the gulls?")
    assert store.restore(model, new) is None
    assert not path.exists()
    assert model.session.tokens == [] and pos_max(model) == -1
    assert model.session.evaluate(new).evaluated_tokens == len(new)


def test_a_state_for_another_context_size_is_deleted(
    model: LoadedModel, store: KVStateStore, smollm2_path: Path
) -> None:
    base = prompt(model, BASE)
    path = saved(store, model, base)
    other = load_model(smollm2_path, options=LoadOptions(n_ctx=N_CTX // 2, threads=THREADS))
    try:
        new = base + other.session.tokenize(" Who woke first?")
        assert store.restore(other, new) is None
        assert not path.exists()
        assert other.session.evaluate(new).evaluated_tokens == len(new)
    finally:
        other.close()


def test_a_state_of_a_replaced_model_file_or_of_another_model_is_deleted(
    model: LoadedModel, store: KVStateStore, smollm2_path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "models" / "smol-copy.gguf"
    copy.parent.mkdir()
    shutil.copyfile(smollm2_path, copy)
    base = prompt(model, BASE)
    mine = saved(store, model, base)  # the original model's state: never touched below

    first = load_model(copy, options=LoadOptions(n_ctx=N_CTX, threads=THREADS))
    try:
        path = saved(store, first, base)
        assert path.parent != mine.parent  # one folder per model file
        # another model's state copied into this model's folder is not this model's
        stray = path.with_name("0" * 32 + ".kvstate")
        shutil.copyfile(mine, stray)
        first.session.reset()
        new = base + first.session.tokenize(" The end.")
        restored = store.restore(first, new)
        assert restored is not None and restored.path == path
        assert not stray.exists()
    finally:
        first.close()

    # the file is replaced (a new download of the same name): its old states are stale
    later = time.time() + 5
    os.utime(copy, (later, later))
    second = load_model(copy, options=LoadOptions(n_ctx=N_CTX, threads=THREADS))
    try:
        second.session.reset()
        assert store.restore(second, new) is None
        assert not path.exists()
        assert second.session.evaluate(new).evaluated_tokens == len(new)
    finally:
        second.close()
    assert mine.exists()


# ---------------------------------------------------------------------------- bounded


def test_least_recently_used_states_go_first_under_the_size_limit(
    model: LoadedModel, tmp_path: Path
) -> None:
    big = KVStateStore(tmp_path / "kv")
    one = saved(big, model, prompt(model, BASE))
    size = one.stat().st_size
    store = KVStateStore(tmp_path / "kv", max_bytes=int(size * 2.5))
    two = saved(store, model, prompt(model, OTHER))
    # reopening the first conversation makes it the most recently used
    model.session.reset()
    first_again = prompt(model, BASE) + model.session.tokenize(" Go on.")
    assert store.restore(model, first_again) is not None
    three = saved(store, model, prompt(model, THIRD))
    assert one.exists() and three.exists() and not two.exists()
    assert store.total_bytes() <= store.max_bytes
    assert [e.path for e in store.entries()] == [one, three]

    # a state bigger than the whole store is not written at all
    tiny = KVStateStore(tmp_path / "kv", max_bytes=size // 2)
    model.session.reset()
    model.session.evaluate(prompt(model, BASE, repeat=5))
    assert tiny.save(model) is None
    assert tiny.evict() == 2 and tiny.entries() == []


def test_temp_files_of_a_crashed_writer_are_swept(model: LoadedModel, store: KVStateStore) -> None:
    path = saved(store, model, prompt(model, BASE))
    stale = path.parent / ".deadbeef.123.tmp"
    stale.write_bytes(b"half a state")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = path.parent / ".cafe.456.tmp"  # another process may be writing this one now
    fresh.write_bytes(b"being written")
    saved(store, model, prompt(model, OTHER))
    assert not stale.exists() and fresh.exists()


# ---------------------------------------------------------------------------- processes

_WORKER = r"""
import json, sys
from pathlib import Path
from hanlin.engine.runtime.kv_state_store import KVStateStore
from hanlin.engine.runtime.loader import LoadOptions, load_model

model_path, root, cap, text, other = sys.argv[1:6]
model = load_model(model_path, options=LoadOptions(n_ctx=1024, threads=1))
store = KVStateStore(Path(root), max_bytes=int(cap))
s = model.session
base = s.tokenize(text * 4, add_special=True)
s.evaluate(base)
saves = restores = 0
for i in range(12):
    tokens = list(s.tokens) or base
    s.evaluate(tokens + s.tokenize(f" step {i}"))  # the conversation goes on a little
    if store.save(model) is not None:                # (it may be the other one's now)
        saves += 1
    # reopen the conversation this one does not hold (whichever of its states is there now;
    # the other process extends, replaces and evicts them meanwhile)
    theirs = s.tokenize(other * 4, add_special=True)
    if s.tokens[: len(theirs)] == theirs:
        theirs = s.tokenize(text * 4, add_special=True)
    reopen = theirs + s.tokenize(" again")
    if store.restore(model, reopen) is not None:
        restores += 1
    for entry in store.entries():                    # whatever is listed reads whole
        assert entry.size_bytes == entry.payload_offset + entry.payload_bytes
model.close()
print(json.dumps({"saves": saves, "restores": restores}))
"""


def test_two_processes_share_one_store_without_damaging_it(
    model: LoadedModel, smollm2_path: Path, tmp_path: Path
) -> None:
    one = saved(KVStateStore(tmp_path / "probe"), model, prompt(model, BASE))
    root = tmp_path / "kv"
    # room for two at first; as both conversations grow, each save evicts the other's state
    cap = int(one.stat().st_size * 2.2)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(smollm2_path), str(root), str(cap), *texts],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for texts in ((BASE, OTHER), (OTHER, BASE))
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["saves"] >= 10 for r in results), results
    assert all(r["restores"] >= 3 for r in results), results
    store = KVStateStore(root, max_bytes=cap)
    entries = store.entries()
    assert entries and store.total_bytes() <= cap
    assert not list(root.glob("*/.*.tmp"))
    # every file left is whole: it loads and holds what its tokens say
    for entry in entries:
        model.session.reset()
        new = list(entry.tokens) + model.session.tokenize(" check")
        restored = store.restore(model, new)
        assert restored is not None and restored.path == entry.path
    assert len(store.entries()) == len(entries)


def test_the_file_format_is_what_the_docstring_says(
    model: LoadedModel, store: KVStateStore
) -> None:
    base = prompt(model, BASE)
    path = saved(store, model, base)
    data = path.read_bytes()
    magic, version, header_len, digest = struct.unpack_from("<8sII32s", data)
    assert (magic, version) == (b"HANLINKV", 1)
    raw = data[48 : 48 + header_len]
    assert hashlib.sha256(raw).digest() == digest
    header = json.loads(raw)
    assert header["n_tokens"] == len(base)
    assert header["identity"]["context"]["n_ctx"] == N_CTX
    assert header["identity"]["model"]["files"][0]["size"] == model.path.stat().st_size
    tokens = struct.unpack_from(f"<{len(base)}i", data, 48 + header_len)
    assert list(tokens) == base
    assert len(data) == 48 + header_len + 4 * len(base) + header["payload_bytes"]
