"""Find GGUF models on the Hugging Face Hub: search, "New from the labs", and each repo's files.

Why: the labs publish in hours, and the catalog cannot keep up. A user who read about a
model today must be able to find it, see which quantizations exist, how big each is and
whether it fits this machine, and pull it — without leaving Hanlin.

How:

- Repositories come from `HfApi.list_models` with the `gguf` filter (search text, author,
  sort by downloads or by last update). huggingface_hub builds the request, pages through
  the answer, honours HF_ENDPOINT (read now, as the store does), HF_TOKEN (gated and
  private repos) and proxies.
- A repo's files come from the tree API (`HfApi.list_repo_tree`, recursive: unsloth keeps
  big quantizations in sub-folders), which gives each file's size and LFS sha256.
- Files are grouped into what one pull gets: a single GGUF, or a split set
  (`NAME-00001-of-0000N.gguf`) folded into one group with its total size. A set with
  parts missing on the Hub is shown as incomplete, never offered as a model. Vision
  projectors (`mmproj-*.gguf`) are not models and are left out.
- Each group is labelled with its quantization (from the file name) and gets a fit verdict
  for this machine (engine/models/fit.py): the catalog entry's when the file is in the
  catalog, else from the real size on the Hub.
- Family and roles are guessed from the repo name and the architecture the Hub reports;
  after a download the store guesses again from the GGUF header, and the user can correct
  the family (`hanlin models import PATH --id ID --family F`).

Nothing here runs until asked (the Models page fetches "New from the labs" only when the
user opens it). Offline mode (HF_HUB_OFFLINE) fails fast with a message that says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import (
    AuthError,
    DownloadError,
    HanlinError,
    NotFoundOnHubError,
    OfflineError,
    UnknownModelError,
)
from hanlin.engine.models.catalog import is_projector_file
from hanlin.engine.models.families import GENERIC_FAMILY, guess_family
from hanlin.engine.store.hub_download import hub_endpoint, hub_token, is_offline
from hanlin.engine.store.shards import parse_shard_name

if TYPE_CHECKING:
    from hanlin.engine.models.catalog import Catalog, CatalogEntry
    from hanlin.engine.models.fit import FitVerdict
    from hanlin.engine.runtime.hardware import HardwareInfo

__all__ = [
    "DEFAULT_PUBLISHERS",
    "SORTS",
    "HubFileGroup",
    "HubRepo",
    "HubTreeFile",
    "LabsResult",
    "files_for_repos",
    "fit_groups",
    "group_gguf_files",
    "guess_family_and_roles",
    "is_projector",
    "list_gguf_files",
    "list_repo_files",
    "new_from_labs",
    "quantization_of",
    "search_hub",
    "split_shard_name",
    "trusted_publishers",
]

#: "New from the labs" when settings.trusted_publishers is absent
DEFAULT_PUBLISHERS: tuple[str, ...] = (
    "Qwen",
    "deepseek-ai",
    "zai-org",
    "moonshotai",
    "MiniMaxAI",
    "unsloth",
    "bartowski",
    "ggml-org",
    "lmstudio-community",
)

#: the CLI's --sort names -> huggingface_hub's list_models sort keys
SORTS: dict[str, str] = {"downloads": "downloads", "updated": "last_modified"}

#: what list_models asks the Hub to include for each repo
_EXPAND = ["author", "downloads", "likes", "lastModified", "gated", "private", "tags", "gguf"]

#: parallel requests for repo file lists (the Hub is fine with a few at once)
MAX_PARALLEL = 4


# --------------------------------------------------------------------------- names


def split_shard_name(path: str) -> tuple[str, int, int] | None:
    """`DIR/NAME-00001-of-00003.gguf` -> (`DIR/NAME`, 1, 3); None when not a split part.

    The store's shard rule (engine/store/shards.py), as a plain tuple.
    """
    name = parse_shard_name(path)
    return (name.stem, name.index, name.count) if name is not None else None


def is_projector(path: str) -> bool:
    """A vision projector (`mmproj-*.gguf`): an add-on for a vision model, not a model."""
    return is_projector_file(path)


_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])("
    r"(?:UD-)?I?Q[1-8](?:_(?:K|0|1|XXS|XS|S|M|L|XL|NL))+"
    r"|(?:UD-)?TQ[12]_0"
    r"|MXFP4(?:_MOE)?"
    r"|BF16|F16|FP16|F32|FP8"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def quantization_of(filename: str) -> str | None:
    """The quantization named in a GGUF file name (`Qwen3-4B-Q4_K_M.gguf` -> `Q4_K_M`)."""
    name = PurePosixPath(filename).name
    shard = split_shard_name(name)
    stem = shard[0] if shard else re.sub(r"\.gguf$", "", name, flags=re.IGNORECASE)
    found = _QUANT_RE.findall(stem)
    if not found:
        return None
    return found[-1].upper()


_PARAMS_RE = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)[Bb](?![A-Za-z0-9])")
_ACTIVE_RE = re.compile(r"(?<![A-Za-z0-9])A\d+(?:\.\d+)?B(?![A-Za-z0-9])", re.IGNORECASE)


def parameters_of(repo: str) -> str | None:
    """The parameter count in a repo name (`Qwen3-30B-A3B-GGUF` -> `30B`), if it names one."""
    match = _PARAMS_RE.search(repo.split("/")[-1])
    return f"{match.group(1)}B" if match else None


#: architecture hints from a repo name, for when the Hub reports none (first match wins)
_ARCH_HINTS: tuple[tuple[str, str, str | None], ...] = (
    # (pattern, dense architecture, mixture-of-experts architecture)
    (r"qwen3[._-]?next", "qwen3next", "qwen3next"),
    (r"qwen3[._][56]", "qwen35", "qwen35moe"),
    (r"qwen3(?![._]?\d)", "qwen3", "qwen3moe"),
    (r"qwen2[._]5|qwen2(?!\d)", "qwen2", "qwen2moe"),
    (r"codegeex4", "chatglm", None),
    (r"glm-?4[._][5-9]|glm-?5", "glm4moe", "glm4moe"),
    (r"glm-?4", "glm4", "glm4"),
    (r"deepseek[-_]?(?:coder[-_]?v2|v2|v3)", "deepseek2", None),
    (r"kimi[-_]?linear", "kimi-linear", None),
    (r"minimax[-_]?m2", "minimax-m2", None),
)

_CODER_RE = re.compile(r"coder|codegeex|starcoder|codestral|codellama|codeqwen")
_CHAT_RE = re.compile(
    r"instruct|chat|thinking|(?<![a-z])it(?![a-z])|(?<![a-z])r1(?![a-z])|codegeex4-all|assistant"
)


def guess_family_and_roles(
    repo: str,
    file: str | None = None,
    *,
    architecture: str | None = None,
) -> tuple[str, tuple[str, ...]]:
    """A family (engine/models/families.py) and roles from the repo name and the architecture.

    Coding models without an instruct/chat marker are completion models; coding instruct
    models do both; everything else is a chat model. Only a guess: after a download the
    store reads the GGUF header, and the user can correct the family.
    """
    text = f"{repo.split('/')[-1]} {PurePosixPath(file).name if file else ''}".lower()
    arch = (architecture or "").lower() or _arch_from_name(text)
    family = guess_family(arch, repo.split("/")[-1], file)
    if family == GENERIC_FAMILY and architecture:
        hinted = _arch_from_name(text)
        if hinted and hinted != arch:
            family = guess_family(hinted, repo.split("/")[-1], file)
    coder = _CODER_RE.search(text) is not None
    chat = _CHAT_RE.search(text) is not None
    if coder and not chat:
        roles: tuple[str, ...] = ("completion",)
    elif coder:
        roles = ("chat", "completion")
    else:
        roles = ("chat",)
    return family, roles


def _arch_from_name(text: str) -> str:
    moe = _ACTIVE_RE.search(text) is not None
    for pattern, dense, mixture in _ARCH_HINTS:
        if re.search(pattern, text):
            return (mixture or dense) if moe else dense
    return ""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class HubTreeFile:
    """One file of a repo's tree: its path, size and LFS sha256 (None for a git file)."""

    path: str
    size: int | None
    sha256: str | None = None


