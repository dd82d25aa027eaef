"""Conversations' KV caches on disk, so a long chat reopened after a restart costs only its
new tokens.

Why: re-reading a 4,000-token conversation on a 2-core laptop takes many seconds before
the first token of the answer; the keys and values llama.cpp computed for it the last
time are tens of megabytes that load in a fraction of that. This module keeps them:
`save(model)` writes what sequence 0 of the model's context holds (llama.cpp's
`llama_state_seq_get_data`) together with the exact tokens it holds, and
`restore(model, prompt)` puts the saved state with the longest prefix in common with a
new prompt back into the context (`llama_state_seq_set_data`), so
`LlamaSession.evaluate` then runs only the tokens after that prefix.

Rules:

- A state is used only with what it was computed for. Its key is the model file's
  identity (path, size, modification time, a hash of the file's first MiB; every shard of
  a split model), the context's settings (n_ctx, n_batch, n_ubatch, K/V types, flash
  attention, offload flags, rope settings, GPU layers, backend) and the llama.cpp
  binding's version. A file for the same model path with another key (the model was
  replaced, the context changed) is deleted when it is met, and never loaded.
- Nothing read from disk is trusted: the header is bounded and validated, the tokens and
  the payload carry SHA-256 digests, a short or long file is rejected, and llama.cpp's
  own refusal to load (it returns 0) clears the sequence. Each of these deletes the
  file; the caller just evaluates the prompt cold. `restore` never raises for a bad file.
- Writes are atomic (a temp file in the same folder, fsync, rename): a crash or a full
  disk leaves the old file or no file, never half of one. The context is copied to
  memory under the model's lock (milliseconds); hashing and writing happen after it is
  released.
- The store is bounded (`max_bytes`, 2 GiB by default): after a save, the least recently
  used states (file modification time; a restore touches its file) are deleted until
  the total fits. A state that a newer save of the same conversation extends is
  deleted at once (it is a prefix of the new one, which serves the same prompts).
- Several processes (the desktop app, `hanlin chat`, a second window) share the folder:
  files only ever appear by rename, eviction and deletion run under a `FileLock`, and a
  deletion first checks that the file is still the one that was judged bad.

Layout: `data_dir()/kv-cache/<hash of the model path>/<hash of key and tokens>.kvstate`;
a file is `HANLINKV`, the format version (u32), the header's length (u32) and SHA-256,
the header (JSON: key, identity, token count and digest, payload size and digest), the
tokens (int32, little-endian), then llama.cpp's sequence state.
The caller holds or may hold `LoadedModel.lock` (an `RLock`; both methods take it).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import struct
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from hanlin.engine.core import paths
from hanlin.engine.core.errors import BusyError
from hanlin.engine.core.locks import FileLock
from hanlin.engine.core.units import MiB

if TYPE_CHECKING:
    from hanlin.engine.runtime.loader import LoadedModel

__all__ = [
    "DEFAULT_MAX_BYTES",
    "KVStateStore",
    "RestoreResult",
    "SaveResult",
    "StateEntry",
    "kv_cache_dir",
    "state_key",
]

log = logging.getLogger(__name__)

#: the store's size when settings do not say (`kv_cache_mb` in settings.toml)
DEFAULT_MAX_BYTES = 2048 * MiB
#: below this many tokens a cold prefill is quick: not worth a file
MIN_SAVE_TOKENS = 128
#: restore only when it spares at least this many tokens of prefill
MIN_RESTORE_GAIN = 64
#: a state is loaded only if at least 1/this of its tokens serve the new prompt
_MIN_USED_FRACTION = 8

MAGIC = b"HANLINKV"
FORMAT_VERSION = 1
SUFFIX = ".kvstate"
#: magic, format version, header length, SHA-256 of the header
_PREAMBLE = struct.Struct("<8sII32s")
_MAX_HEADER = 64 * 1024
_MAX_TOKENS = 1 << 24
_HEAD_HASH_BYTES = 1 * MiB
_CHUNK = 8 * MiB
#: temp files older than this are a crashed writer's and are swept by eviction
_STALE_TEMP_S = 3600.0
_LOCK_WAIT_S = 10.0

#: `llama_context_params` fields that change what a state means (or whether it loads)
_CONTEXT_FIELDS = (
    "n_batch",
    "n_ubatch",
    "n_seq_max",
    "rope_scaling_type",
    "pooling_type",
    "attention_type",
    "flash_attn_type",
    "rope_freq_base",
    "rope_freq_scale",
    "yarn_ext_factor",
    "yarn_attn_factor",
    "yarn_beta_fast",
    "yarn_beta_slow",
    "yarn_orig_ctx",
    "type_k",
    "type_v",
    "embeddings",
    "offload_kqv",
    "op_offload",
    "swa_full",
    "kv_unified",
)


def kv_cache_dir() -> Path:
    """Where the saved states live: `data_dir()/kv-cache`."""
    return paths.data_dir() / "kv-cache"


# ---------------------------------------------------------------------------- the key


_head_hashes: dict[tuple[str, int, int], str] = {}


def _file_identity(path: Path) -> dict[str, Any]:
    st = path.stat()
    cache_key = (str(path), st.st_size, st.st_mtime_ns)
    head = _head_hashes.get(cache_key)
    if head is None:
        with path.open("rb") as handle:
            head = hashlib.sha256(handle.read(_HEAD_HASH_BYTES)).hexdigest()
        _head_hashes[cache_key] = head
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head": head}


def _model_files(path: Path) -> list[Path]:
    from hanlin.engine.store.shards import shard_paths

    try:
        return shard_paths(path)
    except Exception:  # a name that only looks like a shard: the file alone
        return [path]


@dataclass(frozen=True, slots=True)
class StateKey:
    """What a saved state must match to be loaded: `digest` over `identity`."""

    identity: dict[str, Any]
    digest: str
    #: the folder of this model path's states (relative to the store's root)
    folder: str


def state_key(model: LoadedModel, seq_id: int = 0) -> StateKey:
    """The key of the states of `model`'s context as it is loaded now."""
    import llama_cpp

    path = Path(model.path).resolve()
    params = model.llama.context_params
    context = {name: _plain(getattr(params, name, None)) for name in _CONTEXT_FIELDS}
    identity = {
        "format": FORMAT_VERSION,
        "llama_cpp": getattr(llama_cpp, "__version__", "?"),
        "model": {
            "path": str(path),
            "files": [_file_identity(p) for p in _model_files(path)],
            "architecture": model.info.architecture,
        },
        "context": {
            "n_ctx": int(model.n_ctx),
            **context,
            "n_gpu_layers": int(model.n_gpu_layers),
            "backend": model.backend,
            "seq_id": seq_id,
        },
    }
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return StateKey(
        identity=identity,
        digest=hashlib.sha256(blob).hexdigest(),
        folder=hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:16],
    )


