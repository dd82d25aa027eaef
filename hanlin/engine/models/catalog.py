"""The model catalog: which GGUF builds Hanlin knows, validated, plus the user's own.

Why: the command line, the desktop models page, the fit verdict and the store
all need the same list of models with the same ids. The list is data
(`model_catalog.toml`, shipped inside the `engine` package) so it can grow
without code changes, and users can add or override entries in
`paths.user_catalog_file()` (same format; an entry with a shipped id replaces
the shipped one).

Every file is validated strictly: an unknown key or a bad value raises
`CatalogError` naming the file and the entry, because a typo in a catalog
must never silently download the wrong file.

File shape:

    schema_version = 1

    [sampling.qwen3-thinking]          # named sampling presets
    temperature = 0.6
    top_p = 0.95
    [sampling.qwen3-thinking.no_think] # optional: what replaces them while thinking is off
    temperature = 0.7
    top_p = 0.8

    [[model]]
    id = "qwen3-4b-q4km"               # lower-case letters, digits, . _ -
    name = "Qwen3 4B"
    publisher = "Qwen"
    family = "qwen3"
    parameters = "4B"
    quantization = "Q4_K_M"
    repo = "Qwen/Qwen3-4B-GGUF"
    file = "Qwen3-4B-Q4_K_M.gguf"
    context_length = 32768
    roles = ["chat"]                   # chat and/or completion
    license = "apache-2.0"
    description = "One line."
    sampling = "qwen3-thinking"        # a preset name, or an inline table
    n_layers = 36                      # optional: for the fit verdict before download
    n_kv_heads = 8
    head_dim = 128
    # optional pins: revision = "<commit>", size_bytes = 123, sha256 = "<64 hex>"

`file` is a path inside the repo and may name a sub-folder (`Q4_K_M/Model-Q4_K_M.gguf`, as
unsloth's large repos do). A model split into shards (`-00001-of-00003.gguf`, llama.cpp's
`gguf-split` names) is named by its *first* shard; `size_bytes` is then the total of all
shards and `sha256` cannot be given (each shard has its own; the store checks each against
the Hub's). Vision projectors (`mmproj-*.gguf`) are not models and are refused:
`is_projector_file` tells the store and the Hub search the same.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from hanlin.engine.core import paths
from hanlin.engine.core.errors import CatalogError, UnknownModelError
from hanlin.engine.core.validate import describe_type, is_of_type
from hanlin.engine.models.families import FAMILIES
from hanlin.engine.models.shard_names import SHARD_NAME_RE, ShardName, shard_files

MODEL_ROLES = ("chat", "completion")

#: Families every Hanlin build understands: the ones engine/families.py registers a behaviour for.
KNOWN_FAMILIES = tuple(FAMILIES)

SCHEMA_VERSION = 1
#: a model id: lower-case letters, digits, '.', '_' or '-', at most 80 (catalog and store)
MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_REV_RE = re.compile(r"^[0-9a-f]{40}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
#: a vision projector file (`mmproj-F16.gguf`, `mmproj-Model-Q8_0.gguf`, `Model-mmproj-f16.gguf`)
_PROJECTOR_RE = re.compile(r"(^|[-_.])mmproj([-_.]|$)", re.IGNORECASE)


def is_projector_file(name: str) -> bool:
    """True for a vision projector (`mmproj-*.gguf`): a part of a multimodal model, never
    a model of its own (llama.cpp cannot chat with it), so it is never listed as one."""
    return bool(_PROJECTOR_RE.search(name.replace("\\", "/").rsplit("/", 1)[-1]))


#: the generation settings a catalog entry (or the user) may give a model
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens")


@dataclass(frozen=True)
class Sampling:
    """Generation settings one level gives a model; None = this level does not say.

    Levels, highest first: the user's setting, the catalog entry, the family's
    recommendation, defaults (engine/chat/sampling.py resolves them). `no_think` holds
    values that replace these while the model's thinking is off (Qwen's model cards
    recommend other values for Qwen3's non-thinking mode).
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None
    no_think: Sampling | None = None

    def given(self) -> dict[str, float]:
        """The values this level sets (without `no_think`)."""
        return {k: getattr(self, k) for k in SAMPLING_KEYS if getattr(self, k) is not None}

    def for_mode(self, thinking: bool) -> Sampling:
        """The values for a reply that thinks or not: `no_think` applied when it does not."""
        if thinking or self.no_think is None:
            return replace(self, no_think=None)
        return Sampling(**{**self.given(), **self.no_think.given()})

    def over(self, below: Sampling | None) -> Sampling:
        """This level on top of `below`: its values win, in both thinking modes."""
        if below is None:
            return self
        merged = {**below.given(), **self.given()}
        no_think = None
        if self.no_think is not None or below.no_think is not None:
            # thinking off: mine (no_think, then plain), then below's (no_think, then plain)
            low = below.for_mode(False).given()
            no_think = Sampling(**{**low, **self.for_mode(False).given()})
        return Sampling(**merged, no_think=no_think)


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    publisher: str
    family: str
    parameters: str
    quantization: str
    repo: str
    file: str
    revision: str | None
    size_bytes: int | None
    sha256: str | None
    context_length: int
    roles: tuple[str, ...]
    license: str
    description: str
    sampling: Sampling = field(default_factory=Sampling)
    n_layers: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    source: Literal["shipped", "user"] = "shipped"

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def shard_files(self) -> list[str]:
        """The repo paths to download: all shards of a split model, else just `file`."""
        return shard_files(self.file)

    @property
    def is_sharded(self) -> bool:
        return len(self.shard_files) > 1

    @property
    def hub_ref(self) -> str:
        """The `hf.co/OWNER/REPO/FILE` form of this entry."""
        return f"hf.co/{self.repo}/{self.file}"