@dataclass(frozen=True)
class HubFileGroup:
    """What one pull gets: a single GGUF or a whole split set, with its total size."""

    repo: str
    #: the quantization (`Q4_K_M`, `UD-Q4_K_XL`), or the file's stem when the name has none
    label: str
    quantization: str | None
    #: every file of the group in order (one for a single file, all parts of a split set)
    files: tuple[str, ...]
    size_bytes: int | None
    sha256: tuple[str | None, ...]
    #: parts of a split set (1 for a single file)
    shard_count: int = 1
    #: part numbers of a split set that the Hub does not have
    missing: tuple[int, ...] = ()
    revision: str | None = None
    fit: FitVerdict | None = None
    #: the catalog id when this file is a catalog entry (pull it by that id)
    catalog_id: str | None = None

    @property
    def first_file(self) -> str:
        return self.files[0]

    @property
    def sharded(self) -> bool:
        return self.shard_count > 1

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def missing_text(self) -> str:
        """`part 2 of 3 missing` / `parts 2, 3 of 3 missing` ("" when complete)."""
        if not self.missing:
            return ""
        word = "part" if len(self.missing) == 1 else "parts"
        listed = ", ".join(str(i) for i in self.missing)
        return f"{word} {listed} of {self.shard_count} missing"

    @property
    def ref(self) -> str:
        """What `hanlin models pull` takes: the catalog id, else `hf.co/OWNER/REPO/FILE`."""
        if self.catalog_id:
            return self.catalog_id
        at = f"@{self.revision}" if self.revision and self.revision != "main" else ""
        return f"hf.co/{self.repo}/{self.first_file}{at}"

    def to_json(self) -> dict[str, Any]:
        fit = self.fit
        return {
            "label": self.label,
            "quantization": self.quantization,
            "files": list(self.files),
            "size_bytes": self.size_bytes,
            "sha256": list(self.sha256),
            "shards": self.shard_count,
            "complete": self.complete,
            "missing_shards": list(self.missing),
            "ref": self.ref,
            "catalog_id": self.catalog_id,
            "fit": (
                {
                    "level": fit.level,
                    "need_bytes": fit.need_bytes,
                    "reason": fit.reason,
                    "estimated": fit.estimated,
                }
                if fit is not None
                else None
            ),
        }