def _plain(value: Any) -> Any:
    """A ctypes field as JSON (floats rounded so 1e6 and 1000000.0000001 do not differ)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value, 6)
    return repr(value)


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One saved state as its header describes it (the payload is not read)."""

    path: Path
    key: str
    tokens: tuple[int, ...]
    payload_bytes: int
    payload_sha256: str
    saved_at: float
    #: the file's modification time: when it was last saved or restored (LRU order)
    used_at: float
    size_bytes: int
    #: data offset of the payload in the file
    payload_offset: int
    #: (inode, mtime_ns, size) when read: a deletion checks the file is still this one
    stamp: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class SaveResult:
    path: Path
    tokens: int
    size_bytes: int
    seconds: float
    #: True: an existing state already held these tokens (it was only marked as used)
    reused: bool = False
    #: older states deleted to stay under the size limit, or made redundant by this one
    removed: int = 0


@dataclass(frozen=True, slots=True)
class RestoreResult:
    path: Path
    #: tokens the restored state holds
    stored_tokens: int
    #: of those, how many the prompt shares (what `evaluate` will keep)
    matched_tokens: int
    size_bytes: int
    seconds: float


class _BadState(Exception):
    """Internal: a state file that must not be used (and is deleted)."""

    def __init__(self, reason: str, stamp: tuple[int, int, int] | None = None) -> None:
        super().__init__(reason)
        self.stamp = stamp


# ---------------------------------------------------------------------------- the store