class Catalog:
    """The merged catalog: shipped entries with the user's entries over them."""

    def __init__(self, entries: list[CatalogEntry], files: tuple[Path, ...] = ()) -> None:
        self.entries = entries
        self.files = files
        self._by_id = {e.id: e for e in entries}

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, model_id: str) -> CatalogEntry | None:
        return self._by_id.get(model_id)

    def get(self, model_id: str) -> CatalogEntry:
        entry = self._by_id.get(model_id)
        if entry is None:
            raise unknown_model_error(model_id, list(self._by_id))
        return entry

    def with_role(self, role: str) -> list[CatalogEntry]:
        if role not in MODEL_ROLES:
            raise ValueError(f"role must be one of {MODEL_ROLES}, not {role!r}")
        return [e for e in self.entries if role in e.roles]

    def close_ids(self, model_id: str, n: int = 3) -> list[str]:
        return close_matches(model_id, list(self._by_id), n)


def close_matches(word: str, candidates: list[str], n: int = 3) -> list[str]:
    """Ids that look like `word`: difflib matches first, then ids containing it."""
    found = difflib.get_close_matches(word, candidates, n=n, cutoff=0.6)
    if len(found) < n and word:
        for cand in candidates:
            if word.lower() in cand and cand not in found:
                found.append(cand)
                if len(found) >= n:
                    break
    return found


def did_you_mean(word: str, candidates: list[str], fallback: str) -> str:
    """The hint for an unknown id: "did you mean `a`, `b`?", else `fallback`."""
    close = close_matches(word, candidates)
    if close:
        return "did you mean " + ", ".join(f"`{c}`" for c in close) + "?"
    return fallback


def unknown_model_error(model_id: str, candidates: list[str]) -> UnknownModelError:
    hint = did_you_mean(
        model_id,
        candidates,
        "run `hanlin models list` to see the catalog, or pull hf.co/OWNER/REPO/FILE.gguf",
    )
    return UnknownModelError(f"Unknown model `{model_id}`", hint)


# --------------------------------------------------------------------------- parsing

_ENTRY_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "name": str,
    "publisher": str,
    "family": str,
    "parameters": str,
    "quantization": str,
    "repo": str,
    "file": str,
    "context_length": int,
    "roles": list,
    "license": str,
    "description": str,
}
_ENTRY_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "revision": str,
    "size_bytes": int,
    "sha256": str,
    "sampling": (str, dict),
    "n_layers": int,
    "n_kv_heads": int,
    "head_dim": int,
}
_SAMPLING_TYPES: dict[str, tuple[type, ...]] = {
    k: (int,) if k in ("top_k", "max_tokens") else (int, float) for k in SAMPLING_KEYS
}
_SAMPLING_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 5.0),
    "top_p": (0.0, 1.0),
    "top_k": (0, 1000),
    "min_p": (0.0, 1.0),
    "repeat_penalty": (0.5, 3.0),
    "max_tokens": (1, 1_000_000),
}
_TOP_KEYS = ("schema_version", "sampling", "model")


def known_families() -> set[str]:
    """Family names a catalog entry or an import may use (families registered later count too)."""
    return set(FAMILIES)


