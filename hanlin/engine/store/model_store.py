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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hanlin.engine.core import paths
from hanlin.engine.core.atomic import write_text_atomic
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken, Progress, ProgressCallback
from hanlin.engine.core.errors import (
    DiskFullError,
    HanlinError,
    ModelFileError,
    ModelNotInstalledError,
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
    RemoteFile,
    download_to_part,
    is_offline,
    offline_error,
    parse_hub_ref,
    resolve_remote,
)

MANIFEST_NAME = "manifest.json"
PART_SUFFIX = ".part"
NOTE_SUFFIX = ".part.json"
#: keep this much free beyond the download itself (the manifest, the OS)
FREE_SPACE_MARGIN = 64 * MiB

Source = Literal["catalog", "hub", "import"]


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

    def to_json(self, models_dir: Path) -> dict[str, Any]:
        try:
            stored = str(self.path.relative_to(models_dir))
        except ValueError:
            stored = str(self.path)
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
        }


@dataclass
class PartialDownload:
    id: str
    part_path: Path
    bytes_done: int
    total: int | None
    repo: str | None = None
    file: str | None = None

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


def slug_id(filename: str) -> str:
    """A model id from a file name: `Qwen3-4B-Q4_K_M.gguf` -> `qwen3-4b-q4_k_m`."""
    stem = Path(filename).name
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
                )
            )
        return out

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
            for model in self.installed():
                if model.repo == ref.repo and model.file == ref.file:
                    return model
            # Not a path even though it ends in .gguf: say how to get it.
            partial = next(
                (p for p in self.partials() if (p.repo, p.file) == (ref.repo, ref.file)), None
            )
            raise _not_installed(id_or_path, partial)
        candidate = Path(id_or_path).expanduser()
        if candidate.suffix.lower() == ".gguf" or os.sep in id_or_path or candidate.is_file():
            if candidate.is_file():
                info = read_gguf_info(candidate)
                return InstalledModel(
                    id=slug_id(candidate.name),
                    path=candidate.resolve(),
                    size_bytes=candidate.stat().st_size,
                    family=guess_family(info.architecture, info.name, candidate),
                    source="import",
                )
            if candidate.suffix.lower() == ".gguf":
                raise ModelFileError(f"{candidate} does not exist", "check the path")
        entry = self.catalog.find(id_or_path)
        if entry is not None:
            raise _not_installed(entry.id, self.partial(entry.id))
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
            return _Target(entry.id, entry.repo, entry.file, entry.revision, entry, "catalog")
        if not hub.file.lower().endswith(".gguf"):
            raise UnknownModelError(
                f"`{hub.file}` is not a GGUF file",
                "Hanlin runs GGUF models: pick a .gguf file from the repository",
            )
        for entry in self.catalog:
            if entry.repo.lower() == hub.repo.lower() and entry.file == hub.file:
                return _Target(
                    entry.id,
                    entry.repo,
                    entry.file,
                    hub.revision or entry.revision,
                    entry,
                    "catalog",
                )
        model_id = slug_id(hub.file)
        taken = self.catalog.find(model_id) is not None or any(
            m.id == model_id and (m.repo, m.file) != (hub.repo, hub.file) for m in self.installed()
        )
        if taken:
            model_id = slug_id(f"{hub.repo.split('/')[0]}-{hub.file}")
        return _Target(model_id, hub.repo, hub.file, hub.revision, None, "hub")

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
        """
        cancel = cancel or NEVER_CANCELLED
        target = self._target(ref)
        existing = self.get(target.id)
        if existing is not None and existing.repo == target.repo and existing.file == target.file:
            return existing
        lock = self._pull_lock(target).acquire(self.lock_wait, cancel)
        try:
            existing = self.get(target.id)  # another process may have finished it meanwhile
            if existing is not None and (existing.repo, existing.file) == (
                target.repo,
                target.file,
            ):
                return existing
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
        self, path: Path | str, *, model_id: str | None = None, family: str | None = None
    ) -> InstalledModel:
        """Register a GGUF already on disk, in place (no copy)."""
        path = Path(path).expanduser()
        info = read_gguf_info(path)  # ModelFileError names the file and the reason
        path = path.resolve()
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
            raise HanlinError(
                f"A model called `{model_id}` is already installed ({existing.path})",
                f"choose another id with --id, or remove it first: `hanlin models rm {model_id}`",
            )
        model = InstalledModel(
            id=model_id,
            path=path,
            size_bytes=path.stat().st_size,
            family=family or guess_family(info.architecture, info.name, path),
            source="import",
            catalog_entry=None,
            installed_at=time.time(),
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
                partial.part_path.unlink(missing_ok=True)
                note = partial.part_path.with_name(partial.part_path.name + ".json")
                note.unlink(missing_ok=True)
                self._prune(partial.part_path.parent)
            if recorded is not None:
                if self.owns_path(recorded.path):
                    try:
                        recorded.path.unlink(missing_ok=True)
                    except OSError as exc:  # e.g. Windows: the file is open in another app
                        raise HanlinError(
                            f"Cannot delete {recorded.path}: {exc.strerror or exc}",
                            "close programs that use the model (the desktop app, an editor)"
                            " and try again",
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


def _read_note(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


__all__ = ["InstalledModel", "ModelStore", "PartialDownload", "slug_id"]