class KVStateStore:
    """Saved KV states of sequence 0 of loaded models, bounded by `max_bytes` in all."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        min_save_tokens: int = MIN_SAVE_TOKENS,
        min_restore_gain: int = MIN_RESTORE_GAIN,
    ) -> None:
        self.root = Path(root) if root is not None else kv_cache_dir()
        self.max_bytes = max(0, int(max_bytes))
        self.min_save_tokens = max(1, min_save_tokens)
        self.min_restore_gain = max(1, min_restore_gain)

    @classmethod
    def from_settings(cls) -> KVStateStore | None:
        """The store as settings.toml sizes it (`kv_cache_mb`; 0 turns it off: None)."""
        from hanlin.engine.core.settings import load_settings

        mb = load_settings().settings.kv_cache_mb
        return cls(max_bytes=mb * MiB) if mb > 0 else None

    # -- saving -------------------------------------------------------------------------

    def save(self, model: LoadedModel, *, seq_id: int = 0) -> SaveResult | None:
        """Write what the model's sequence holds now; None when there is nothing worth it.

        Skipped (None): fewer than `min_save_tokens` tokens, a closed model, a state larger
        than the whole store, or a file system that refuses the write (logged). A state
        that already holds these tokens (or more, starting with them) is only marked as
        recently used.
        """
        started = time.perf_counter()
        with model.lock:
            if model.closed:
                return None
            session = model.session
            tokens = tuple(session.tokens)
            if len(tokens) < self.min_save_tokens:
                return None
            try:
                key = state_key(model, seq_id)
            except OSError as exc:  # the model file went away under the mapping
                log.warning("cannot identify %s to save its KV state: %s", model.path, exc)
                return None
            folder = self.root / key.folder
            covering = self._covering(folder, key.digest, tokens)
            if covering is not None:
                with contextlib.suppress(OSError):
                    os.utime(covering.path)
                return SaveResult(covering.path, len(tokens), covering.size_bytes, 0.0, reused=True)
            payload = _copy_state(model, seq_id)
        if payload is None:
            log.warning("llama.cpp returned no state for %s; not saved", model.path.name)
            return None
        path = folder / (_entry_name(key.digest, tokens) + SUFFIX)
        try:
            header_bytes, token_bytes = _encode_header(key, tokens, payload)
        except ValueError as exc:
            log.warning("not saving the KV state of %s: %s", model.path.name, exc)
            return None
        size = _PREAMBLE.size + len(header_bytes) + len(token_bytes) + len(payload)
        if size > self.max_bytes:
            log.info(
                "a %d-byte KV state is larger than the store (%d); not saved", size, self.max_bytes
            )
            return None
        try:
            _write_atomic(path, (_preamble(header_bytes), header_bytes, token_bytes, payload))
        except OSError as exc:
            log.warning("could not save the KV state to %s: %s", path, exc)
            return None
        removed = self._after_save(path, key.digest, tokens)
        return SaveResult(path, len(tokens), size, time.perf_counter() - started, removed=removed)

    def _covering(self, folder: Path, digest: str, tokens: tuple[int, ...]) -> StateEntry | None:
        for entry in self._entries_in(folder, delete_bad=False):
            if entry.key == digest and entry.tokens[: len(tokens)] == tokens:
                return entry
        return None

    def _after_save(self, keep: Path, digest: str, tokens: tuple[int, ...]) -> int:
        """Drop states the new one makes redundant, then the least recently used over the
        limit. Under the store's lock; if another process holds it long, this one skips
        (the next save evicts)."""
        try:
            with self._lock():
                removed = 0
                for entry in self._entries_in(keep.parent, delete_bad=False):
                    if (
                        entry.path != keep
                        and entry.key == digest
                        and len(entry.tokens) < len(tokens)
                        and tokens[: len(entry.tokens)] == entry.tokens
                    ):
                        removed += self._unlink_locked(entry)
                return removed + self._evict_locked(self.max_bytes, keep=keep)
        except BusyError as exc:
            log.info("KV store busy, eviction skipped: %s", exc)
            return 0

    # -- restoring ----------------------------------------------------------------------

    def restore(
        self, model: LoadedModel, prompt: Sequence[int], *, seq_id: int = 0
    ) -> RestoreResult | None:
        """Load the saved state that spares the most of `prompt`'s prefill into the model's
        sequence; None if none spares `min_restore_gain` tokens more than the cache holds.

        On success `model.session.tokens` is what the state holds; `session.evaluate(prompt)`
        then drops what does not match and evaluates only the rest. Files that are corrupt,
        truncated, for another key, or refused by llama.cpp are deleted and the next best
        is tried; the sequence is left empty or as it was, never half-loaded. A store that
        cannot be read at all (permissions) is logged and ignored.
        """
        try:
            return self._restore(model, tuple(prompt), seq_id)
        except (OSError, BusyError) as exc:
            log.warning("saved KV states not used: %s", exc)
            return None

    def _restore(
        self, model: LoadedModel, prompt: tuple[int, ...], seq_id: int
    ) -> RestoreResult | None:
        started = time.perf_counter()
        with model.lock:
            if model.closed or not prompt:
                return None
            session = model.session
            # the last prompt token always runs again (it makes the logits)
            most = len(prompt) - 1
            have = min(session.common_prefix(session.tokens, prompt), most)
            if most - have < self.min_restore_gain:
                return None
            try:
                key = state_key(model, seq_id)
            except OSError:
                return None
            folder = self.root / key.folder
            whole_only = _state_is_recurrent(model)
            candidates: list[tuple[int, StateEntry]] = []
            for entry in self._entries_in(folder, delete_bad=True):
                if entry.key != key.digest:
                    log.info("deleting %s: saved for another model file or context", entry.path)
                    self._unlink_checked(entry)
                    continue
                usable = min(session.common_prefix(entry.tokens, prompt), most)
                if whole_only and usable < len(entry.tokens):
                    continue  # a recurrent state cannot be cut back to a shorter prefix
                # worth it: it spares enough, and enough of what is read from disk is used
                # (reading a token's state costs a small fraction of evaluating it)
                if usable - have >= self.min_restore_gain and usable * _MIN_USED_FRACTION >= len(
                    entry.tokens
                ):
                    candidates.append((usable, entry))
            candidates.sort(key=lambda c: (-c[0], len(c[1].tokens)))
            for usable, entry in candidates:
                try:
                    self._load(model, entry, seq_id)
                except _BadState as exc:
                    log.warning("deleting %s: %s", entry.path, exc)
                    self._unlink_checked(entry)
                    continue
                with contextlib.suppress(OSError):
                    os.utime(entry.path)
                return RestoreResult(
                    entry.path,
                    len(entry.tokens),
                    usable,
                    entry.size_bytes,
                    time.perf_counter() - started,
                )
        return None

    def _load(self, model: LoadedModel, entry: StateEntry, seq_id: int) -> None:
        """Read, verify and load `entry` into the sequence; `_BadState` if anything is off."""
        import llama_cpp

        session = model.session
        buf = (ctypes.c_uint8 * entry.payload_bytes)()
        view = memoryview(buf).cast("B")
        digest = hashlib.sha256()
        try:
            with entry.path.open("rb") as handle:
                st = os.fstat(handle.fileno())
                if (st.st_ino, st.st_mtime_ns, st.st_size) != entry.stamp:
                    raise _BadState("changed while it was read")
                handle.seek(entry.payload_offset)
                done = 0
                while done < entry.payload_bytes:
                    n = handle.readinto(view[done : min(done + _CHUNK, entry.payload_bytes)])
                    if not n:
                        raise _BadState("truncated")
                    digest.update(view[done : done + n])
                    done += n
                if handle.read(1):
                    raise _BadState("longer than its header says")
        except OSError as exc:
            raise _BadState(f"unreadable ({exc})") from exc
        if digest.hexdigest() != entry.payload_sha256:
            raise _BadState("its checksum does not match (damaged)")
        ctx = model.ctx
        read = llama_cpp.llama_state_seq_set_data(ctx, buf, entry.payload_bytes, seq_id)
        memory = llama_cpp.llama_get_memory(ctx)
        end = llama_cpp.llama_memory_seq_pos_max(memory, seq_id)
        if read != entry.payload_bytes or end != len(entry.tokens) - 1:
            # whatever llama.cpp kept of it is not what the tokens say: start clean
            session.reset()
            raise _BadState(
                f"llama.cpp could not load it (read {read} of {entry.payload_bytes} bytes, "
                f"last position {end}, expected {len(entry.tokens) - 1})"
            )
        session.tokens = list(entry.tokens)

    # -- listing and eviction -----------------------------------------------------------

    def entries(self) -> list[StateEntry]:
        """Every readable state in the store, least recently used first."""
        out: list[StateEntry] = []
        if self.root.is_dir():
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
                out.extend(self._entries_in(folder, delete_bad=False))
        return sorted(out, key=lambda e: e.used_at)

    def total_bytes(self) -> int:
        return sum(size for _path, size, _mtime in self._files())

    def evict(self, max_bytes: int | None = None) -> int:
        """Delete least recently used states until the store holds at most `max_bytes`."""
        with self._lock():
            return self._evict_locked(self.max_bytes if max_bytes is None else max_bytes)

    def clear(self) -> int:
        """Delete every saved state; returns how many."""
        return self.evict(0) if self.root.is_dir() else 0

    def _files(self) -> Iterator[tuple[Path, int, float]]:
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.glob("*" + SUFFIX):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    yield path, st.st_size, st.st_mtime

    def _evict_locked(self, max_bytes: int, *, keep: Path | None = None) -> int:
        self._sweep_temps()
        files = sorted(self._files(), key=lambda f: f[2])
        total = sum(size for _p, size, _m in files)
        removed = 0
        for path, size, _mtime in files:
            if total <= max_bytes:
                break
            if path == keep:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:  # open in another process on Windows: next time
                log.info("could not delete %s: %s", path, exc)
                continue
            total -= size
            removed += 1
        return removed

    def _sweep_temps(self) -> None:
        if not self.root.is_dir():
            return
        now = time.time()
        for tmp in self.root.glob("*/.*.tmp"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > _STALE_TEMP_S:
                    tmp.unlink()

    def _lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(self.root / ".lock", "Tidying the saved KV caches").acquire(
            wait=_LOCK_WAIT_S
        )

    def _unlink_checked(self, entry: StateEntry) -> None:
        """Delete `entry`'s file if it is still the file that was read (another process
        may have replaced it with a good one meanwhile)."""
        try:
            with self._lock():
                self._unlink_locked(entry)
        except BusyError:
            pass

    def _unlink_stamped(self, path: Path, stamp: tuple[int, int, int]) -> None:
        try:
            with self._lock():
                _unlink_if_same(path, stamp)
        except BusyError:
            pass

    @staticmethod
    def _unlink_locked(entry: StateEntry) -> int:
        return _unlink_if_same(entry.path, entry.stamp)

    def _entries_in(self, folder: Path, *, delete_bad: bool) -> list[StateEntry]:
        """The states in one model path's folder whose headers read; files whose header is
        damaged are deleted when `delete_bad` (else skipped)."""
        out: list[StateEntry] = []
        if not folder.is_dir():
            return out
        for path in folder.glob("*" + SUFFIX):
            try:
                with path.open("rb") as handle:
                    out.append(_read_entry(path, handle))
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.info("skipping %s: %s", path, exc)
            except _BadState as exc:
                if delete_bad and exc.stamp is not None:
                    log.warning("deleting %s: %s", path, exc)
                    self._unlink_stamped(path, exc.stamp)
        return out


# ---------------------------------------------------------------------------- the file


def _unlink_if_same(path: Path, stamp: tuple[int, int, int]) -> int:
    """Delete `path` if it is still the file `stamp` (inode, mtime_ns, size) describes."""
    try:
        st = path.stat()
        if (st.st_ino, st.st_mtime_ns, st.st_size) != stamp:
            return 0
        path.unlink()
        return 1
    except OSError:
        return 0


def _state_is_recurrent(model: LoadedModel) -> bool:
    """True for models whose memory cannot drop a tail (Mamba, hybrid): only whole states."""
    import llama_cpp

    handle = model.model_handle
    return bool(
        llama_cpp.llama_model_is_recurrent(handle) or llama_cpp.llama_model_is_hybrid(handle)
    )


def _entry_name(digest: str, tokens: Sequence[int]) -> str:
    h = hashlib.sha256(digest.encode("ascii"))
    h.update(struct.pack(f"<{len(tokens)}i", *tokens))
    return h.hexdigest()[:32]


def _copy_state(model: LoadedModel, seq_id: int) -> Any:
    """The sequence's state as a ctypes byte array, or None if llama.cpp gives none."""
    import llama_cpp

    ctx = model.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, seq_id)
    if size <= 0:
        return None
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, seq_id)
    if written != size:
        return None
    return buf


