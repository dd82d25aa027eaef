"""Find GGUF models already on this disk: the Hugging Face cache, Ollama, LM Studio, folders.

Why: a user switching to Hanlin often has tens of gigabytes of models on disk already.
Downloading them again wastes hours; copying them wastes the disk. `hanlin models scan`
and the Models page's "Scan disk" find them and register them *in place*
(`ModelStore.import_file`: nothing is copied, and removing one from Hanlin deletes nothing).

Where it looks (each only if it exists):

- the Hugging Face cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
  `~/.cache/huggingface/hub`; `hf_hub_download`'s layout
  `models--OWNER--REPO/snapshots/COMMIT/PATH` with links into `blobs/`). The snapshot
  path is what gets registered, so the file keeps its name (llama.cpp finds the other
  parts of a split set beside the first); the newest revision a ref points at wins.
  Such a file also records its Hub name, so pulling that name later finds it.
- Ollama's store (`OLLAMA_MODELS`, else `~/.ollama/models`, and the Linux service's
  `/usr/share/ollama/.ollama/models`): each manifest under `manifests/` names its model
  layer (mediaType `application/vnd.ollama.image.model`) by digest; the blob
  `blobs/sha256-<hex>` is a GGUF without the extension, so only the header decides.
- LM Studio's models folder (`~/.lmstudio/models`, older `~/.cache/lm-studio/models`),
  laid out `PUBLISHER/REPO/FILE.gguf` like the Hub.
- every folder in `settings.scan_folders` (and any the caller adds), recursively.

Each candidate gets the same checks as an import (`read_gguf_info`: magic, version,
truncation, architecture). A file that fails is reported with the reason and never
listed as a model. Vision projectors are skipped; a split set is one model, found by its
first part, and reported when a part is missing. Files already registered, and copies of
a model Hanlin already has, are shown as such and not registered twice.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken, Progress, ProgressCallback
from hanlin.engine.core.errors import HanlinError, ModelFileError
from hanlin.engine.models.families import guess_family
from hanlin.engine.models.gguf_info import GGUFInfo, read_gguf_info
from hanlin.engine.store.hub_search import is_projector, split_shard_name

if TYPE_CHECKING:
    from hanlin.engine.models.catalog import Catalog, CatalogEntry
    from hanlin.engine.store.model_store import InstalledModel, ModelStore

__all__ = [
    "ORIGINS",
    "ORIGIN_LABELS",
    "FoundModel",
    "Origin",
    "ScanLocation",
    "ScanProblem",
    "ScanReport",
    "default_locations",
    "hf_cache_dir",
    "lmstudio_dirs",
    "ollama_dirs",
    "register_found",
    "scan_disk",
]

Origin = Literal["hf-cache", "ollama", "lmstudio", "folder"]
ORIGINS: tuple[str, ...] = ("hf-cache", "ollama", "lmstudio", "folder")
ORIGIN_LABELS: dict[str, str] = {
    "hf-cache": "Hugging Face cache",
    "ollama": "Ollama",
    "lmstudio": "LM Studio",
    "folder": "folder",
}

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
#: a folder walk stops after this many entries (a scan of `~` must still end)
MAX_WALK_ENTRIES = 200_000


# --------------------------------------------------------------------------- where


def hf_cache_dir() -> Path:
    """The Hugging Face Hub cache, as huggingface_hub resolves it (read from the env now)."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(key)
        if value:
            return Path(os.path.expandvars(value)).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def ollama_dirs() -> list[Path]:
    """Ollama's models folders: OLLAMA_MODELS, else the user's and the Linux service's."""
    value = os.environ.get("OLLAMA_MODELS")
    if value:
        return [Path(value).expanduser()]
    return [Path.home() / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]


def lmstudio_dirs() -> list[Path]:
    """LM Studio's models folders (0.3+, and the older location)."""
    return [Path.home() / ".lmstudio" / "models", Path.home() / ".cache" / "lm-studio" / "models"]


@dataclass(frozen=True)
class ScanLocation:
    origin: str
    path: Path
    #: the user asked for this one (settings or the command line): say so when it is missing
    explicit: bool = False

    @property
    def exists(self) -> bool:
        return self.path.is_dir()

    @property
    def label(self) -> str:
        return ORIGIN_LABELS.get(self.origin, self.origin)