@dataclass(frozen=True)
class HubRepo:
    """A GGUF repository found on the Hub, with what its listing said about it."""

    repo: str
    author: str | None
    downloads: int | None
    likes: int | None
    last_modified: datetime | None
    #: "auto" / "manual" when the license must be accepted first, else None
    gated: str | None
    private: bool
    tags: tuple[str, ...]
    architecture: str | None
    context_length: int | None
    family: str
    roles: tuple[str, ...]
    parameters: str | None

    @property
    def page_url(self) -> str:
        return f"https://huggingface.co/{self.repo}"

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "author": self.author,
            "downloads": self.downloads,
            "likes": self.likes,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
            "gated": self.gated,
            "private": self.private,
            "architecture": self.architecture,
            "context_length": self.context_length,
            "parameters": self.parameters,
            "family": self.family,
            "roles": list(self.roles),
            "url": self.page_url,
        }


@dataclass
class LabsResult:
    """What "New from the labs" found: the newest repos, and publishers that failed."""

    repos: list[HubRepo]
    publishers: list[str]
    failed: dict[str, HanlinError] = field(default_factory=dict)


# --------------------------------------------------------------------------- the Hub


def _api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_endpoint(), token=hub_token())


def _offline_error(what: str) -> OfflineError:
    return OfflineError(
        f"Offline mode is on (HF_HUB_OFFLINE is set), so {what}",
        "unset HF_HUB_OFFLINE to reach the Hub; installed models and"
        " `hanlin models scan` work offline",
    )


