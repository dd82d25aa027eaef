"""Installed models: download (resumable, verified), import, list, resolve and remove.

Why: this is where local-LLM apps most often fail their users — stalls at 99%,
no resume after a restart, a broken file listed as installed. The rules here:

- Files live in `paths.models_dir()` as `OWNER/REPO/FILE.gguf` (a folder the
  user can open), never in a hidden cache.
- A download goes to `FILE.gguf.part` with a `FILE.gguf.part.json` note beside
  it (what is being fetched, and its expected size and sha256). Both survive
  Ctrl-C, a kill or a lost network; the next pull continues with HTTP Range
  (engine/hub_download.py does the transfer). If the Hub's file changed since,
  the stale partial is discarded.
- Only a file whose size and sha256 match (the catalog's pin, else the Hub's
  own LFS sha256) and whose GGUF header reads cleanly is renamed into place and
  recorded in the manifest. A mismatch deletes the bad file and says so.
- The manifest (`manifest.json`) is written atomically under a lock; a pull
  holds a per-file lock so two processes never write the same `.part`.
- Imports are registered in place (no copy); `remove` deletes only files
  inside the models folder, and merely unregisters imports from elsewhere.
- A split model (`NAME-00001-of-0000N.gguf`, …; engine/store/shards.py) is one model:
  every shard is downloaded, resumed and verified like a single file into one folder,
  one note (the first shard's `.part.json`) tracks the set, progress counts bytes over
  the whole set, and only a complete, consistent set is recorded (by its first shard,
  with the total size). A half-pulled set is a partial download; removal takes every shard.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from hanlin.engine.core import paths
from hanlin.engine.core.atomic import write_text_atomic
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken, Progress, ProgressCallback
from hanlin.engine.core.errors import (
    Cancelled,
    DiskFullError,
    HanlinError,
    ModelFileError,
    ModelNotInstalledError,
    NotFoundOnHubError,
    UnknownModelError,
    VerificationError,
)
from hanlin.engine.core.locks import FileLock
from hanlin.engine.core.quarantine import move_aside
from hanlin.engine.core.units import MiB, format_bytes
from hanlin.engine.models.catalog import (
    MODEL_ID_RE,
    Catalog,
    CatalogEntry,
    did_you_mean,
    load_catalog,
)
from hanlin.engine.models.families import guess_family
from hanlin.engine.models.gguf_info import GGUFInfo, read_gguf_info
from hanlin.engine.store.hub_download import (
    DownloadOptions,
    DownloadResult,
    HubRef,
    RemoteFile,
    download_to_part,
    is_offline,
    list_repo_files,
    offline_error,
    parse_hub_ref,
    resolve_remote,
)
from hanlin.engine.store.shards import (
    check_shard_set,
    display_name,
    find_shard_set,
    first_shard,
    first_shard_path,
    is_sharded,
    parse_shard_name,
    read_shard_header,
    shard_files,
    split_count_of,
)

MANIFEST_NAME = "manifest.json"
PART_SUFFIX = ".part"
NOTE_SUFFIX = ".part.json"
#: keep this much free beyond the download itself (the manifest, the OS)
FREE_SPACE_MARGIN = 64 * MiB

Source = Literal["catalog", "hub", "import"]


@dataclass
class ShardFile:
    """One file of a split model, as the manifest records it."""

    path: Path
    size: int
    sha256: str | None = None


@dataclass
class InstalledModel:
    id: str
    path: Path
    size_bytes: int
    family: str | None
    source: Source
    repo: str | None = None
    file: str | None = None
    commit: str | None = None
    sha256: str | None = None
    catalog_entry: CatalogEntry | None = None
    installed_at: float | None = None
    #: a split model's files, first shard (`path`) first; empty for a single file
    shards: list[ShardFile] = field(default_factory=list)
    #: where a registered file was found: "hf-cache", "ollama", "lmstudio", "folder"
    #: (engine/store/disk_scan.py); None for a download or a file the user picked
    origin: str | None = None

    @property
    def files(self) -> list[Path]:
        """Every file of the model: its shards in order, or its one file."""
        return [s.path for s in self.shards] if self.shards else [self.path]

    def to_json(self, models_dir: Path) -> dict[str, Any]:
        def stored_path(path: Path) -> str:
            try:
                return str(path.relative_to(models_dir))
            except ValueError:
                return str(path)

        stored = stored_path(self.path)
        extra: dict[str, Any] = {}
        if self.shards:
            extra["shards"] = [
                {"path": stored_path(s.path), "size": s.size, "sha256": s.sha256}
                for s in self.shards
            ]
        return {
            "id": self.id,
            "path": stored,
            "repo": self.repo,
            "file": self.file,
            "commit": self.commit,
            "sha256": self.sha256,
            "size": self.size_bytes,
            "family": self.family,
            "source": self.source,
            "installed_at": self.installed_at,
            "origin": self.origin,
            **extra,
        }


@dataclass
class PartialDownload:
    id: str
    part_path: Path
    bytes_done: int
    total: int | None
    repo: str | None = None
    file: str | None = None
    #: every file on disk that belongs to this download (`.part` files, finished shards)
    files: list[Path] = field(default_factory=list)
    #: how many files the model is split into (1: a single file)
    shards: int = 1

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.bytes_done / self.total)


@dataclass(frozen=True)
class _Target:
    """What a pull resolves to before touching the network."""

    id: str
    repo: str
    file: str
    revision: str | None
    entry: CatalogEntry | None
    source: Source
    #: every file to download: the shard set in order, or `(file,)`
    files: tuple[str, ...] = ()

    @property
    def all_files(self) -> tuple[str, ...]:
        return self.files or (self.file,)


def slug_id(filename: str) -> str:
    """A model id from a file name: `Qwen3-4B-Q4_K_M.gguf` -> `qwen3-4b-q4_k_m`.

    A shard set is named by its stem: `X-Q4_K_M-00001-of-00002.gguf` -> `x-q4_k_m`.
    """
    stem = display_name(Path(filename).name)
    if stem.lower().endswith(".gguf"):
        stem = stem[:-5]
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return (slug or "model")[:80]


class ModelStore:
    """The models folder: what is installed, what is partly downloaded, and how to change it."""

    #: free space to leave beyond a download's own size (the manifest, the OS)
    free_space_margin: int = FREE_SPACE_MARGIN

    def __init__(
        self,
        models_dir: Path | None = None,
        catalog: Catalog | None = None,
        *,
        options: DownloadOptions | None = None,
        lock_wait: float = 2.0,
    ) -> None:
        self.models_dir = Path(models_dir) if models_dir else paths.models_dir()
        self._catalog = catalog
        self.options = options or DownloadOptions()
        self.lock_wait = lock_wait
        #: details of the last pull's transfer (bytes re-sent, restarts), for tools and tests
        self.last_download: DownloadResult | None = None

    # ------------------------------------------------------------------ basics
    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = load_catalog()
        return self._catalog

    @property
    def manifest_path(self) -> Path:
        return self.models_dir / MANIFEST_NAME

    def _locks_dir(self) -> Path:
        return self.models_dir / ".locks"

    def _manifest_lock(self) -> FileLock:
        return FileLock(self._locks_dir() / "manifest.lock", "An update of the model list")

    def _read_manifest(self) -> list[dict[str, Any]]:
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HanlinError(
                f"Cannot read {self.manifest_path}: {exc}", "check permissions"
            ) from exc
        try:
            data = json.loads(text)
            models = data["models"]
            if not isinstance(models, list):
                raise TypeError("models is not a list")
            return [m for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]
        except (ValueError, KeyError, TypeError) as exc:
            # Never lose the user's files over a broken list: keep it aside and start afresh.
            with contextlib.suppress(OSError):  # another process may have moved it already
                move_aside(self.manifest_path, f"is not a valid model list ({exc})")
            return []

    def _write_manifest(self, models: list[dict[str, Any]]) -> None:
        payload = {"version": 1, "models": sorted(models, key=lambda m: m["id"])}
        write_text_atomic(self.manifest_path, json.dumps(payload, indent=2) + "\n")

    def _update_manifest(
        self, *, add: InstalledModel | None = None, remove_id: str | None = None
    ) -> None:
        lock = self._manifest_lock().acquire(wait=30.0)
        try:
            models = self._read_manifest()
            drop = {remove_id} if remove_id else set()
            if add is not None:
                drop.add(add.id)
            models = [m for m in models if m["id"] not in drop]
            if add is not None:
                models.append(add.to_json(self.models_dir))
            self._write_manifest(models)
        finally:
            lock.release()

    def _from_json(self, raw: dict[str, Any]) -> InstalledModel:
        path = Path(raw.get("path") or "")
        if not path.is_absolute():
            path = self.models_dir / path
        entry = self.catalog.find(raw["id"]) if raw.get("source") == "catalog" else None
        shards: list[ShardFile] = []
        for item in raw.get("shards") or []:
            if not isinstance(item, dict) or not item.get("path"):
                continue
            shard_path = Path(item["path"])
            if not shard_path.is_absolute():
                shard_path = self.models_dir / shard_path
            shards.append(ShardFile(shard_path, int(item.get("size") or 0), item.get("sha256")))
        return InstalledModel(
            id=raw["id"],
            path=path,
            size_bytes=int(raw.get("size") or 0),
            family=raw.get("family"),
            source=raw.get("source") or "import",
            repo=raw.get("repo"),
            file=raw.get("file"),
            commit=raw.get("commit"),
            sha256=raw.get("sha256"),
            catalog_entry=entry,
            installed_at=raw.get("installed_at"),
            shards=shards,
            origin=raw.get("origin"),
        )

    # ------------------------------------------------------------------ queries
    def installed(self) -> list[InstalledModel]:
        """Recorded models whose file is still on disk."""
        return [m for m in (self._from_json(r) for r in self._read_manifest()) if m.path.is_file()]

    def get(self, model_id: str) -> InstalledModel | None:
        for model in self.installed():
            if model.id == model_id:
                return model
        return None

    def partials(self) -> list[PartialDownload]:
        """Downloads that stopped part-way (their `.part` file and note are on disk)."""
        out: list[PartialDownload] = []
        if not self.models_dir.is_dir():
            return out
        for note_path in sorted(self.models_dir.rglob(f"*{NOTE_SUFFIX}")):
            note = _read_note(note_path)
            if note is not None and isinstance(note.get("shards"), list):
                partial_set = _set_partial(note_path, note)
                if partial_set is not None:
                    out.append(partial_set)
                continue
            part = note_path.with_name(note_path.name[: -len(".json")])
            if note is None or not part.is_file():
                continue
            out.append(
                PartialDownload(
                    id=note.get("id", slug_id(part.name[: -len(PART_SUFFIX)])),
                    part_path=part,
                    bytes_done=part.stat().st_size,
                    total=note.get("size"),
                    repo=note.get("repo"),
                    file=note.get("file"),
                    files=[part],
                )
            )
        return out

    def is_complete(self, model: InstalledModel) -> bool:
        """Whether every file of an installed model is on disk (a split model: and whole)."""
        if not model.shards:
            return model.path.is_file()
        for shard in model.shards:
            try:
                if shard.size and shard.path.stat().st_size != shard.size:
                    return False
            except OSError:
                return False
        try:
            check_shard_set(model.path)
        except ModelFileError:
            return False
        return True

    def find_partial(self, ref: str) -> PartialDownload | None:
        """The partial download a pull of `ref` (an id or a Hub ref) would continue."""
        found = self.partial(ref)
        if found is not None:
            return found
        try:
            hub = parse_hub_ref(ref)
        except UnknownModelError:
            return None
        if hub is None:
            return None
        return _best_match(hub, self.partials())

    def partial(self, model_id: str) -> PartialDownload | None:
        return next((p for p in self.partials() if p.id == model_id), None)

    def resolve(self, id_or_path: str) -> InstalledModel:
        """An installed model by id or Hub ref, or a GGUF path (not recorded).

        A catalog id or Hub ref that is not on disk raises ModelNotInstalledError saying how
        to pull it; a malformed Hub ref or an unknown id raises UnknownModelError.
        """
        found = self.get(id_or_path)
        if found is not None:
            return found
        ref = parse_hub_ref(id_or_path)  # a malformed Hub ref raises here, naming it
        if ref is not None:
            model = _best_match(ref, self.installed())
            if model is not None:
                return model
            # Not a path even though it ends in .gguf: say how to get it.
            raise _not_installed(id_or_path, _best_match(ref, self.partials()))
        candidate = Path(id_or_path).expanduser()
        if candidate.suffix.lower() == ".gguf" or os.sep in id_or_path or candidate.is_file():
            if candidate.is_file():
                first = first_shard_path(candidate)  # a later shard names its set
                if first != candidate and first.is_file():
                    candidate = first
                info = read_gguf_info(candidate)
                files = _set_files(candidate, info)
                return InstalledModel(
                    id=slug_id(candidate.name),
                    path=candidate.absolute() if len(files) > 1 else candidate.resolve(),
                    size_bytes=sum(f.stat().st_size for f in files if f.is_file()),
                    family=guess_family(info.architecture, info.name, candidate),
                    source="import",
                )
            if candidate.suffix.lower() == ".gguf":
                raise ModelFileError(f"{candidate} does not exist", "check the path")
        entry = self.catalog.find(id_or_path)
        if entry is not None:
            raise _not_installed(entry.id, self.partial(entry.id))
        partial = self.partial(id_or_path)  # a Hub pull that stopped part-way, by its id
        if partial is not None:
            raise _not_installed(id_or_path, partial)
        ids = [e.id for e in self.catalog] + [m.id for m in self.installed()]
        hint = did_you_mean(
            id_or_path, ids, "run `hanlin models list` to see installed and available models"
        )
        raise UnknownModelError(f"Unknown model `{id_or_path}`", hint)

    # ------------------------------------------------------------------ pull
    def _target(self, ref: str) -> _Target:
        hub = parse_hub_ref(ref)
        if hub is None:
            entry = self.catalog.find(ref)
            known = None if entry else self._known_hub_model(ref)
            if known is not None:
                return known
            if entry is None:
                if Path(ref).expanduser().is_file():
                    raise UnknownModelError(
                        f"`{ref}` is a file, not a model to download",
                        f"register it with `hanlin models import {ref}`",
                    )
                hint = did_you_mean(
                    ref,
                    [e.id for e in self.catalog],
                    "run `hanlin models list` for catalog ids, or pull hf.co/OWNER/REPO/FILE.gguf",
                )
                raise UnknownModelError(f"Unknown model `{ref}`", hint)
            file = first_shard(entry.file)  # a split entry may name any of its shards
            return _Target(
                entry.id,
                entry.repo,
                file,
                entry.revision,
                entry,
                "catalog",
                tuple(shard_files(file)),
            )
        if not hub.file.lower().endswith(".gguf"):
            raise UnknownModelError(
                f"`{hub.file}` is not a GGUF file",
                "Hanlin runs GGUF models: pick a .gguf file from the repository",
            )
        return self._hub_target(hub)

    def _known_hub_model(self, model_id: str) -> _Target | None:
        """An installed or partly pulled Hub model by its id (to resume or repair it)."""
        known: Any = self.get(model_id) or self.partial(model_id)
        if known is None or not known.repo or not known.file:
            return None
        if getattr(known, "source", "hub") not in ("hub", "catalog"):
            return None  # an import: nothing to download
        target = self._hub_target(HubRef(known.repo, known.file, None))
        return replace(target, id=model_id)

    def _hub_target(self, hub: HubRef) -> _Target:
        """What a Hub ref pulls: a catalog entry's file, or the file (any shard: its set)."""
        file = first_shard(hub.file)
        files = tuple(shard_files(file))
        for entry in self.catalog:
            if entry.repo.lower() == hub.repo.lower() and first_shard(entry.file) == file:
                return _Target(
                    entry.id,
                    entry.repo,
                    file,
                    hub.revision or entry.revision,
                    entry,
                    "catalog",
                    files,
                )
        model_id = slug_id(file)
        taken = self.catalog.find(model_id) is not None or any(
            m.id == model_id and (m.repo, m.file) != (hub.repo, file) for m in self.installed()
        )
        if taken:
            model_id = slug_id(f"{hub.repo.split('/')[0]}-{display_name(file)}")
        return _Target(model_id, hub.repo, file, hub.revision, None, "hub", files)

    def _shard_set_for_stem(self, target: _Target, cancel: CancelToken) -> _Target | None:
        """`FOLDER/NAME.gguf` is not on the Hub: the set `NAME-00001-of-0000N.gguf`, … if any.

        Users name a split model the way its model card does, without a shard suffix; when
        the repository holds only the shards, that name means the set.
        """
        if is_sharded(target.file) or not target.file.endswith(".gguf"):
            return None
        try:
            files = list_repo_files(
                target.repo, target.revision, options=self.options, cancel=cancel
            )
        except Cancelled:
            raise
        except HanlinError:
            return None  # the file's own "not found" says more
        first = find_shard_set(target.file, files)
        if first is None:
            return None
        if target.entry is not None:
            return _Target(
                target.id,
                target.repo,
                first,
                target.revision,
                target.entry,
                target.source,
                tuple(shard_files(first)),
            )
        return self._hub_target(HubRef(target.repo, first, target.revision))

    def _final_path(self, repo: str, file: str) -> Path:
        owner, name = repo.split("/", 1)
        path = self.models_dir / owner / name / file
        if self.models_dir.resolve() not in path.resolve().parents:
            raise UnknownModelError(
                f"Refusing the file name `{file}`", "it points outside the models folder"
            )
        return path

    def _pull_lock(self, target: _Target) -> FileLock:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{target.repo}--{target.file}")
        return FileLock(
            self._locks_dir() / f"{name}.lock", f"A download of `{target.id}`", {"id": target.id}
        )

    def pull(
        self,
        ref: str,
        *,
        cancel: CancelToken | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> InstalledModel:
        """Download a catalog id or `hf.co/OWNER/REPO/FILE.gguf`; resumes any partial download.

        Progress: stage "download" (done/total bytes, rate, eta), then stage "verify".
        A split model (a ref naming any shard, or its stem when the repository holds only
        shards) pulls every shard, with progress over the whole set.
        """
        cancel = cancel or NEVER_CANCELLED
        target = self._target(ref)
        try:
            return self._pull_target(target, cancel, on_progress)
        except NotFoundOnHubError:
            retarget = self._shard_set_for_stem(target, cancel)
            if retarget is None:
                raise
        return self._pull_target(retarget, cancel, on_progress)

    def _installed_as(self, target: _Target) -> InstalledModel | None:
        """The installed model `target` names, if all of it is on disk."""
        existing = self.get(target.id)
        if existing is None or (existing.repo, existing.file) != (target.repo, target.file):
            return None
        return existing if self.is_complete(existing) else None  # incomplete: repair it

    def _pull_target(
        self, target: _Target, cancel: CancelToken, on_progress: ProgressCallback | None
    ) -> InstalledModel:
        existing = self._installed_as(target)
        if existing is not None:
            return existing
        lock = self._pull_lock(target).acquire(self.lock_wait, cancel)
        try:
            existing = self._installed_as(target)  # another process may have finished it
            if existing is not None:
                return existing
            if len(target.all_files) > 1:
                return self._pull_set_locked(target, cancel, on_progress)
            return self._pull_locked(target, cancel, on_progress)
        finally:
            lock.release()

    def _pull_locked(
        self, target: _Target, cancel: CancelToken, on_progress: ProgressCallback | None
    ) -> InstalledModel:
        final = self._final_path(target.repo, target.file)
        part = final.with_name(final.name + PART_SUFFIX)
        note_path = final.with_name(final.name + NOTE_SUFFIX)
        if is_offline():
            raise offline_error()
        remote = resolve_remote(
            target.repo, target.file, target.revision, options=self.options, cancel=cancel
        )
        entry = target.entry
        want_size = entry.size_bytes if entry and entry.size_bytes else remote.size
        want_sha = entry.sha256 if entry and entry.sha256 else remote.sha256
        if entry and entry.sha256 and remote.sha256 and entry.sha256 != remote.sha256:
            raise VerificationError(
                f"The Hub's `{target.file}` (sha256 {remote.sha256[:12]}…) is not the file the"
                f" catalog pins for `{target.id}` ({entry.sha256[:12]}…)",
                "the repository changed: update the catalog entry or pin its revision",
            )
        note = {
            "id": target.id,
            "repo": target.repo,
            "file": target.file,
            "revision": remote.revision,
            "commit": remote.commit,
            "size": want_size,
            "sha256": want_sha,
            "etag": remote.etag,
            "source": target.source,
            "family": entry.family if entry else None,
            "started": time.time(),
        }
        old = _read_note(note_path)
        if part.exists() and (
            old is None
            or any(old.get(k) != note[k] for k in ("size", "sha256", "etag") if note[k] is not None)
        ):
            part.unlink()  # the partial belongs to another version of the file
        elif old is not None:
            note["started"] = old.get("started", note["started"])
        if not part.exists() and final.is_file() and final.stat().st_size == want_size:
            # The file is already in place but not recorded (e.g. the list was lost):
            # verify it like a finished download instead of fetching it again.
            os.replace(final, part)
        done = part.stat().st_size if part.exists() else 0
        self._check_free_space(final.parent, (want_size or 0) - done, target.id)
        write_text_atomic(note_path, json.dumps(note, indent=2))

        def refresh() -> RemoteFile:
            return resolve_remote(
                target.repo, target.file, target.revision, options=self.options, cancel=cancel
            )

        result = download_to_part(
            remote,
            part,
            cancel=cancel,
            on_progress=on_progress,
            options=self.options,
            refresh=refresh,
        )
        self.last_download = result
        if on_progress:
            on_progress(Progress("verify", 0.0, 1.0, f"checking {target.file}"))
        problem = None
        if want_size is not None and result.size != want_size:
            problem = f"its size is {result.size} bytes, expected {want_size}"
        elif want_sha and result.sha256 != want_sha:
            problem = f"its sha256 is {result.sha256[:16]}…, expected {want_sha[:16]}…"
        info: GGUFInfo | None = None
        if problem is None:
            try:
                info = read_gguf_info(part)
            except ModelFileError as exc:
                problem = f"it is not a valid GGUF file ({exc.message})"
        if problem is not None or info is None:
            part.unlink(missing_ok=True)
            note_path.unlink(missing_ok=True)
            raise VerificationError(
                f"The download of `{target.id}` failed verification: {problem}."
                " The bad file was deleted",
                f"run `hanlin models pull {target.id}` again to download it afresh",
            )
        os.replace(part, final)
        note_path.unlink(missing_ok=True)
        family = entry.family if entry else guess_family(info.architecture, info.name, final)
        model = InstalledModel(
            id=target.id,
            path=final,
            size_bytes=result.size,
            family=family,
            source=target.source,
            repo=target.repo,
            file=target.file,
            commit=remote.commit,
            sha256=result.sha256,
            catalog_entry=entry,
            installed_at=time.time(),
        )
        self._update_manifest(add=model)
        if on_progress:
            on_progress(Progress("verify", 1.0, 1.0, f"installed {target.id}"))
        return model

    # ------------------------------------------------------------------ pull a shard set
    def _pull_set_locked(
        self, target: _Target, cancel: CancelToken, on_progress: ProgressCallback | None
    ) -> InstalledModel:
        """Download every shard of a split model; record it only once the whole set checks out.

        Each shard is a `.part` resumed with Range and verified (size, sha256, its header's
        place in the set) before it gets its final name; the set's note (the first shard's
        `.part.json`) remembers which shards are done, so a later pull continues with the
        first unfinished one. Progress counts bytes over the whole set.
        """
        if is_offline():
            raise offline_error()
        files = list(target.all_files)
        count = len(files)
        finals = [self._final_path(target.repo, f) for f in files]
        note_path = finals[0].with_name(finals[0].name + NOTE_SUFFIX)
        first = resolve_remote(
            target.repo, files[0], target.revision, options=self.options, cancel=cancel
        )
        # every shard from the commit the first came from, even if the repository changes now
        revision = first.commit or first.revision
        remotes = [first] + [
            resolve_remote(target.repo, f, revision, options=self.options, cancel=cancel)
            for f in files[1:]
        ]
        entry = target.entry
        sizes = [r.size for r in remotes]
        total = sum(s for s in sizes if s is not None) if None not in sizes else None
        if entry and entry.size_bytes and total is not None and entry.size_bytes != total:
            raise VerificationError(
                f"The Hub's {count} shards of `{target.id}` hold {total} bytes, not the"
                f" {entry.size_bytes} the catalog pins",
                "the repository changed: update the catalog entry or pin its revision",
            )
        pins = [r.sha256 for r in remotes]
        if entry and entry.sha256:  # on a split entry, the catalog's sha256 pins the first shard
            if first.sha256 and first.sha256 != entry.sha256:
                raise VerificationError(
                    f"The Hub's `{files[0]}` (sha256 {first.sha256[:12]}…) is not the file the"
                    f" catalog pins for `{target.id}` ({entry.sha256[:12]}…)",
                    "the repository changed: update the catalog entry or pin its revision",
                )
            pins[0] = entry.sha256
        old = _read_note(note_path) or {}
        old_shards = {s.get("file"): s for s in old.get("shards") or [] if isinstance(s, dict)}
        shards: list[dict[str, Any]] = []
        present = 0
        for file, final, remote, pin in zip(files, finals, remotes, pins, strict=True):
            part = final.with_name(final.name + PART_SUFFIX)
            state = {"file": file, "size": remote.size, "sha256": pin, "etag": remote.etag}
            prev = old_shards.get(file)
            same = prev is not None and all(
                prev.get(k) == state[k] for k in ("size", "sha256", "etag") if state[k] is not None
            )
            if not same:
                part.unlink(missing_ok=True)  # another version of this shard, or not ours
                if prev is not None and prev.get("done"):
                    final.unlink(missing_ok=True)
            done = bool(
                same
                and prev
                and prev.get("done")
                and final.is_file()
                and (remote.size is None or final.stat().st_size == remote.size)
            )
            if done and prev:
                state["verified_sha256"] = prev.get("verified_sha256")
            elif not part.exists() and final.is_file():
                # On disk but not known good (a repaired install, a lost note): verify it
                # like a finished download instead of fetching it again.
                os.replace(final, part)
            state["done"] = done
            shards.append(state)
            present += (
                final.stat().st_size if done else (part.stat().st_size if part.exists() else 0)
            )
        self._check_free_space(finals[0].parent, (total or 0) - present, target.id)
        note = {
            "id": target.id,
            "repo": target.repo,
            "file": files[0],
            "revision": first.revision,
            "commit": first.commit,
            "size": total,
            "sha256": None,
            "etag": None,
            "source": target.source,
            "family": entry.family if entry else None,
            "started": old.get("started", time.time()),
            "shards": shards,
        }

        def save_note() -> None:
            write_text_atomic(note_path, json.dumps(note, indent=2))

        save_note()
        received = restarts = retries = 0
        base = 0
        for index, (state, final, remote) in enumerate(zip(shards, finals, remotes, strict=True)):
            cancel.raise_if_cancelled()
            if not state["done"]:
                result = self._fetch_shard(
                    target, index, count, remote, revision, final, state, base, total,
                    cancel, on_progress,
                )  # fmt: skip
                received += result.bytes_received
                restarts += result.restarts
                retries += result.retries
                state["done"] = True
                state["verified_sha256"] = result.sha256
                save_note()
            base += final.stat().st_size
        if on_progress:
            on_progress(Progress("verify", 0.0, 1.0, f"checking the {count} shards of {target.id}"))
        try:
            info = read_gguf_info(finals[0])
            check_shard_set(finals[0], info, model_id=target.id)
        except ModelFileError as exc:
            for path in finals:
                path.unlink(missing_ok=True)
            note_path.unlink(missing_ok=True)
            raise VerificationError(
                f"The shards of `{target.id}` do not form one model: {exc.message}."
                " The files were deleted",
                "the repository's shard set is inconsistent: pin another revision or pick"
                " another quantization",
            ) from exc
        recorded = [
            ShardFile(path, path.stat().st_size, state.get("verified_sha256") or state["sha256"])
            for path, state in zip(finals, shards, strict=True)
        ]
        size = sum(s.size for s in recorded)
        self.last_download = DownloadResult(
            sha256=recorded[0].sha256 or "",
            size=size,
            bytes_received=received,
            resumed_from=present,
            restarts=restarts,
            retries=retries,
        )
        family = entry.family if entry else guess_family(info.architecture, info.name, finals[0])
        model = InstalledModel(
            id=target.id,
            path=finals[0],
            size_bytes=size,
            family=family,
            source=target.source,
            repo=target.repo,
            file=files[0],
            commit=first.commit,
            sha256=recorded[0].sha256,
            catalog_entry=entry,
            installed_at=time.time(),
            shards=recorded,
        )
        self._update_manifest(add=model)
        note_path.unlink(missing_ok=True)
        if on_progress:
            on_progress(Progress("verify", 1.0, 1.0, f"installed {target.id}"))
        return model

    def _fetch_shard(
        self,
        target: _Target,
        index: int,
        count: int,
        remote: RemoteFile,
        revision: str,
        final: Path,
        state: dict[str, Any],
        base: int,
        total: int | None,
        cancel: CancelToken,
        on_progress: ProgressCallback | None,
    ) -> DownloadResult:
        """Download and verify shard `index` (0-based) into place; VerificationError names it."""
        part = final.with_name(final.name + PART_SUFFIX)
        label = f"shard {index + 1} of {count}"
        detail = f"{display_name(target.file)} ({label})"

        def report(p: Progress) -> None:
            if on_progress is None or p.stage != "download":
                return
            done = base + p.done
            eta = (total - done) / p.rate if total is not None and p.rate else None
            on_progress(
                Progress("download", done, float(total) if total else None, detail, p.rate, eta)
            )

        def refresh() -> RemoteFile:
            return resolve_remote(
                target.repo, remote.file, revision, options=self.options, cancel=cancel
            )

        for attempt in (1, 2):
            result = download_to_part(
                remote,
                part,
                cancel=cancel,
                on_progress=report,
                options=self.options,
                refresh=refresh,
            )
            problem = _shard_problem(part, index, count, result, state["size"], state["sha256"])
            if problem is None:
                os.replace(part, final)
                return result
            part.unlink(missing_ok=True)
            if attempt == 1 and result.resumed_from > 0:
                continue  # the bad bytes were there before this pull: fetch it afresh, once
            raise VerificationError(
                f"Shard {index + 1} of {count} of `{target.id}` ({remote.file}) failed"
                f" verification: {problem}. The bad shard was deleted",
                f"run `hanlin models pull {target.id}` again: it downloads that shard afresh"
                " and keeps the others",
            )
        raise AssertionError("unreachable")

    def _check_free_space(self, folder: Path, need: int, model_id: str) -> None:
        if need <= 0:
            return
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        if free < need + self.free_space_margin:
            raise DiskFullError(
                f"Not enough disk space for `{model_id}`: it needs {format_bytes(need)},"
                f" {format_bytes(free)} are free on {folder}",
                "free some space (`hanlin models rm ID` removes a model) and pull again",
            )

    # ------------------------------------------------------------------ import / remove
    def import_file(
        self,
        path: Path | str,
        *,
        model_id: str | None = None,
        family: str | None = None,
        origin: str | None = None,
        repo: str | None = None,
        file: str | None = None,
    ) -> InstalledModel:
        """Register a GGUF already on disk, in place (no copy).

        `origin` records where a scan found it (engine/store/disk_scan.py), `repo`/`file` its
        Hub name when the layout tells it (a pull of that name then finds this file instead
        of downloading it again). Registering the same file again keeps what was recorded and
        changes the family: how a user corrects a guessed one.

        Any shard of a split model registers the whole set, by its first shard, once every
        shard is present and whole (ModelFileError names the one that is not).
        """
        path = Path(path).expanduser()
        first = first_shard_path(path)
        if first != path:
            if not first.is_file():
                name = parse_shard_name(path.name)
                raise ModelFileError(
                    f"{path} is shard {name.index if name else '?'} of a split model, and its"
                    f" first shard is missing: {first} does not exist",
                    "a split model is registered by its first shard: put it beside the others",
                )
            path = first
        info = read_gguf_info(path)  # ModelFileError names the file and the reason
        shard_set = _set_files(path, info)  # ModelFileError names a missing or broken shard
        # A set keeps the names llama.cpp follows (an HF-cache symlink's target is a hash).
        keep_name = len(shard_set) > 1 or origin == "hf-cache"  # a scanned cache file, too
        path = path.absolute() if keep_name else path.resolve()
        shards = (
            [ShardFile(p.absolute(), p.stat().st_size) for p in shard_set]
            if len(shard_set) > 1
            else []
        )
        model_id = model_id or slug_id(path.name)
        if not MODEL_ID_RE.match(model_id):
            raise HanlinError(
                f"`{model_id}` cannot be a model id",
                "use lower-case letters, digits, '.', '_' or '-' (at most 80)",
            )
        if family is not None:
            from hanlin.engine.models.catalog import known_families

            known = known_families()
            if family not in known:
                raise HanlinError(
                    f"Unknown family `{family}`", f"choose one of: {', '.join(sorted(known))}"
                )
        existing = self.get(model_id)
        if existing is not None and existing.path != path:
            with contextlib.suppress(OSError):
                if os.path.samefile(existing.path, path):
                    path = existing.path  # the same file by another name (an HF-cache link)
        if existing is not None and existing.path != path:
            raise HanlinError(
                f"A model called `{model_id}` is already installed ({existing.path})",
                f"choose another id with --id, or remove it first: `hanlin models rm {model_id}`",
            )
        kept = existing if existing is not None and existing.path == path else None
        model = InstalledModel(
            id=model_id,
            path=path,
            size_bytes=sum(s.size for s in shards) if shards else path.stat().st_size,
            family=family
            or (kept.family if kept else None)
            or guess_family(info.architecture, info.name, path),
            source=kept.source if kept else "import",
            repo=repo or (kept.repo if kept else None),
            file=file or (kept.file if kept else None),
            commit=kept.commit if kept else None,
            sha256=kept.sha256 if kept else None,
            catalog_entry=kept.catalog_entry if kept else None,
            installed_at=(kept.installed_at if kept else None) or time.time(),
            shards=shards,
            origin=origin or (kept.origin if kept else None),
        )
        self._update_manifest(add=model)
        return model

    def remove(self, model_id: str) -> None:
        """Delete an installed model's file (inside the models folder) and any partial download."""
        recorded = next(
            (self._from_json(r) for r in self._read_manifest() if r["id"] == model_id), None
        )
        partial = self.partial(model_id)
        if recorded is None and partial is None:
            ids = [m.id for m in self.installed()] + [p.id for p in self.partials()]
            hint = did_you_mean(model_id, ids, "run `hanlin models list` to see what is installed")
            raise UnknownModelError(f"No installed or partly downloaded model `{model_id}`", hint)
        repo_file = (recorded.repo, recorded.file) if recorded else (partial.repo, partial.file)
        lock = None
        if repo_file[0] and repo_file[1]:
            target = _Target(model_id, repo_file[0], repo_file[1], None, None, "hub")
            lock = self._pull_lock(target).acquire(0.0)  # BusyError while a pull runs
        try:
            if partial is not None:
                for path in partial.files or [partial.part_path]:
                    path.unlink(missing_ok=True)
                if partial.shards > 1 and partial.file:  # the set's note is its first shard's
                    first = self._final_path(partial.repo or "", partial.file)
                    first.with_name(first.name + NOTE_SUFFIX).unlink(missing_ok=True)
                note = partial.part_path.with_name(partial.part_path.name + ".json")
                note.unlink(missing_ok=True)
                self._prune(partial.part_path.parent)
            if recorded is not None:
                if self.owns_path(recorded.path):
                    for path in recorded.files:  # every shard of a split model
                        try:
                            path.unlink(missing_ok=True)
                        except OSError as exc:  # e.g. Windows: the file is open in another app
                            raise HanlinError(
                                f"Cannot delete {path}: {exc.strerror or exc}",
                                "close programs that use the model (the desktop app, an"
                                " editor) and try again",
                            ) from exc
                    self._prune(recorded.path.parent)
                self._update_manifest(remove_id=model_id)
        finally:
            if lock is not None:
                lock.release()

    def owns_path(self, path: Path) -> bool:
        try:
            return self.models_dir.resolve() in path.resolve().parents
        except OSError:
            return False

    def _prune(self, folder: Path) -> None:
        """Remove empty OWNER/REPO folders left behind."""
        root = self.models_dir.resolve()
        folder = folder.resolve()
        while folder != root and root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def _not_installed(name: str, partial: PartialDownload | None) -> ModelNotInstalledError:
    """`name` (a catalog id or a Hub ref) is known but not on disk: say how to get it."""
    state = "is not downloaded yet"
    if partial and partial.percent is not None:
        state = f"is only partly downloaded ({partial.percent:.0f}%)"
    return ModelNotInstalledError(f"`{name}` {state}", f"run `hanlin models pull {name}`")


def _set_files(path: Path, info: GGUFInfo) -> list[Path]:
    """The files of the model whose first file is `path`: its checked shard set, or `[path]`."""
    if split_count_of(info) == 1 and not is_sharded(path.name):
        return [path]
    return check_shard_set(path, info)


def _shard_problem(
    part: Path,
    index: int,
    count: int,
    result: DownloadResult,
    size: int | None,
    sha256: str | None,
) -> str | None:
    """Why a downloaded shard (0-based `index`) is not the one wanted, or None."""
    if size is not None and result.size != size:
        return f"its size is {result.size} bytes, expected {size}"
    if sha256 and result.sha256 != sha256:
        return f"its sha256 is {result.sha256[:16]}…, expected {sha256[:16]}…"
    try:
        if index == 0:
            info = read_gguf_info(part)
            place = (info.metadata.get("split.no", 0), split_count_of(info))
        else:
            header = read_shard_header(part)
            if header.file_size < header.data_end:
                return f"it is truncated ({header.file_size} of {header.data_end} bytes)"
            place = (header.split_no, header.split_count)
    except ModelFileError as exc:
        return f"it is not a valid GGUF shard ({exc.message})"
    if place != (index, count):
        return f"its header says it is shard {place[0]} (0-based) of {place[1]}, not {index}"
    return None


def _set_partial(note_path: Path, note: dict[str, Any]) -> PartialDownload | None:
    """A half-pulled shard set from its note: bytes over every shard, the files it has."""
    folder = note_path.parent
    done = 0
    files: list[Path] = []
    current: Path | None = None
    entries = [s for s in note["shards"] if isinstance(s, dict) and s.get("file")]
    for shard in entries:
        final = folder / Path(str(shard["file"])).name
        part = final.with_name(final.name + PART_SUFFIX)
        if shard.get("done") and final.is_file():
            done += final.stat().st_size
            files.append(final)
        elif part.is_file():
            done += part.stat().st_size
            files.append(part)
            current = current or part
        elif current is None:
            current = part
    if not files or not entries:
        return None
    first = folder / Path(str(entries[0]["file"])).name
    return PartialDownload(
        id=note.get("id") or slug_id(first.name),
        part_path=current or first.with_name(first.name + PART_SUFFIX),
        bytes_done=done,
        total=note.get("size"),
        repo=note.get("repo"),
        file=note.get("file"),
        files=files,
        shards=len(entries),
    )


def _best_match(ref: HubRef, candidates: Any) -> Any:
    """The installed model or partial download a Hub ref names, if any.

    The exact file first; then the set any named shard belongs to; then a split model
    named by its stem (`FOLDER/NAME.gguf` for `FOLDER/NAME-00001-of-0000N.gguf`).
    """
    items = [c for c in candidates if c.repo == ref.repo and c.file]
    for wanted in (ref.file, first_shard(ref.file)):
        for item in items:
            if item.file == wanted:
                return item
    for item in items:
        name = parse_shard_name(item.file)
        if name is not None and name.count > 1 and name.stem_file == ref.file:
            return item
    return None


def _read_note(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


__all__ = ["InstalledModel", "ModelStore", "PartialDownload", "ShardFile", "slug_id"]