def default_locations(
    settings: Any = None, extra_folders: Iterable[str | Path] = ()
) -> list[ScanLocation]:
    """Every place a scan looks, in order; `settings.scan_folders` and `extra_folders` last."""
    if settings is None:
        from hanlin.engine.core.settings import load_settings

        settings = load_settings().settings
    out = [ScanLocation("hf-cache", hf_cache_dir())]
    out += [ScanLocation("ollama", p) for p in ollama_dirs()]
    out += [ScanLocation("lmstudio", p) for p in lmstudio_dirs()]
    folders = [*getattr(settings, "scan_folders", []), *extra_folders]
    seen: set[Path] = set()
    for folder in folders:
        path = Path(os.path.expandvars(str(folder))).expanduser()
        if path in seen:
            continue
        seen.add(path)
        out.append(ScanLocation("folder", path, explicit=True))
    return out


# --------------------------------------------------------------------------- what


@dataclass(frozen=True)
class FoundModel:
    """A GGUF model found on disk, ready to be registered in place."""

    #: the file to register (a split set's first part; for Ollama, the blob)
    path: Path
    origin: str
    #: what the other tool calls it: `OWNER/REPO/FILE`, `qwen3:4b`, or the file name
    name: str
    #: the id it gets in Hanlin (the catalog's id when it is a catalog file)
    model_id: str
    size_bytes: int
    family: str
    architecture: str
    roles: tuple[str, ...]
    repo: str | None = None
    file: str | None = None
    commit: str | None = None
    shard_count: int = 1
    catalog_id: str | None = None
    #: the id it is already registered under (this very file), if any
    registered_as: str | None = None
    #: an installed model that is the same file from the Hub (registering adds nothing)
    duplicate_of: str | None = None

    @property
    def is_new(self) -> bool:
        return self.registered_as is None and self.duplicate_of is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "name": self.name,
            "origin": self.origin,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "family": self.family,
            "architecture": self.architecture,
            "roles": list(self.roles),
            "repo": self.repo,
            "file": self.file,
            "shards": self.shard_count,
            "catalog_id": self.catalog_id,
            "registered_as": self.registered_as,
            "duplicate_of": self.duplicate_of,
        }


@dataclass(frozen=True)
class ScanProblem:
    """A candidate that is not a usable model: the reason, and what to do."""

    path: Path
    origin: str
    name: str
    message: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "origin": self.origin,
            "name": self.name,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass
class ScanReport:
    locations: list[ScanLocation]
    found: list[FoundModel] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)

    @property
    def new(self) -> list[FoundModel]:
        return [f for f in self.found if f.is_new]

    def to_json(self) -> dict[str, Any]:
        return {
            "locations": [
                {"origin": loc.origin, "path": str(loc.path), "exists": loc.exists}
                for loc in self.locations
            ],
            "found": [f.to_json() for f in self.found],
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True)
class _Candidate:
    path: Path
    origin: str
    name: str
    repo: str | None = None
    file: str | None = None
    commit: str | None = None
    #: the size Ollama's manifest gives the layer
    expected_size: int | None = None
    #: the blob's sha256 when the layout tells it (HF cache blob names, Ollama digests)
    sha256: str | None = None
    shard_count: int = 1
    missing_parts: tuple[int, ...] = ()


# --------------------------------------------------------------------------- the walks


def _hf_cache(root: Path) -> Iterator[_Candidate | ScanProblem]:
    """`models--OWNER--REPO/snapshots/COMMIT/…/*.gguf`, the newest referenced revision first."""
    try:
        repos = sorted(p for p in root.iterdir() if p.name.startswith("models--") and p.is_dir())
    except OSError as exc:
        yield _unreadable(root, "hf-cache", exc)
        return
    for repo_dir in repos:
        repo = repo_dir.name[len("models--") :].replace("--", "/")
        snapshots = repo_dir / "snapshots"
        if not snapshots.is_dir():
            continue
        refs: set[str] = set()
        refs_dir = repo_dir / "refs"
        if refs_dir.is_dir():
            for ref in refs_dir.rglob("*"):
                if ref.is_file():
                    try:
                        refs.add(ref.read_text(encoding="utf-8").strip())
                    except OSError:
                        continue
        try:
            revisions = [p for p in snapshots.iterdir() if p.is_dir()]
        except OSError as exc:
            yield _unreadable(snapshots, "hf-cache", exc)
            continue
        revisions.sort(key=lambda p: (p.name not in refs, -_mtime(p)))
        seen: set[str] = set()
        for revision in revisions:
            files = sorted(p for p in revision.rglob("*") if p.name.lower().endswith(".gguf"))
            rel = {p.relative_to(revision).as_posix(): p for p in files}
            for name in _model_files(rel):
                if name in seen:
                    continue
                seen.add(name)
                path = rel[name]
                label = f"{repo}/{name}"
                if not path.exists():  # a link whose blob is gone
                    yield ScanProblem(
                        path,
                        "hf-cache",
                        label,
                        f"{label} in the Hugging Face cache points at a missing blob",
                        "download it again, or delete the cache entry (`hf cache delete`)",
                    )
                    continue
                blob = Path(os.readlink(path)).name if path.is_symlink() else None
                yield _with_parts(
                    _Candidate(
                        path,
                        "hf-cache",
                        label,
                        repo=repo,
                        file=name,
                        commit=revision.name,
                        sha256=blob if blob and _SHA256_HEX.match(blob) else None,
                    ),
                    rel,
                    name,
                )