def _parse_sampling(table: Any, where: str, *, nested: bool = False) -> Sampling:
    if not isinstance(table, dict):
        if nested:
            raise CatalogError(f"{where}: sampling `no_think` must be a table")
        raise CatalogError(f"{where}: sampling must be a table or a preset name")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "no_think":
            if nested:
                raise CatalogError(f"{where}: `no_think` cannot hold another `no_think`")
            values[key] = _parse_sampling(value, f"{where} no_think", nested=True)
            continue
        types = _SAMPLING_TYPES.get(key)
        if types is None:
            known = ", ".join((*_SAMPLING_TYPES, *(() if nested else ("no_think",))))
            raise CatalogError(f"{where}: unknown sampling key `{key}`", f"known keys: {known}")
        if not is_of_type(value, types):
            raise CatalogError(f"{where}: sampling `{key}` must be {describe_type(types)}")
        low, high = _SAMPLING_RANGES[key]
        if not low <= value <= high:
            raise CatalogError(f"{where}: sampling `{key}` = {value} is outside {low}..{high}")
        values[key] = value
    return Sampling(**values)


def _check_file(file: str, label: str, *, sha256: object) -> None:
    """A repo path to one model file: relative, `.gguf`, no projector, a split named by shard 1."""
    parts = file.split("/")
    if (
        not file.lower().endswith(".gguf")
        or file.startswith("/")
        or "\\" in file
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise CatalogError(
            f"{label}: file must be a relative path ending in .gguf, not {file!r}",
            "sub-folders are written with `/`, e.g. `Q4_K_M/Model-Q4_K_M.gguf`",
        )
    if is_projector_file(file):
        raise CatalogError(
            f"{label}: `{parts[-1]}` is a vision projector (mmproj), not a model",
            "name the model's own GGUF; projectors are not chat or completion models",
        )
    match = SHARD_NAME_RE.match(file)
    if match is not None:
        shard = ShardName(match["stem"], int(match["index"]), int(match["count"]))
        if shard.count < 2 or not 1 <= shard.index <= shard.count:
            raise CatalogError(f"{label}: `{parts[-1]}` is not a valid shard name")
        if shard.index != 1:
            raise CatalogError(
                f"{label}: a split model is named by its first shard, not `{parts[-1]}`",
                f"use `{shard.file(1)}`",
            )
        if sha256 is not None:
            raise CatalogError(
                f"{label}: a split model has one sha256 per shard, so `sha256` cannot pin it",
                "leave sha256 out (each shard is checked against the Hub's); size_bytes is "
                "the total of all shards",
            )


def _parse_entry(
    raw: Any, index: int, path: Path, presets: dict[str, Sampling], source: str
) -> CatalogEntry:
    label = f"{path}: [[model]] #{index + 1}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{label} must be a table")
    if isinstance(raw.get("id"), str):
        label = f"{path}: model `{raw['id']}`"
    for key in raw:
        if key not in _ENTRY_REQUIRED and key not in _ENTRY_OPTIONAL:
            known = ", ".join([*_ENTRY_REQUIRED, *_ENTRY_OPTIONAL])
            raise CatalogError(f"{label}: unknown key `{key}`", f"known keys: {known}")
    for key, types in _ENTRY_REQUIRED.items():
        if key not in raw:
            raise CatalogError(f"{label}: missing required key `{key}`")
        if not is_of_type(raw[key], types):
            raise CatalogError(f"{label}: `{key}` must be {describe_type(types)}")
    for key, types in _ENTRY_OPTIONAL.items():
        if key in raw and not is_of_type(raw[key], types):
            raise CatalogError(f"{label}: `{key}` must be {describe_type(types)}")

    if not MODEL_ID_RE.match(raw["id"]):
        raise CatalogError(
            f"{label}: id must be lower-case letters, digits, '.', '_' or '-' (max 80)"
        )
    for key in ("name", "publisher", "parameters", "quantization", "license", "description"):
        if not raw[key].strip():
            raise CatalogError(f"{label}: `{key}` must not be empty")
    if raw["family"] not in known_families():
        raise CatalogError(
            f"{label}: unknown family `{raw['family']}`",
            f"known families: {', '.join(sorted(known_families()))}",
        )
    if not _REPO_RE.match(raw["repo"]):
        raise CatalogError(f"{label}: repo must look like OWNER/NAME, not {raw['repo']!r}")
    file = raw["file"]
    _check_file(file, label, sha256=raw.get("sha256"))
    if raw["context_length"] < 128:
        raise CatalogError(f"{label}: context_length must be at least 128")
    roles = raw["roles"]
    if not roles or not all(isinstance(r, str) and r in MODEL_ROLES for r in roles):
        raise CatalogError(f"{label}: roles must be a non-empty list of {', '.join(MODEL_ROLES)}")
    if len(set(roles)) != len(roles):
        raise CatalogError(f"{label}: roles has duplicates")
    sha = raw.get("sha256")
    if sha is not None and not _SHA_RE.match(sha):
        raise CatalogError(f"{label}: sha256 must be 64 lower-case hex digits")
    rev = raw.get("revision")
    if rev is not None and not (_REV_RE.match(rev) or re.match(r"^[A-Za-z0-9._/-]{1,100}$", rev)):
        raise CatalogError(f"{label}: revision must be a commit hash or branch name")
    for key in ("size_bytes", "n_layers", "n_kv_heads", "head_dim"):
        if key in raw and raw[key] <= 0:
            raise CatalogError(f"{label}: `{key}` must be positive")

    sampling_raw = raw.get("sampling")
    if sampling_raw is None:
        sampling = Sampling()
    elif isinstance(sampling_raw, str):
        if sampling_raw not in presets:
            raise CatalogError(
                f"{label}: unknown sampling preset `{sampling_raw}`",
                f"defined presets: {', '.join(sorted(presets)) or 'none'}",
            )
        sampling = presets[sampling_raw]
    else:
        sampling = _parse_sampling(sampling_raw, label)

    return CatalogEntry(
        id=raw["id"],
        name=raw["name"],
        publisher=raw["publisher"],
        family=raw["family"],
        parameters=raw["parameters"],
        quantization=raw["quantization"],
        repo=raw["repo"],
        file=file,
        revision=rev,
        size_bytes=raw.get("size_bytes"),
        sha256=sha,
        context_length=raw["context_length"],
        roles=tuple(roles),
        license=raw["license"],
        description=raw["description"],
        sampling=sampling,
        n_layers=raw.get("n_layers"),
        n_kv_heads=raw.get("n_kv_heads"),
        head_dim=raw.get("head_dim"),
        source=source,  # type: ignore[arg-type]
    )


