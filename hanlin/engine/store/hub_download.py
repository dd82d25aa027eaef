"""Resumable downloads of single files from the Hugging Face Hub into a stable `.part` file.

Why not `hf_hub_download`: it resumes a dropped connection within one call, but
writes to a process-unique temp file, so after Ctrl-C, a crash or a kill the
next call starts again from zero (see DESIGN.md, "Known traps"). Multi-GB GGUF
files make that unacceptable. So Hanlin asks huggingface_hub for what only it
knows how to get right — the resolve URL (`hf_hub_url`, honouring HF_ENDPOINT),
the file's metadata (`get_hf_file_metadata`: download location, size, sha256
from the LFS X-Linked-Etag, commit), the auth headers (HF_TOKEN) and its shared
HTTP session (proxies from the environment, offline mode via HF_HUB_OFFLINE) —
and owns the transfer itself:

- bytes go to a `.part` file we keep, opened unbuffered so a killed process
  loses at most the chunk in flight; the next call continues with `Range`;
- a server that ignores `Range` (answers 200) restarts the file cleanly;
- a `416` to `Range: bytes=N-` (asked past the end) finishes a `.part` that already holds
  the whole file (`Content-Range: bytes */N`) and restarts one that is not this file's prefix;
- no bytes for `stall_timeout` seconds is a stall: the connection is dropped
  and retried (never hangs forever);
- transient failures (network errors, 5xx, 429) retry with exponential
  backoff; every chunk received resets the retry budget;
- the sha256 is computed while writing (the kept prefix is hashed once on resume);
- a full disk raises DiskFullError and keeps the partial file.

Errors are mapped to engine errors whose message says what to do next.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken, Progress, ProgressCallback
from hanlin.engine.core.errors import (
    AuthError,
    DiskFullError,
    DownloadError,
    HanlinError,
    NotFoundOnHubError,
    OfflineError,
    UnknownModelError,
)
from hanlin.engine.core.units import MiB, format_bytes
from hanlin.engine.store.part_writer import PartWriter

try:  # huggingface_hub >= 1.0 ships its HTTP client as `httpx2` (a renamed httpx)
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older huggingface_hub
    import httpx  # type: ignore[no-redef]

log = logging.getLogger(__name__)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass
class DownloadOptions:
    """Knobs for one download. Tests shrink the timeouts; users rarely need to."""

    chunk_size: int = MiB
    #: seconds without a single byte before the connection counts as stalled
    stall_timeout: float = field(
        default_factory=lambda: float(os.environ.get("HANLIN_STALL_TIMEOUT", "30"))
    )
    connect_timeout: float = 15.0
    #: attempts after a failure that made no progress (progress resets the count)
    max_retries: int = 8
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    #: minimum seconds between progress reports
    progress_interval: float = 0.25


@dataclass(frozen=True)
class HubRef:
    """A file on the Hub: `hf.co/OWNER/REPO/FILE.gguf` (optionally at a revision)."""

    repo: str
    file: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"hf.co/{self.repo}/{self.file}"


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    file: str
    revision: str
    #: the Hub's resolve URL
    url: str
    #: where the bytes are (the CDN location for LFS files)
    location: str
    size: int | None
    #: sha256 of the content when the Hub published one (LFS files), else None
    sha256: str | None
    etag: str | None
    commit: str | None


@dataclass
class DownloadResult:
    sha256: str
    size: int
    #: bytes received over the network in this call (re-sent bytes show up here)
    bytes_received: int
    #: bytes already in the .part file when the call started
    resumed_from: int
    #: times the server ignored Range and the file restarted from zero
    restarts: int
    #: connection attempts that failed and were retried
    retries: int


_HUB_PREFIXES = (
    "https://huggingface.co/",
    "http://huggingface.co/",
    "https://hf.co/",
    "hf.co/",
    "huggingface.co/",
)


_REF_SHAPE = "hf.co/OWNER/REPO/FILE.gguf"


def _bad_ref(ref: str, why: str) -> UnknownModelError:
    return UnknownModelError(
        f"`{ref}` is not a usable Hub reference: {why}", f"write it as {_REF_SHAPE}"
    )


def _segment_problem(
    segment: str, *, what: str = "a path segment", slash_allowed: bool = False
) -> str | None:
    """Why one decoded path segment cannot be used, or None.

    The file path becomes a path under the models folder, so a segment may neither hold a
    separator (an encoded `%2F`, or `\\`, which Windows treats as one) nor climb (`..`).
    """
    if not slash_allowed and "/" in segment:
        return f"{what} contains an encoded `/`"
    if "\\" in segment:
        return f"{what} contains `\\`"
    if ".." in segment:
        return f"{what} contains `..`"
    if segment == ".":
        return f"{what} is `.`"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in segment):
        return f"{what} contains a control character"
    return None


def parse_hub_ref(ref: str) -> HubRef | None:
    """Parse `hf.co/OWNER/REPO/PATH.gguf` (or a huggingface.co URL with /resolve/REV/, /blob/REV/).

    Returns None when `ref` is not a Hub reference (a catalog id, a path). A ref with a Hub
    prefix that cannot be used raises UnknownModelError naming it: no file, a repository id
    the Hub would refuse (huggingface_hub's own validator), or a decoded path segment that
    holds `/`, `\\` or `..`. Refs are refused here, before any path is built from them.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = ref.strip()
    for prefix in _HUB_PREFIXES:
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            break
    else:
        return None
    text = text.split("?", 1)[0].strip("/")
    parts = [unquote(p) for p in text.split("/") if p]
    if len(parts) < 3:
        raise _bad_ref(ref, "it names no file")
    repo = f"{parts[0]}/{parts[1]}"
    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise _bad_ref(ref, f"`{repo}` is not a valid repository id ({exc})") from exc
    rest = parts[2:]
    revision = None
    if len(rest) >= 3 and rest[0] in ("resolve", "blob"):
        revision, rest = rest[1], rest[2:]
    for segment in rest:
        problem = _segment_problem(segment)
        if problem:
            raise _bad_ref(ref, problem)
    file = "/".join(rest)
    if "@" in file and not revision:
        file, revision = file.rsplit("@", 1)
    if revision is not None:
        # `refs/pr/1` is a real revision: it only travels in the URL (quoted), never in a path
        problem = _segment_problem(revision, what="the revision", slash_allowed=True)
        if problem:
            raise _bad_ref(ref, problem)
    if not file:
        raise _bad_ref(ref, "it names no file")
    return HubRef(repo, file, revision or None)


def hub_endpoint() -> str:
    """HF_ENDPOINT read now (huggingface_hub reads it once at import)."""
    return (os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT).rstrip("/")


def hub_token() -> str | None:
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    from huggingface_hub import get_token

    try:
        return get_token()
    except (OSError, UnicodeDecodeError, httpx.HTTPError) as exc:
        # An unreadable token file (or a failed token refresh) must not stop public
        # downloads; a private repo then answers 401 and the message asks for HF_TOKEN.
        log.warning("Could not read the Hugging Face token (%s); continuing without one", exc)
        return None


def is_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if value.strip().lower() in ("1", "on", "yes", "true"):
        return True
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def offline_error() -> OfflineError:
    return OfflineError(
        "Offline mode is on (HF_HUB_OFFLINE is set), so nothing can be downloaded",
        "unset HF_HUB_OFFLINE and run the pull again; installed models still work offline",
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlparse(url)
    return p.scheme, (p.hostname or "").lower(), p.port


def _backoff(options: DownloadOptions, attempt: int) -> float:
    return min(options.backoff_max, options.backoff_base * (2 ** max(0, attempt - 1)))


# --------------------------------------------------------------------------- metadata


def _map_hub_error(exc: Exception, repo: str, file: str, revision: str) -> HanlinError:
    """The engine error for what `get_hf_file_metadata` raised (see `_hub_failures`)."""
    from huggingface_hub import errors as hf_errors

    page = f"https://huggingface.co/{repo}"
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return offline_error()
    if isinstance(exc, hf_errors.GatedRepoError):
        return AuthError(
            f"`{repo}` is a gated repository: its license must be accepted before download",
            f"accept it at {page} and set HF_TOKEN to a token of that account",
        )
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        hint = "check the name"
        hint += (
            "; if it is private, set HF_TOKEN"
            if not hub_token()
            else ("; your HF_TOKEN may not have access to it")
        )
        return NotFoundOnHubError(f"Repository `{repo}` was not found on the Hub", hint)
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return NotFoundOnHubError(
            f"Revision `{revision}` of `{repo}` was not found on the Hub",
            "check the commit or branch name",
        )
    if isinstance(exc, hf_errors.EntryNotFoundError | hf_errors.RemoteEntryNotFoundError):
        return NotFoundOnHubError(
            f"`{file}` is not in `{repo}` (revision {revision})",
            f"check the file name in the repository's file list: {page}/tree/{revision}",
        )
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return _status_error(status, repo, file)
    if isinstance(exc, httpx.TransportError):
        return OfflineError(
            f"Cannot reach the Hub at {hub_endpoint()}: {exc}",
            "check the network connection or proxy (HTTPS_PROXY), then run the pull again",
        )
    # e.g. a redirect loop, or an HTTP error without a response
    return DownloadError(
        f"Looking up `{file}` in `{repo}` failed: {exc}",
        "run the pull again; if it keeps failing, check the network or proxy",
    )


def _status_error(status: int, repo: str, file: str) -> HanlinError:
    page = f"https://huggingface.co/{repo}"
    if status in (401, 403):
        if hub_token():
            hint = f"your HF_TOKEN has no access: accept the license at {page} or use another token"
        else:
            hint = f"set HF_TOKEN to a Hugging Face token (and accept the license at {page})"
        return AuthError(f"The Hub refused access to `{repo}` (HTTP {status})", hint)
    if status in (404, 410):
        return NotFoundOnHubError(
            f"`{file}` was not found in `{repo}` (HTTP {status})", f"check the names at {page}"
        )
    return DownloadError(
        f"The Hub answered HTTP {status} for `{file}` in `{repo}`",
        "try again later; the download resumes where it stopped",
    )


def _is_transient_hf_error(exc: Exception) -> bool:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return status in (408, 429) or status >= 500
    return isinstance(exc, httpx.TransportError)


def _hub_failures() -> tuple[type[Exception], ...]:
    """What `get_hf_file_metadata` raises for reasons outside Hanlin.

    HTTP errors (the Hub's own subclasses included: repo, revision or entry not found,
    gated), network errors and offline mode. Anything else is a bug and surfaces as one.
    """
    from huggingface_hub.errors import OfflineModeIsEnabled

    return (httpx.HTTPError, OfflineModeIsEnabled)


def resolve_remote(
    repo: str,
    file: str,
    revision: str | None = None,
    *,
    options: DownloadOptions | None = None,
    cancel: CancelToken | None = None,
) -> RemoteFile:
    """Ask the Hub where the file is, how big it is, its sha256 and the commit."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    options = options or DownloadOptions()
    cancel = cancel or NEVER_CANCELLED
    revision = revision or "main"
    if is_offline():
        raise offline_error()
    endpoint = hub_endpoint()
    url = hf_hub_url(repo, file, revision=revision, endpoint=endpoint)
    attempt = 0
    while True:
        cancel.raise_if_cancelled()
        try:
            meta = get_hf_file_metadata(
                url, token=hub_token(), timeout=options.connect_timeout, endpoint=endpoint
            )
            break
        except _hub_failures() as exc:
            attempt += 1
            if not _is_transient_hf_error(exc) or attempt > options.max_retries:
                raise _map_hub_error(exc, repo, file, revision) from exc
            if cancel.wait(_backoff(options, attempt)):
                cancel.raise_if_cancelled()
    etag = meta.etag
    sha = etag.lower() if etag and _SHA256_RE.match(etag.lower()) else None
    return RemoteFile(
        repo=repo,
        file=file,
        revision=revision,
        url=url,
        location=meta.location or url,
        size=meta.size,
        sha256=sha,
        etag=etag,
        commit=meta.commit_hash,
    )


def list_repo_files(
    repo: str,
    revision: str | None = None,
    *,
    options: DownloadOptions | None = None,
    cancel: CancelToken | None = None,
) -> list[str]:
    """Every file path in `repo` at `revision` (sub-folders included), from the model info.

    Used to find a shard set when a ref names a model by its stem (`FOLDER/NAME.gguf`) and
    the repository holds only `NAME-00001-of-0000N.gguf`, … Errors are mapped like a pull's.
    """
    from huggingface_hub import HfApi

    options = options or DownloadOptions()
    cancel = cancel or NEVER_CANCELLED
    revision = revision or "main"
    if is_offline():
        raise offline_error()
    api = HfApi(endpoint=hub_endpoint(), token=hub_token() or False)
    attempt = 0
    while True:
        cancel.raise_if_cancelled()
        try:
            info = api.model_info(repo, revision=revision, timeout=options.connect_timeout)
            break
        except _hub_failures() as exc:
            attempt += 1
            if not _is_transient_hf_error(exc) or attempt > options.max_retries:
                raise _map_hub_error(exc, repo, "", revision) from exc
            if cancel.wait(_backoff(options, attempt)):
                cancel.raise_if_cancelled()
    return [s.rfilename for s in (info.siblings or [])]


# --------------------------------------------------------------------------- transfer


class ProgressMeter:
    """Turns byte counts into throttled Progress reports with a smoothed rate and ETA."""

    def __init__(
        self,
        on_progress: ProgressCallback | None,
        total: int | None,
        interval: float,
        detail: str = "",
    ) -> None:
        self._cb = on_progress
        self.total = total
        self._interval = interval
        self._detail = detail
        self._last_emit = 0.0
        self._window: list[tuple[float, int]] = []
        self._started: tuple[float, int] | None = None
        self.rate: float | None = None

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        self._window.append((now, done))
        while len(self._window) > 2 and now - self._window[0][0] > 5.0:
            self._window.pop(0)
        t0, d0 = self._window[0]
        if now - t0 > 0.2:
            self.rate = max(0.0, (done - d0) / (now - t0))
        elif force and self._started is not None and now - self._started[0] > 0:
            # a short transfer: the average since the start is the best estimate
            self.rate = max(0.0, (done - self._started[1]) / (now - self._started[0]))
        if self._started is None:
            self._started = (now, done)
        if self._cb is None or (not force and now - self._last_emit < self._interval):
            return
        self._last_emit = now
        eta = None
        if self.rate and self.total:
            eta = max(0.0, (self.total - done) / self.rate)
        self._cb(
            Progress(
                "download",
                float(done),
                float(self.total) if self.total else None,
                self._detail,
                self.rate,
                eta,
            )
        )

    def restart(self) -> None:
        self._window.clear()
        self._started = None


#: bytes per socket read for downloads (huggingface_hub's HTTP/1.1 stack reads 64 KiB)
NETWORK_READ_SIZE = MiB


def _raise_network_read_size() -> None:
    """Let huggingface_hub's HTTP/1.1 connections read up to 1 MiB per recv.

    Its vendored httpcore reads 64 KiB at a time, and each read costs a dozen
    Python calls (timeouts, h11 parsing, buffer copies): on a multi-GB file that
    is the largest CPU cost after sha256, and measured here it cut pull
    throughput by a third on a loaded 2-core machine. A larger read size only
    changes how much one recv may return, so it is safe for every other request
    the process makes. Guarded: a different huggingface_hub stack is left as is.
    """
    for name in ("httpcore2._sync.http11", "httpcore._sync.http11"):
        try:
            module = __import__(name, fromlist=["HTTP11Connection"])
        except ImportError:
            continue
        conn = getattr(module, "HTTP11Connection", None)
        current = getattr(conn, "READ_NUM_BYTES", None)
        if isinstance(current, int) and current < NETWORK_READ_SIZE:
            conn.READ_NUM_BYTES = NETWORK_READ_SIZE  # type: ignore[union-attr]


class _Transient(Exception):
    """Internal: a failure worth retrying (network error, stall, 5xx)."""


def download_to_part(
    remote: RemoteFile,
    part: Path,
    *,
    cancel: CancelToken | None = None,
    on_progress: ProgressCallback | None = None,
    options: DownloadOptions | None = None,
    refresh: Callable[[], RemoteFile] | None = None,
) -> DownloadResult:
    """Download `remote` into `part`, continuing whatever `part` already holds.

    Returns the sha256 of the whole file. Raises Cancelled (partial kept),
    DiskFullError (partial kept), OfflineError, AuthError, NotFoundOnHubError
    or DownloadError after the retry budget is spent (partial kept).
    """
    options = options or DownloadOptions()
    cancel = cancel or NEVER_CANCELLED
    if remote.size is not None and part.exists() and part.stat().st_size > remote.size:
        part.unlink()  # longer than the file itself: not ours to continue
    writer = PartWriter(part, batch=options.chunk_size)
    try:
        return _transfer(remote, writer, cancel, on_progress, options, refresh)
    except OSError as exc:
        done = writer.written
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(part, done, remote.size) from exc
        raise DownloadError(
            f"Cannot write {part}: {exc.strerror or exc}",
            "check the disk and permissions; the pull resumes from here",
        ) from exc
    finally:
        writer.close()  # whatever was received is written, also on Ctrl-C


def _transfer(
    remote: RemoteFile,
    writer: PartWriter,
    cancel: CancelToken,
    on_progress: ProgressCallback | None,
    options: DownloadOptions,
    refresh: Callable[[], RemoteFile] | None,
) -> DownloadResult:
    from huggingface_hub.utils import build_hf_headers, get_session

    _raise_network_read_size()
    total = remote.size
    done = resumed_from = writer.written
    if done:
        writer.hash_existing(cancel)
    meter = ProgressMeter(on_progress, total, options.progress_interval, remote.file)
    meter.update(done, force=True)
    received = restarts = retries = attempt = 0
    session = get_session()
    timeout = httpx.Timeout(options.stall_timeout, connect=options.connect_timeout)
    while total is None or done < total:
        cancel.raise_if_cancelled()
        if is_offline():
            raise offline_error()
        headers: dict[str, str] = {"Accept-Encoding": "identity"}
        if _origin(remote.location) == _origin(hub_endpoint()):
            headers.update(build_hf_headers(token=hub_token()))
        if done:
            headers["Range"] = f"bytes={done}-"
        got_bytes = False
        try:
            with session.stream(
                "GET", remote.location, headers=headers, timeout=timeout, follow_redirects=True
            ) as resp:
                status = resp.status_code
                if status == 416 and done:
                    # Asked for bytes past the end of the server's file. A complete .part of
                    # announced size never asks, so: a file of unannounced size whose .part
                    # is complete (`bytes */N` with N == done), or a .part that is not a
                    # prefix of the server's file (longer, or no length given): start over.
                    size = _content_range_size(resp.headers.get("Content-Range"))
                    if size is not None and size == done:
                        total = meter.total = size
                        break
                    writer.restart()  # longer than the file, or the length is unknown
                    done = 0
                    restarts += 1
                    meter.restart()
                    continue
                if status in (401, 403, 410) and refresh is not None and attempt == 0:
                    remote = refresh()  # a signed CDN URL may have expired
                    attempt += 1
                    continue
                if status in (408, 429) or status >= 500:
                    raise _Transient(f"HTTP {status}")
                if status >= 400:
                    raise _status_error(status, remote.repo, remote.file)
                if done and status == 200:
                    # The server ignored Range: start the file again from byte 0.
                    writer.restart()
                    done = 0
                    restarts += 1
                    meter.restart()
                elif status == 206:
                    start = _content_range_start(resp.headers.get("Content-Range"))
                    if start != done:
                        raise _Transient(f"server sent range from {start}, asked {done}")
                if total is None:
                    total = _total_from_headers(resp.headers, done)
                    meter.total = total
                # No chunk_size: take what arrives, so a dropped connection loses
                # nothing that reached us (httpx would hold back up to chunk_size).
                for chunk in resp.iter_bytes():
                    if total is not None and done + len(chunk) > total:
                        raise _Transient("server sent more bytes than the file has")
                    writer.append(chunk)
                    done += len(chunk)
                    received += len(chunk)
                    got_bytes = True
                    attempt = 0
                    meter.update(done)
                    cancel.raise_if_cancelled()
                if total is None:
                    total = done  # unknown length and the stream ended cleanly
                elif done < total:
                    raise _Transient("connection closed early")
        except (_Transient, httpx.TransportError) as exc:
            done = writer.flush()
            attempt = 0 if got_bytes else attempt + 1
            retries += 1
            if attempt > options.max_retries:
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    raise OfflineError(
                        f"Cannot reach {urlparse(remote.location).netloc} to download"
                        f" `{remote.file}` ({exc})",
                        "check the network or proxy, then run the pull again: it resumes",
                    ) from exc
                raise DownloadError(
                    f"Download of `{remote.file}` keeps failing ({exc});"
                    f" {done} of {total or '?'} bytes kept",
                    "run the pull again later: it resumes where it stopped",
                ) from exc
            pause = 0.05 if got_bytes else _backoff(options, max(attempt, 1))
            if cancel.wait(pause):
                cancel.raise_if_cancelled()
        except httpx.HTTPError as exc:  # not worth retrying (e.g. a redirect loop)
            raise DownloadError(
                f"Download of `{remote.file}` failed: {exc}",
                "run the pull again; if it keeps failing, check the network or proxy",
            ) from exc
    sha = writer.sha256()
    done = writer.written
    meter.update(done, force=True)
    return DownloadResult(sha, done, received, resumed_from, restarts, retries)


def _content_range_size(value: str | None) -> int | None:
    """The complete length from `Content-Range: bytes */N` (or `bytes A-B/N`), if given."""
    match = re.match(r"bytes (?:\*|\d+-\d+)/(\d+)$", (value or "").strip())
    return int(match.group(1)) if match else None


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else None


def _total_from_headers(headers: Mapping[str, str], done: int) -> int | None:
    content_range = headers.get("Content-Range") or ""
    match = re.match(r"bytes \d+-\d+/(\d+)", content_range)
    if match:
        return int(match.group(1))
    length = headers.get("Content-Length")
    return done + int(length) if length and length.isdigit() else None


def _disk_full(part: Path, done: int, total: int | None) -> DiskFullError:
    need = f"{format_bytes(total - done)} more" if total else "more space"
    return DiskFullError(
        f"The disk is full: {part.name} stopped at {format_bytes(done)}",
        f"free {need} on {part.parent} and run the pull again: the partial file is kept"
        " and the download resumes",
    )


__all__ = [
    "DownloadOptions",
    "DownloadResult",
    "HubRef",
    "ProgressMeter",
    "RemoteFile",
    "download_to_part",
    "hub_endpoint",
    "hub_token",
    "is_offline",
    "list_repo_files",
    "offline_error",
    "parse_hub_ref",
    "resolve_remote",
]