def _preamble(header_bytes: bytes) -> bytes:
    return _PREAMBLE.pack(
        MAGIC, FORMAT_VERSION, len(header_bytes), hashlib.sha256(header_bytes).digest()
    )


def _encode_header(key: StateKey, tokens: Sequence[int], payload: Any) -> tuple[bytes, bytes]:
    token_bytes = struct.pack(f"<{len(tokens)}i", *tokens)
    header = {
        "key": key.digest,
        "identity": key.identity,
        "n_tokens": len(tokens),
        "tokens_sha256": hashlib.sha256(token_bytes).hexdigest(),
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(memoryview(payload).cast("B")).hexdigest(),
        "saved_at": time.time(),
    }
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    if len(header_bytes) > _MAX_HEADER:
        raise ValueError("KV state header too large")  # a path of 60 KiB: not a real case
    return header_bytes, token_bytes


def _read_entry(path: Path, handle: BinaryIO) -> StateEntry:
    """The header of an open state file, validated; `_BadState` says what is wrong."""
    st = os.fstat(handle.fileno())
    try:
        return _parse_entry(path, handle, st)
    except _BadState as exc:
        raise _BadState(str(exc), (st.st_ino, st.st_mtime_ns, st.st_size)) from None


def _parse_entry(path: Path, handle: BinaryIO, st: os.stat_result) -> StateEntry:
    pre = handle.read(_PREAMBLE.size)
    if len(pre) != _PREAMBLE.size:
        raise _BadState("truncated header")
    magic, version, header_len, header_sha = _PREAMBLE.unpack(pre)
    if magic != MAGIC:
        raise _BadState("not a Hanlin KV state")
    if version != FORMAT_VERSION:
        raise _BadState(f"format {version}, this Hanlin reads {FORMAT_VERSION}")
    if not 0 < header_len <= _MAX_HEADER:
        raise _BadState("header length out of range")
    raw = handle.read(header_len)
    if len(raw) != header_len:
        raise _BadState("truncated header")
    if hashlib.sha256(raw).digest() != header_sha:
        raise _BadState("its header does not match its checksum (damaged)")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _BadState("damaged header") from exc
    if not isinstance(header, dict):
        raise _BadState("damaged header")
    n_tokens = header.get("n_tokens")
    payload_bytes = header.get("payload_bytes")
    key, tokens_sha, payload_sha = (
        header.get("key"),
        header.get("tokens_sha256"),
        header.get("payload_sha256"),
    )
    if not (
        isinstance(n_tokens, int)
        and 0 < n_tokens <= _MAX_TOKENS
        and isinstance(payload_bytes, int)
        and payload_bytes > 0
        and all(isinstance(v, str) and len(v) == 64 for v in (key, tokens_sha, payload_sha))
    ):
        raise _BadState("damaged header")
    token_bytes = handle.read(4 * n_tokens)
    if len(token_bytes) != 4 * n_tokens:
        raise _BadState("truncated tokens")
    if hashlib.sha256(token_bytes).hexdigest() != tokens_sha:
        raise _BadState("its tokens do not match their checksum (damaged)")
    offset = _PREAMBLE.size + header_len + 4 * n_tokens
    if st.st_size != offset + payload_bytes:
        raise _BadState(
            f"{st.st_size} bytes where its header says {offset + payload_bytes} (truncated)"
        )
    saved_at = header.get("saved_at")
    return StateEntry(
        path=path,
        key=key,
        tokens=struct.unpack(f"<{n_tokens}i", token_bytes),
        payload_bytes=payload_bytes,
        payload_sha256=payload_sha,
        saved_at=float(saved_at) if isinstance(saved_at, int | float) else 0.0,
        used_at=st.st_mtime,
        size_bytes=st.st_size,
        payload_offset=offset,
        stamp=(st.st_ino, st.st_mtime_ns, st.st_size),
    )


def _write_atomic(path: Path, parts: Sequence[Any]) -> None:
    """Write `parts` (bytes or ctypes buffers) to `path` through a temp file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for part in parts:
                handle.write(memoryview(part).cast("B") if not isinstance(part, bytes) else part)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