def _ollama(root: Path) -> Iterator[_Candidate | ScanProblem]:
    """Ollama manifests (`manifests/REGISTRY/NAMESPACE/MODEL/TAG`) and their model blobs."""
    manifests = root / "manifests"
    if not manifests.is_dir():
        return
    try:
        paths = sorted(
            p for p in manifests.rglob("*") if p.is_file() and not p.name.startswith(".")
        )
    except OSError as exc:
        yield _unreadable(manifests, "ollama", exc)
        return
    for manifest in paths:
        name = _ollama_name(manifest.relative_to(manifests).parts)
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            layers = data.get("layers") if isinstance(data, dict) else None
            if not isinstance(layers, list):
                raise ValueError("it has no layers")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            yield ScanProblem(
                manifest,
                "ollama",
                name,
                f"Ollama's manifest of {name} cannot be read ({exc})",
                f"run `ollama pull {name}` to repair it",
            )
            continue
        for layer in layers:
            if not isinstance(layer, dict) or layer.get("mediaType") != OLLAMA_MODEL_LAYER:
                continue
            digest = str(layer.get("digest") or "")
            algo, _, hexdigest = digest.partition(":")
            blob = root / "blobs" / f"{algo}-{hexdigest}"
            if not hexdigest or not blob.is_file():
                yield ScanProblem(
                    blob,
                    "ollama",
                    name,
                    f"Ollama's model {name} has no blob {digest or '(no digest)'}",
                    f"run `ollama pull {name}` to download it again",
                )
                continue
            size = layer.get("size")
            yield _Candidate(
                blob,
                "ollama",
                name,
                expected_size=size if isinstance(size, int) else None,
                sha256=hexdigest if algo == "sha256" else None,
            )


def _ollama_name(parts: tuple[str, ...]) -> str:
    """`registry.ollama.ai/library/qwen3/4b` -> `qwen3:4b`; other namespaces keep theirs."""
    if len(parts) < 2:
        return "/".join(parts)
    *path, tag = parts
    if path and path[0] == "registry.ollama.ai":
        path = path[1:]
        if path and path[0] == "library":
            path = path[1:]
    return f"{'/'.join(path)}:{tag}"


def _folder(root: Path, origin: str) -> Iterator[_Candidate | ScanProblem]:
    """Every `.gguf` under `root` (hidden folders skipped); LM Studio's names as the Hub's."""
    rel: dict[str, Path] = {}
    walked = 0
    for folder, dirs, files in os.walk(root, onerror=None):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        walked += len(dirs) + len(files)
        for name in sorted(files):
            if name.lower().endswith(".gguf"):
                path = Path(folder) / name
                rel[path.relative_to(root).as_posix()] = path
        if walked > MAX_WALK_ENTRIES:
            yield ScanProblem(
                root,
                origin,
                str(root),
                f"{root} holds more than {MAX_WALK_ENTRIES} files: the scan stopped early",
                "add the folder that holds your models instead",
            )
            break
    for name in _model_files(rel):
        path = rel[name]
        parts = name.split("/")
        repo = file = None
        if origin == "lmstudio" and len(parts) >= 3:
            repo, file = "/".join(parts[:2]), "/".join(parts[2:])
        label = name if origin == "lmstudio" else str(path)
        yield _with_parts(_Candidate(path, origin, label, repo=repo, file=file), rel, name)


def _model_files(rel: dict[str, Path]) -> list[str]:
    """The names that are models: projectors and later parts of a split set left out."""
    out = []
    sets: set[tuple[str, int]] = set()
    for name in sorted(rel):  # part 00001 sorts first: a set is listed by its lowest part
        if is_projector(name):
            continue
        shard = split_shard_name(name)
        if shard is not None:
            if (shard[0], shard[2]) in sets:
                continue
            sets.add((shard[0], shard[2]))
        out.append(name)
    return out


def _part_name(stem: str, index: int, count: int) -> str:
    return f"{stem}-{index:05d}-of-{count:05d}.gguf"