def parse_catalog_file(
    path: Path, source: Literal["shipped", "user"], base_presets: dict[str, Sampling] | None = None
) -> tuple[list[CatalogEntry], dict[str, Sampling]]:
    """Parse and validate one catalog file. Returns its entries and its sampling presets."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path} is not valid TOML: {exc}", "fix or remove the file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"Cannot read catalog {path}: {exc}") from exc
    for key in data:
        if key not in _TOP_KEYS:
            raise CatalogError(
                f"{path}: unknown top-level key `{key}`", f"known keys: {', '.join(_TOP_KEYS)}"
            )
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise CatalogError(
            f"{path}: schema_version {version!r} is not supported"
            f" (this Hanlin reads {SCHEMA_VERSION})"
        )
    presets = dict(base_presets or {})
    raw_presets = data.get("sampling", {})
    if not isinstance(raw_presets, dict):
        raise CatalogError(f"{path}: [sampling] must be a table of named presets")
    for name, table in raw_presets.items():
        presets[name] = _parse_sampling(table, f"{path}: [sampling.{name}]")
    raw_models = data.get("model", [])
    if not isinstance(raw_models, list):
        raise CatalogError(f"{path}: models must be written as [[model]] tables")
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_models):
        entry = _parse_entry(raw, i, path, presets, source)
        if entry.id in seen:
            raise CatalogError(f"{path}: model `{entry.id}` is defined twice")
        seen.add(entry.id)
        entries.append(entry)
    return entries, presets


def shipped_catalog_path() -> Path:
    return Path(__file__).with_name("model_catalog.toml")


def load_catalog(shipped: Path | None = None, user: Path | None = None) -> Catalog:
    """The shipped catalog with the user's entries merged over it (same id replaces).

    A missing user file is fine; a broken one raises CatalogError naming it.
    """
    shipped = shipped or shipped_catalog_path()
    user = user or paths.user_catalog_file()
    entries, presets = parse_catalog_file(shipped, "shipped")
    files: tuple[Path, ...] = (shipped,)
    if user.is_file():
        user_entries, _ = parse_catalog_file(user, "user", presets)
        files = (shipped, user)
        by_id = {e.id: i for i, e in enumerate(entries)}
        for entry in user_entries:
            if entry.id in by_id:
                entries[by_id[entry.id]] = entry
            else:
                entries.append(entry)
    return Catalog(entries, files)


__all__ = [
    "KNOWN_FAMILIES",
    "MODEL_ID_RE",
    "MODEL_ROLES",
    "Catalog",
    "CatalogEntry",
    "Sampling",
    "ShardName",
    "close_matches",
    "did_you_mean",
    "is_projector_file",
    "known_families",
    "load_catalog",
    "parse_catalog_file",
    "shard_files",
    "shipped_catalog_path",
    "unknown_model_error",
]