def _hub_failures() -> tuple[type[Exception], ...]:
    """What huggingface_hub's listings raise for reasons outside Hanlin (HTTP, network,
    offline mode, a repo id the Hub would refuse); anything else is a bug and surfaces."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    from hanlin.engine.store.hub_download import httpx

    return (HfHubHTTPError, OfflineModeIsEnabled, HFValidationError, httpx.HTTPError)


def _listing_error(exc: Exception, what: str, repo: str | None = None) -> HanlinError:
    """The engine error for a failed Hub listing, saying what to do next."""
    from huggingface_hub import errors as hf_errors

    from hanlin.engine.store.hub_download import httpx

    page = f"https://huggingface.co/{repo}" if repo else "https://huggingface.co"
    token = hub_token()
    if isinstance(exc, hf_errors.HFValidationError):
        return UnknownModelError(
            f"`{repo}` is not a valid Hub repository id ({exc})", "write it as OWNER/REPO"
        )
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return _offline_error(f"{what} is not possible")
    if isinstance(exc, hf_errors.GatedRepoError):
        hint = (
            f"your HF_TOKEN has no access yet: accept the license at {page}"
            if token
            else f"accept the license at {page}, then set HF_TOKEN to a token of that account"
        )
        return AuthError(f"`{repo}` is gated: its license must be accepted first", hint)
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, hf_errors.RepositoryNotFoundError) or (repo and status == 404):
        hint = (
            "check the name; your HF_TOKEN may not have access to it"
            if token
            else "check the name; if it is private or gated, set HF_TOKEN"
            f" (and accept the license at {page})"
        )
        return NotFoundOnHubError(f"Repository `{repo}` was not found on the Hub", hint)
    if status in (401, 403):
        hint = (
            f"your HF_TOKEN has no access: accept the license at {page} or use another token"
            if token
            else f"set HF_TOKEN to a Hugging Face token (and accept the license at {page})"
        )
        name = f"`{repo}`" if repo else "the Hub"
        return AuthError(f"The Hub refused access to {name} (HTTP {status})", hint)
    if status == 429:
        return DownloadError(
            f"The Hub is limiting requests, so {what} failed (HTTP 429)",
            "wait a minute and try again; a HF_TOKEN raises the limit",
        )
    if status is not None:
        return DownloadError(f"The Hub answered HTTP {status}, so {what} failed", "try again later")
    if isinstance(exc, httpx.TransportError):
        return OfflineError(
            f"Cannot reach the Hub at {hub_endpoint()}, so {what} failed ({exc})",
            "check the network connection or proxy (HTTPS_PROXY)",
        )
    return DownloadError(f"{what[:1].upper()}{what[1:]} failed: {exc}", "try again later")


def _as_repo(info: Any) -> HubRepo:
    gguf = getattr(info, "gguf", None) or {}
    architecture = gguf.get("architecture") if isinstance(gguf, dict) else None
    context = gguf.get("context_length") if isinstance(gguf, dict) else None
    repo_id = str(info.id)
    family, roles = guess_family_and_roles(
        repo_id, architecture=architecture if isinstance(architecture, str) else None
    )
    gated = getattr(info, "gated", None)
    return HubRepo(
        repo=repo_id,
        author=getattr(info, "author", None) or repo_id.split("/")[0],
        downloads=getattr(info, "downloads", None),
        likes=getattr(info, "likes", None),
        last_modified=getattr(info, "last_modified", None),
        gated=gated if isinstance(gated, str) and gated else None,
        private=bool(getattr(info, "private", False)),
        tags=tuple(getattr(info, "tags", None) or ()),
        architecture=architecture if isinstance(architecture, str) else None,
        context_length=context if isinstance(context, int) and context > 0 else None,
        family=family,
        roles=roles,
        parameters=parameters_of(repo_id),
    )


def search_hub(
    query: str | None,
    *,
    author: str | None = None,
    sort: str = "downloads",
    limit: int = 20,
    cancel: CancelToken | None = None,
) -> list[HubRepo]:
    """GGUF repositories matching `query` (and `author`), most downloaded or newest first."""
    cancel = cancel or NEVER_CANCELLED
    if sort not in SORTS:
        raise UnknownModelError(f"Unknown sort order `{sort}`", f"use one of: {', '.join(SORTS)}")
    if not (query or "").strip() and not (author or "").strip():
        raise UnknownModelError(
            "Nothing to search for", "give a search text (e.g. `qwen3`) or --author ORG"
        )
    if limit < 1:
        raise UnknownModelError("--limit must be at least 1", "e.g. --limit 20")
    what = f"searching the Hub for `{query or author}`"
    if is_offline():
        raise _offline_error("the Hub cannot be searched")
    cancel.raise_if_cancelled()
    try:
        found = _api().list_models(
            search=(query or "").strip() or None,
            author=(author or "").strip() or None,
            filter="gguf",
            sort=SORTS[sort],
            limit=limit,
            expand=_EXPAND,
        )
        return [_as_repo(info) for info in found]
    except _hub_failures() as exc:
        raise _listing_error(exc, what) from exc


def trusted_publishers(settings: Any = None) -> list[str]:
    """`settings.trusted_publishers`, or the built-in list when the setting is absent."""
    if settings is None:
        from hanlin.engine.core.settings import load_settings

        settings = load_settings().settings
    chosen = getattr(settings, "trusted_publishers", None)
    return list(DEFAULT_PUBLISHERS if chosen is None else chosen)


def new_from_labs(
    publishers: Sequence[str] | None = None,
    *,
    limit: int = 20,
    per_publisher: int | None = None,
    cancel: CancelToken | None = None,
) -> LabsResult:
    """The most recently updated GGUF repos of the trusted publishers, newest first.

    A publisher the Hub cannot list is reported in `failed`; only when none can be read
    does this raise (the first publisher's error).
    """
    cancel = cancel or NEVER_CANCELLED
    names = list(publishers) if publishers is not None else trusted_publishers()
    if not names:
        raise UnknownModelError(
            "No trusted publishers to look at",
            "set trusted_publishers in settings.toml, or remove it for the default list",
        )
    if is_offline():
        raise _offline_error("new models cannot be looked up on the Hub")
    each = per_publisher or limit
    api = _api()

    def one(name: str) -> list[HubRepo] | HanlinError:
        if cancel.cancelled:
            return []
        try:
            found = api.list_models(
                author=name, filter="gguf", sort="last_modified", limit=each, expand=_EXPAND
            )
            return [_as_repo(info) for info in found]
        except _hub_failures() as exc:
            return _listing_error(exc, f"listing the models of `{name}`")

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names))) as pool:
        answers = list(pool.map(one, names))
    cancel.raise_if_cancelled()
    repos: dict[str, HubRepo] = {}
    failed: dict[str, HanlinError] = {}
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, HanlinError):
            failed[name] = answer
            continue
        for repo in answer:
            repos.setdefault(repo.repo, repo)
    if failed and not repos and len(failed) == len(names):
        raise next(iter(failed.values()))
    newest = sorted(
        repos.values(),
        key=lambda r: r.last_modified.timestamp() if r.last_modified else 0.0,
        reverse=True,
    )
    return LabsResult(newest[:limit], names, failed)


def list_repo_files(
    repo: str, *, revision: str | None = None, cancel: CancelToken | None = None
) -> list[HubTreeFile]:
    """Every file of a repo (recursively) with its size and LFS sha256."""
    cancel = cancel or NEVER_CANCELLED
    if is_offline():
        raise _offline_error(f"the files of `{repo}` cannot be listed")
    cancel.raise_if_cancelled()
    try:
        entries = _api().list_repo_tree(repo, recursive=True, revision=revision)
        out: list[HubTreeFile] = []
        for entry in entries:
            size = getattr(entry, "size", None)
            if size is None or not hasattr(entry, "blob_id"):
                continue  # a folder
            lfs = getattr(entry, "lfs", None)
            out.append(HubTreeFile(entry.path, int(size), getattr(lfs, "sha256", None)))
            cancel.raise_if_cancelled()
        return out
    except _hub_failures() as exc:
        raise _listing_error(exc, f"listing the files of `{repo}`", repo) from exc


def group_gguf_files(
    repo: str, files: Iterable[HubTreeFile], *, revision: str | None = None
) -> list[HubFileGroup]:
    """GGUF files grouped into what one pull gets, smallest first; projectors left out."""
    singles: list[HubFileGroup] = []
    sets: dict[tuple[str, int], dict[int, HubTreeFile]] = {}
    for f in files:
        if not f.path.lower().endswith(".gguf") or is_projector(f.path):
            continue
        shard = split_shard_name(f.path)
        if shard is None:
            quant = quantization_of(f.path)
            singles.append(
                HubFileGroup(
                    repo=repo,
                    label=quant or PurePosixPath(f.path).name[: -len(".gguf")],
                    quantization=quant,
                    files=(f.path,),
                    size_bytes=f.size,
                    sha256=(f.sha256,),
                    revision=revision,
                )
            )
            continue
        stem, index, count = shard
        sets.setdefault((stem, count), {})[index] = f
    groups = list(singles)
    for (stem, count), parts in sets.items():
        present = [parts[i] for i in sorted(parts)]
        missing = tuple(i for i in range(1, count + 1) if i not in parts)
        sizes = [p.size for p in present]
        quant = quantization_of(PurePosixPath(stem).name + ".gguf")
        groups.append(
            HubFileGroup(
                repo=repo,
                label=quant or PurePosixPath(stem).name,
                quantization=quant,
                files=tuple(p.path for p in present),
                size_bytes=None if any(s is None for s in sizes) else sum(s or 0 for s in sizes),
                sha256=tuple(p.sha256 for p in present),
                shard_count=count,
                missing=missing,
                revision=revision,
            )
        )
    groups.sort(key=lambda g: (g.size_bytes is None, g.size_bytes or 0, g.label, g.first_file))
    return groups


def fit_groups(
    groups: Sequence[HubFileGroup],
    hw: HardwareInfo,
    *,
    catalog: Catalog | None = None,
    repo: HubRepo | None = None,
) -> list[HubFileGroup]:
    """The groups with a fit verdict for this machine (and their catalog id, if any)."""
    from hanlin.engine.models.fit import fit_for_entry

    out = []
    for group in groups:
        entry = _catalog_entry(catalog, group)
        if entry is not None:
            out.append(replace(group, fit=fit_for_entry(entry, hw), catalog_id=entry.id))
            continue
        if group.size_bytes is None or not group.complete:
            out.append(group)
            continue
        out.append(replace(group, fit=fit_for_entry(_entry_for(group, repo), hw)))
    return out


def _catalog_entry(catalog: Catalog | None, group: HubFileGroup) -> CatalogEntry | None:
    if catalog is None:
        return None
    for entry in catalog:
        if entry.repo.lower() == group.repo.lower() and entry.file == group.first_file:
            return entry
    return None


def _entry_for(group: HubFileGroup, repo: HubRepo | None) -> CatalogEntry:
    """A stand-in catalog entry with the Hub's real size, for the fit verdict only."""
    from hanlin.engine.models.catalog import CatalogEntry
    from hanlin.engine.models.fit import DEFAULT_N_CTX

    family, roles = (repo.family, repo.roles) if repo else guess_family_and_roles(group.repo)
    return CatalogEntry(
        id="hub-file",
        name=group.label,
        publisher=group.repo.split("/")[0],
        family=family,
        parameters=(repo.parameters if repo else parameters_of(group.repo)) or "",
        quantization=(group.quantization or "").removeprefix("UD-"),
        repo=group.repo,
        file=group.first_file,
        revision=group.revision,
        size_bytes=group.size_bytes,
        sha256=None,
        context_length=(repo.context_length if repo else None) or DEFAULT_N_CTX,
        roles=roles,
        license="",
        description="",
    )


def list_gguf_files(
    repo: str | HubRepo,
    *,
    revision: str | None = None,
    hw: HardwareInfo | None = None,
    catalog: Catalog | None = None,
    cancel: CancelToken | None = None,
) -> list[HubFileGroup]:
    """A repo's GGUF files grouped by quantization (split sets folded), with fit verdicts."""
    info = repo if isinstance(repo, HubRepo) else None
    name = info.repo if info else str(repo)
    groups = group_gguf_files(
        name, list_repo_files(name, revision=revision, cancel=cancel), revision=revision
    )
    if hw is None and catalog is None:
        return groups
    if hw is None:
        from hanlin.engine.runtime.hardware import detect_hardware

        hw = detect_hardware()
    return fit_groups(groups, hw, catalog=catalog, repo=info)


def files_for_repos(
    repos: Sequence[HubRepo],
    *,
    hw: HardwareInfo | None = None,
    catalog: Catalog | None = None,
    cancel: CancelToken | None = None,
    on_repo: Callable[[HubRepo, list[HubFileGroup] | HanlinError], None] | None = None,
) -> dict[str, list[HubFileGroup] | HanlinError]:
    """File groups of several repos, a few at a time; a repo that fails gets its error."""
    cancel = cancel or NEVER_CANCELLED

    def one(repo: HubRepo) -> list[HubFileGroup] | HanlinError:
        if cancel.cancelled:
            return []
        try:
            answer: list[HubFileGroup] | HanlinError = list_gguf_files(
                repo, hw=hw, catalog=catalog, cancel=cancel
            )
        except HanlinError as exc:
            answer = exc
        if on_repo is not None:
            on_repo(repo, answer)
        return answer

    if not repos:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(repos))) as pool:
        answers = list(pool.map(one, repos))
    cancel.raise_if_cancelled()
    return {repo.repo: answer for repo, answer in zip(repos, answers, strict=True)}