def _with_parts(candidate: _Candidate, rel: dict[str, Path], name: str) -> _Candidate:
    shard = split_shard_name(name)
    if shard is None:
        return candidate
    stem, _index, count = shard
    missing = tuple(i for i in range(1, count + 1) if _part_name(stem, i, count) not in rel)
    return replace(candidate, shard_count=count, missing_parts=missing)


def _unreadable(path: Path, origin: str, exc: OSError) -> ScanProblem:
    return ScanProblem(
        path,
        origin,
        str(path),
        f"Cannot read {path}: {exc.strerror or exc}",
        "check the folder's permissions (Ollama's service folder needs the `ollama` group)",
    )


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# --------------------------------------------------------------------------- the checks


def _roles(info: GGUFInfo) -> tuple[str, ...]:
    roles = ["chat"] if info.chat_template else []
    if info.has_fim:
        roles.append("completion")
    return tuple(roles) or ("chat",)


def _check(candidate: _Candidate) -> GGUFInfo | ScanProblem:
    """The import's header checks, plus what the layout promised (parts, Ollama's size)."""
    where = ORIGIN_LABELS.get(candidate.origin, candidate.origin)
    if candidate.missing_parts:
        parts = ", ".join(str(i) for i in candidate.missing_parts)
        return ScanProblem(
            candidate.path,
            candidate.origin,
            candidate.name,
            f"{candidate.name} is split in {candidate.shard_count} parts and part {parts}"
            f" is missing from the {where}",
            "download the missing part, or the whole model again",
        )
    try:
        size = candidate.path.stat().st_size
    except OSError as exc:
        return _unreadable(candidate.path, candidate.origin, exc)
    if candidate.expected_size is not None and size != candidate.expected_size:
        return ScanProblem(
            candidate.path,
            candidate.origin,
            candidate.name,
            f"{where}'s blob of {candidate.name} is {size} bytes, its manifest says"
            f" {candidate.expected_size}: it is damaged or incomplete",
            f"run `ollama pull {candidate.name}` to repair it",
        )
    try:
        return read_gguf_info(candidate.path)
    except ModelFileError as exc:
        hint = (
            f"run `ollama pull {candidate.name}` to repair it (older Ollama models are"
            " GGML files, which llama.cpp no longer reads)"
            if candidate.origin == "ollama"
            else exc.hint
        )
        # the message names the file; an Ollama blob's name says nothing, its model's does
        message = (
            f"{candidate.name} ({where}): {exc.message}"
            if candidate.origin == "ollama"
            else f"{exc.message} ({where})"
        )
        return ScanProblem(candidate.path, candidate.origin, candidate.name, message, hint)


def _catalog_match(catalog: Catalog | None, c: _Candidate, size: int) -> CatalogEntry | None:
    """The catalog entry this file is, when its Hub name and pinned size/sha256 say so."""
    if catalog is None or not (c.repo and c.file):
        return None
    for entry in catalog:
        if entry.repo.lower() != c.repo.lower() or entry.file != c.file:
            continue
        if entry.sha256 and c.sha256 and entry.sha256 != c.sha256:
            return None
        if entry.size_bytes and entry.size_bytes != size and c.shard_count == 1:
            return None
        return entry
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def scan_disk(
    locations: Iterable[ScanLocation] | None = None,
    *,
    store: ModelStore | None = None,
    cancel: CancelToken | None = None,
    on_progress: ProgressCallback | None = None,
) -> ScanReport:
    """Look in every location; check each candidate's header; give each an id.

    Progress: stage "scan", done/total candidates, the name in `detail`.
    """
    from hanlin.engine.store.model_store import ModelStore, slug_id

    cancel = cancel or NEVER_CANCELLED
    store = store or ModelStore()
    places = list(default_locations() if locations is None else locations)
    report = ScanReport(places)
    candidates: list[_Candidate] = []
    for place in places:
        cancel.raise_if_cancelled()
        if not place.exists:
            continue
        if place.origin == "hf-cache":
            walk = _hf_cache(place.path)
        elif place.origin == "ollama":
            walk = _ollama(place.path)
        else:
            walk = _folder(place.path, place.origin)
        for item in walk:
            if isinstance(item, ScanProblem):
                report.problems.append(item)
            else:
                candidates.append(item)
            cancel.raise_if_cancelled()

    installed = store.installed()
    ids: dict[str, Path] = {m.id: m.path for m in installed}
    by_name = {(m.repo.lower(), m.file): m for m in installed if m.repo and m.file}
    catalog = _catalog_of(store)
    seen: list[Path] = []
    for n, candidate in enumerate(candidates):
        cancel.raise_if_cancelled()
        if on_progress:
            on_progress(Progress("scan", float(n), float(len(candidates)), candidate.name))
        if store.owns_path(candidate.path) or any(_same_file(candidate.path, p) for p in seen):
            continue  # Hanlin's own download, or the same file reached another way
        checked = _check(candidate)
        if isinstance(checked, ScanProblem):
            report.problems.append(checked)
            continue
        info = checked
        if info.architecture == "clip":
            continue  # a vision projector under another name
        seen.append(candidate.path)
        size = _total_size(candidate)
        registered = next((m for m in installed if _same_file(m.path, candidate.path)), None)
        entry = _catalog_match(catalog, candidate, size)
        duplicate = None
        if registered is None and candidate.repo and candidate.file:
            twin = by_name.get((candidate.repo.lower(), candidate.file))
            duplicate = twin.id if twin is not None else None
        if registered is not None:
            model_id = registered.id
        else:
            base = entry.id if entry is not None else slug_id(_id_source(candidate))
            if entry is not None and entry.id in ids:
                duplicate = duplicate or entry.id
            model_id = _free_id(base, candidate.origin, ids)
            if duplicate is None:
                ids[model_id] = candidate.path
        family = (
            entry.family
            if entry is not None
            else guess_family(info.architecture, info.name, _family_hint(candidate))
        )
        report.found.append(
            FoundModel(
                path=candidate.path,
                origin=candidate.origin,
                name=candidate.name,
                model_id=model_id,
                size_bytes=size,
                family=family,
                architecture=info.architecture,
                roles=tuple(entry.roles) if entry is not None else _roles(info),
                repo=candidate.repo,
                file=candidate.file,
                commit=candidate.commit,
                shard_count=candidate.shard_count,
                catalog_id=entry.id if entry is not None else None,
                registered_as=registered.id if registered is not None else None,
                duplicate_of=duplicate,
            )
        )
    if on_progress:
        on_progress(Progress("scan", float(len(candidates)), float(len(candidates)), "done"))
    return report


def _catalog_of(store: Any) -> Catalog | None:
    try:
        return store.catalog
    except HanlinError:  # a broken user catalog must not stop a scan
        return None


def _total_size(candidate: _Candidate) -> int:
    size = candidate.path.stat().st_size
    shard = split_shard_name(candidate.path.name)
    if shard is None or candidate.shard_count == 1:
        return size
    stem, _index, count = shard
    folder = candidate.path.parent
    total = 0
    for i in range(1, count + 1):
        try:
            total += (folder / _part_name(Path(stem).name, i, count)).stat().st_size
        except OSError:
            return size
    return total


def _id_source(candidate: _Candidate) -> str:
    """What the id is made from: the file name, or Ollama's `model:tag`."""
    if candidate.origin == "ollama":  # `qwen3:4b` -> qwen3-4b; `qwen2.5:latest` -> qwen2.5
        return candidate.name.removesuffix(":latest").replace(":", "-").replace("/", "-")
    shard = split_shard_name(candidate.path.name)
    return Path(shard[0]).name if shard else candidate.path.name


def _family_hint(candidate: _Candidate) -> str:
    return candidate.name if candidate.origin == "ollama" else candidate.path.name


def _free_id(base: str, origin: str, taken: dict[str, Path]) -> str:
    if base not in taken:
        return base
    for suffix in [origin, *(f"{origin}-{n}" for n in range(2, 100))]:
        candidate = f"{base[: 79 - len(suffix)]}-{suffix}"
        if candidate not in taken:
            return candidate
    raise HanlinError(f"No free id for {base}", "remove some models and scan again")


def register_found(
    store: ModelStore,
    found: Iterable[FoundModel],
    *,
    cancel: CancelToken | None = None,
) -> tuple[list[InstalledModel], list[ScanProblem]]:
    """Register new finds in place (`import_file`, no copy); the rest are left alone.

    A file that fails its import (it changed since the scan, an id clash) is returned as a
    problem; the others still register.
    """
    cancel = cancel or NEVER_CANCELLED
    done: list[InstalledModel] = []
    problems: list[ScanProblem] = []
    for item in found:
        cancel.raise_if_cancelled()
        if not item.is_new:
            continue
        try:
            done.append(
                store.import_file(
                    item.path,
                    model_id=item.model_id,
                    family=item.family,
                    origin=item.origin,
                    repo=item.repo,
                    file=item.file,
                )
            )
        except HanlinError as exc:
            problems.append(ScanProblem(item.path, item.origin, item.name, exc.message, exc.hint))
    return done, problems
