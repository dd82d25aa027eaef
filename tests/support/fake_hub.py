"""A real local HTTP server that speaks the Hugging Face Hub's download protocol.

Why: the Hub is unreachable from CI, and download code is only trustworthy when
it has met a server that drops connections, stalls, ignores Range and lies
about bytes. This server runs on 127.0.0.1 (ephemeral ports) in a thread, is
reached through `HF_ENDPOINT`, and serves real bytes (GGUF files).

Protocol (what huggingface_hub 2.x and Hanlin's store use):

- `HEAD|GET {endpoint}/{owner}/{repo}/resolve/{revision}/{path}`
  - LFS files (the default): `302 Found` with `Location` on the *CDN* server
    (a second port, so huggingface_hub does not follow it: a different origin,
    as on the real Hub), plus `X-Repo-Commit`, `X-Linked-Etag: "<sha256>"`,
    `X-Linked-Size`, `ETag`.
  - regular (non-LFS) files: `200` with `ETag: "<git-sha1>"`, `Content-Length`,
    `X-Repo-Commit`, the body on GET.
  - unknown repo: `401` + `X-Error-Code: RepoNotFound` (as the Hub answers
    anonymous users); unknown file: `404` + `X-Error-Code: EntryNotFound`;
    unknown revision: `404` + `X-Error-Code: RevisionNotFound`; gated repo
    without the right token: `401`/`403` + `X-Error-Code: GatedRepo`.
- `HEAD|GET {cdn}/blobs/{sha256}`: the bytes, `Accept-Ranges: bytes`, `Range:
  bytes=N-` → `206` + `Content-Range`; N at or past the end → `416` + `Content-Range:
  bytes */SIZE` (as the Hub's CDN answers). Misbehaviour switches apply here.
- `GET {endpoint}/api/models/{owner}/{repo}[/revision/{rev}]`: a minimal
  model-info JSON (`id`, `sha`, `siblings` with `rfilename`/`size`).
- `GET {endpoint}/api/models?search=&author=&filter=&sort=&limit=`: the repo listing
  `HfApi.list_models` reads (`id`, `author`, `downloads`, `likes`, `lastModified`, `gated`,
  `private`, `tags`, `gguf`); `filter=gguf` keeps repos with a `.gguf` file, `sort` is
  `downloads` / `lastModified` / `likes` (descending, as the Hub does); private repos are
  listed only for their token (`set_repo_info(..., private_token=)`).
- `GET {endpoint}/api/models/{owner}/{repo}/tree/{rev}[/{path}]?recursive=`: the tree
  `HfApi.list_repo_tree` reads (`type`, `path`, `size`, `oid`, `lfs: {oid: sha256, size,
  pointerSize}`, folders as `directory`); gated repos want their token here too.

API:

    with FakeHub() as hub:                       # or hub.start() / hub.stop()
        f = hub.add_file("Qwen/Tiny-GGUF", "tiny-q4_k_m.gguf", data)   # bytes or Path
        f.sha256, f.size, f.commit                # what the Hub would publish
        hub.endpoint                              # put this in HF_ENDPOINT
        hub.faults.drop_after = 1_000_000         # misbehave (see Faults)
        hub.stats.body_bytes                      # body bytes sent by the CDN (GET)
        hub.stats.requests                        # [(method, path, range, status)]
        hub.reset()                               # clear faults and stats

`add_shard_set(repo, "Q4_K_M", [shard paths])` serves a split model in a sub-folder
(write one with tests/support/split_gguf.py); `faults.only_file = "Q4_K_M/X-00002-of-00002.gguf"`
aims the byte faults at one file (a cut in the second shard).
`add_file(..., lfs=False)` serves a regular git file; `gated_token="hf_x"`
makes the repo require `Authorization: Bearer hf_x`; `commit=` fixes the
commit hash. `make_gguf(...)` writes small valid GGUF files (pure Python) for
tests; `write_gguf_file(path, size)` writes a large one without holding it in
memory.

The pytest fixture `fake_hub` (tests/support/fake_hub_fixtures.py) starts one
per test and sets HF_ENDPOINT; import it with
`from tests.support.fake_hub_fixtures import fake_hub  # noqa: F401`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Faults:
    """Misbehaviour switches. Each applies to CDN GETs (the byte transfer)."""

    #: close the connection after sending this many body bytes in one response
    drop_after: int | None = None
    #: how many responses get dropped (None: every one)
    drop_times: int | None = 1
    #: stop sending after this many body bytes and hang for `stall_seconds`
    stall_after: int | None = None
    stall_seconds: float = 30.0
    stall_times: int | None = 1
    #: answer 200 with the whole file even when asked for a Range
    ignore_range: bool = False
    #: flip bytes in what is sent (the published sha256 stays the true one)
    corrupt: bool = False
    #: answer this status instead of the bytes, `status_times` times (None: always)
    status: int | None = None
    status_times: int | None = None
    #: same, but on the resolve endpoint (HEAD/GET metadata)
    resolve_status: int | None = None
    resolve_status_times: int | None = None
    #: publish no size on the resolve endpoint (no X-Linked-Size): the client learns the
    #: length only from the transfer, as with files whose size the Hub does not announce
    hide_size: bool = False
    #: bytes per second (None: as fast as possible)
    rate: float | None = None
    #: send a Content-Length smaller than the body would be (truncated file claims)
    short_by: int = 0
    #: apply drop / stall / corrupt / rate only to the file at this path in its repo (e.g. the
    #: second shard of a split model); None: to every file
    only_file: str | None = None


@dataclass
class Stats:
    body_bytes: int = 0
    requests: list[tuple[str, str, str | None, int]] = field(default_factory=list)
    drops: int = 0
    stalls: int = 0

    def gets(self) -> list[tuple[str, str, str | None, int]]:
        return [r for r in self.requests if r[0] == "GET" and r[1].startswith("/blobs/")]


@dataclass
class HubFile:
    repo: str
    path: str
    revision: str
    commit: str
    sha256: str
    git_sha1: str
    size: int
    lfs: bool
    data: bytes | None = None
    source: Path | None = None

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        assert self.source is not None
        with open(self.source, "rb") as handle:
            handle.seek(start)
            return handle.read(end - start)


@dataclass
class _Repo:
    name: str
    commit: str
    gated_token: str | None = None
    files: dict[str, HubFile] = field(default_factory=dict)
    #: what the listing endpoint reports (set_repo_info)
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2025-01-01T00:00:00.000Z"
    tags: list[str] = field(default_factory=list)
    gguf: dict[str, object] | None = None
    private_token: str | None = None


def _sha256_of(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    with open(data, "rb") as handle:
        for block in iter(lambda: handle.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FakeHub:
    """Two threaded HTTP servers: the Hub API/resolve endpoint and a CDN for blobs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.faults = Faults()
        self.stats = Stats()
        self._repos: dict[str, _Repo] = {}
        self._blobs: dict[str, HubFile] = {}
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._hub: ThreadingHTTPServer | None = None
        self._cdn: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeHub:
        handler = _make_handler(self)
        self._hub = ThreadingHTTPServer((self.host, 0), handler)
        self._cdn = ThreadingHTTPServer((self.host, 0), handler)
        for server in (self._hub, self._cdn):
            server.daemon_threads = True
            thread = threading.Thread(
                target=server.serve_forever, daemon=True, kwargs={"poll_interval": 0.05}
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._hub is not None, "start() the hub first"
        return f"http://{self.host}:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        assert self._cdn is not None, "start() the hub first"
        return f"http://{self.host}:{self._cdn.server_address[1]}"

    # ------------------------------------------------------------------ content
    def add_file(
        self,
        repo: str,
        path: str,
        data: bytes | Path,
        *,
        revision: str = "main",
        commit: str | None = None,
        lfs: bool = True,
        gated_token: str | None = None,
    ) -> HubFile:
        with self._lock:
            entry = self._repos.get(repo)
            if entry is None:
                entry = _Repo(repo, commit or hashlib.sha1(repo.encode()).hexdigest())
                self._repos[repo] = entry
            if commit:
                entry.commit = commit
            if gated_token:
                entry.gated_token = gated_token
            size = len(data) if isinstance(data, bytes) else Path(data).stat().st_size
            sha = _sha256_of(data)
            git_sha1 = hashlib.sha1(f"blob {size}\0".encode() + sha.encode()).hexdigest()
            hub_file = HubFile(
                repo,
                path,
                revision,
                entry.commit,
                sha,
                git_sha1,
                size,
                lfs,
                data if isinstance(data, bytes) else None,
                None if isinstance(data, bytes) else Path(data),
            )
            entry.files[path] = hub_file
            self._blobs[sha] = hub_file
            return hub_file

    def add_shard_set(
        self, repo: str, folder: str, shards: list[Path], **kwargs: object
    ) -> list[HubFile]:
        """Serve the files of a split model (`NAME-00001-of-0000N.gguf`, …) in `folder`.

        `folder` is a sub-folder of the repo (`Q4_K_M`, as unsloth's large repos have) or ""
        for the top; `kwargs` go to `add_file` for each shard.
        """
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        return [
            self.add_file(repo, prefix + Path(s).name, Path(s), **kwargs)  # type: ignore[arg-type]
            for s in shards
        ]

    def set_repo_info(
        self,
        repo: str,
        *,
        downloads: int | None = None,
        likes: int | None = None,
        last_modified: str | None = None,
        tags: list[str] | None = None,
        gguf: dict[str, object] | None = None,
        private_token: str | None = None,
    ) -> None:
        """What `/api/models` reports for a repo (add its files first); ISO dates."""
        with self._lock:
            entry = self._repos[repo]
            if downloads is not None:
                entry.downloads = downloads
            if likes is not None:
                entry.likes = likes
            if last_modified is not None:
                entry.last_modified = last_modified
            if tags is not None:
                entry.tags = list(tags)
            if gguf is not None:
                entry.gguf = dict(gguf)
            if private_token is not None:
                entry.private_token = private_token

    def reset(self) -> None:
        self.faults = Faults()
        self.stats = Stats()

    # ------------------------------------------------------------------ helpers for handler
    def _take(self, name: str) -> bool:
        """Consume one use of a counted fault; True if it applies now."""
        times_attr = f"{name}_times"
        with self._lock:
            times = getattr(self.faults, times_attr)
            if times is None:
                return True
            if times <= 0:
                return False
            setattr(self.faults, times_attr, times - 1)
            return True


_RESOLVE_RE = re.compile(r"^/(?:models/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_API_RE = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$")
_TREE_RE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$")


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeHub/1.0"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _record(self, status: int) -> None:
            with hub._lock:
                hub.stats.requests.append(
                    (self.command, urlparse(self.path).path, self.headers.get("Range"), status)
                )

        def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            self._record(status)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str | None = None, message: str = "") -> None:
            headers = {"Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            if message:
                headers["X-Error-Message"] = message
            body = json.dumps({"error": message or code or str(status)}).encode()
            self._reply(status, headers, body)

        def do_HEAD(self) -> None:
            self._dispatch()

        def do_GET(self) -> None:
            self._dispatch()

        def _dispatch(self) -> None:
            path = unquote(urlparse(self.path).path)
            port = self.server.server_address[1]
            try:
                if hub._cdn is not None and port == hub._cdn.server_address[1]:
                    self._blob(path)
                elif m := _RESOLVE_RE.match(path):
                    self._resolve(m.group(1), m.group(2), m.group(3))
                elif path.rstrip("/") == "/api/models":
                    self._list_models(parse_qs(urlparse(self.path).query))
                elif m := _TREE_RE.match(path):
                    query = parse_qs(urlparse(self.path).query)
                    self._tree(m.group(1), m.group(2), m.group(3) or "", query)
                elif m := _API_RE.match(path):
                    self._api(m.group(1), m.group(2))
                else:
                    self._error(404, None, "no such endpoint")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _auth_ok(self, repo: _Repo) -> tuple[bool, int]:
            if not repo.gated_token:
                return True, 200
            auth = self.headers.get("Authorization", "")
            if auth == f"Bearer {repo.gated_token}":
                return True, 200
            return False, 403 if auth else 401

        def _resolve(self, repo_name: str, revision: str, file_path: str) -> None:
            if hub.faults.resolve_status and hub._take("resolve_status"):
                self._error(hub.faults.resolve_status, None, "injected")
                return
            repo = hub._repos.get(repo_name)
            if repo is None:
                self._error(401, "RepoNotFound", "Repository not found")
                return
            ok, status = self._auth_ok(repo)
            if not ok:
                self._error(status, "GatedRepo", "Access to model is restricted")
                return
            if revision not in ("main", repo.commit) and not any(
                f.revision == revision for f in repo.files.values()
            ):
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            hub_file = repo.files.get(file_path)
            if hub_file is None:
                self._error(404, "EntryNotFound", "Entry not found")
                return
            common = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
            if hub_file.lfs:
                headers = {
                    **common,
                    "Location": f"{hub.cdn}/blobs/{hub_file.sha256}?sig=fake",
                    "X-Linked-Etag": f'"{hub_file.sha256}"',
                    "X-Linked-Size": str(hub_file.size),
                    "ETag": f'"{hub_file.git_sha1}"',
                    "Content-Length": "0",
                }
                if hub.faults.hide_size:
                    del headers["X-Linked-Size"]
                self._reply(302, headers)
                return
            self._send_bytes(hub_file, {**common, "ETag": f'"{hub_file.git_sha1}"'})

        def _api(self, repo_name: str, revision: str | None) -> None:
            repo = hub._repos.get(repo_name)
            if repo is None:
                self._error(401, "RepoNotFound", "Repository not found")
                return
            body = json.dumps(
                {
                    "id": repo_name,
                    "modelId": repo_name,
                    "sha": repo.commit,
                    "gated": bool(repo.gated_token),
                    "siblings": [{"rfilename": p, "size": f.size} for p, f in repo.files.items()],
                }
            ).encode()
            self._reply(200, {"Content-Type": "application/json"}, body)

        def _visible(self, repo: _Repo) -> bool:
            token = repo.private_token
            return token is None or self.headers.get("Authorization", "") == f"Bearer {token}"

        def _list_models(self, query: dict[str, list[str]]) -> None:
            def arg(name: str) -> str | None:
                values = query.get(name)
                return values[0] if values else None

            search = (arg("search") or "").lower()
            author = arg("author")
            filters = query.get("filter", [])
            with hub._lock:
                repos = [r for r in hub._repos.values() if self._visible(r)]
            out = []
            for repo in repos:
                owner = repo.name.split("/")[0]
                has_gguf = any(p.lower().endswith(".gguf") for p in repo.files)
                tags = list(repo.tags) + (["gguf"] if has_gguf and "gguf" not in repo.tags else [])
                if search and search not in repo.name.lower():
                    continue
                if author and owner.lower() != author.lower():
                    continue
                if any(f not in tags for f in filters):
                    continue
                item: dict[str, object] = {
                    "_id": repo.commit[:24],
                    "id": repo.name,
                    "modelId": repo.name,
                    "author": owner,
                    "downloads": repo.downloads,
                    "likes": repo.likes,
                    "lastModified": repo.last_modified,
                    "gated": "manual" if repo.gated_token else False,
                    "private": repo.private_token is not None,
                    "tags": tags,
                    "library_name": "gguf" if has_gguf else None,
                }
                if repo.gguf is not None:
                    item["gguf"] = repo.gguf
                out.append(item)
            key = {"lastModified": "lastModified", "likes": "likes"}.get(
                arg("sort") or "", "downloads"
            )
            out.sort(key=lambda item: item[key], reverse=True)  # type: ignore[arg-type,return-value]
            limit = arg("limit")
            if limit and limit.isdigit():
                out = out[: int(limit)]
            self._reply(200, {"Content-Type": "application/json"}, json.dumps(out).encode())

        def _tree(
            self, repo_name: str, revision: str, folder: str, query: dict[str, list[str]]
        ) -> None:
            repo = hub._repos.get(repo_name)
            if repo is None or not self._visible(repo):
                self._error(401, "RepoNotFound", "Repository not found")
                return
            ok, status = self._auth_ok(repo)
            if not ok:
                self._error(status, "GatedRepo", "Access to model is restricted")
                return
            if revision not in ("main", repo.commit) and not any(
                f.revision == revision for f in repo.files.values()
            ):
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            recursive = (query.get("recursive") or ["false"])[0].lower() in ("1", "true")
            prefix = folder.strip("/") + "/" if folder.strip("/") else ""
            entries: dict[str, dict[str, object]] = {}
            for path, f in sorted(repo.files.items()):
                if not path.startswith(prefix):
                    continue
                rest = path[len(prefix) :]
                parts = rest.split("/")
                for depth in range(1, len(parts)):  # the folders on the way
                    if depth > 1 and not recursive:
                        break
                    sub = prefix + "/".join(parts[:depth])
                    entries.setdefault(
                        sub,
                        {
                            "type": "directory",
                            "oid": hashlib.sha1(sub.encode()).hexdigest(),
                            "size": 0,
                            "path": sub,
                        },
                    )
                if len(parts) > 1 and not recursive:
                    continue
                entry: dict[str, object] = {
                    "type": "file",
                    "oid": f.git_sha1,
                    "size": f.size,
                    "path": path,
                }
                if f.lfs:
                    entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
                entries[path] = entry
            body = json.dumps(list(entries.values())).encode()
            self._reply(200, {"Content-Type": "application/json"}, body)

        def _blob(self, path: str) -> None:
            m = re.match(r"^/blobs/([0-9a-f]{64})$", path)
            hub_file = hub._blobs.get(m.group(1)) if m else None
            if hub_file is None:
                self._error(404, None, "no such blob")
                return
            if self.command == "GET" and hub.faults.status and hub._take("status"):
                self._error(hub.faults.status, None, "injected")
                return
            self._send_bytes(hub_file, {"ETag": f'"{hub_file.sha256}"'})

        def _send_bytes(self, hub_file: HubFile, extra: dict[str, str]) -> None:
            size = hub_file.size
            start = 0
            status = 200
            rng = self.headers.get("Range")
            faults = hub.faults
            if rng and not faults.ignore_range:
                m = re.match(r"bytes=(\d+)-(\d*)$", rng.strip())
                if m:
                    start = int(m.group(1))
                    if start >= size:
                        self._reply(416, {**extra, "Content-Range": f"bytes */{size}"})
                        return
                    status = 206
            end = size
            headers = {
                **extra,
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
                "Content-Length": str(end - start - faults.short_by),
            }
            if status == 206:
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            self._record(status)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            self._stream(hub_file, start, end - faults.short_by)

        def _stream(self, hub_file: HubFile, start: int, end: int) -> None:
            faults = hub.faults
            targeted = faults.only_file is None or faults.only_file == hub_file.path
            drop_at = None
            if targeted and faults.drop_after is not None and hub._take("drop"):
                drop_at = faults.drop_after
            stall_at = None
            if targeted and faults.stall_after is not None and hub._take("stall"):
                stall_at = faults.stall_after
            corrupt = targeted and faults.corrupt
            rate = faults.rate if targeted else None
            simple = (
                drop_at is None
                and stall_at is None
                and not corrupt
                and rate is None
                and hub_file.source is not None
            )
            if simple:
                self._sendfile(hub_file, start, end)
                return
            sent = 0
            chunk = 64 * 1024
            began = time.monotonic()
            pos = start
            while pos < end:
                n = min(chunk, end - pos)
                if drop_at is not None:
                    n = min(n, max(0, drop_at - sent))
                if stall_at is not None:
                    n = min(n, max(0, stall_at - sent))
                if n == 0:
                    if drop_at is not None and sent >= drop_at:
                        hub.stats.drops += 1
                        self._abort()
                        return
                    hub.stats.stalls += 1
                    time.sleep(faults.stall_seconds)
                    stall_at = None
                    continue
                data = hub_file.read(pos, pos + n)
                if corrupt:
                    data = bytes(b ^ 0x5A for b in data[:16]) + data[16:]
                self.wfile.write(data)
                with hub._lock:
                    hub.stats.body_bytes += len(data)
                sent += len(data)
                pos += len(data)
                if rate:
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)

        def _sendfile(self, hub_file: HubFile, start: int, end: int) -> None:
            assert hub_file.source is not None
            self.wfile.flush()
            with open(hub_file.source, "rb") as handle:
                sent = self.connection.sendfile(handle, offset=start, count=end - start)
            with hub._lock:
                hub.stats.body_bytes += sent

        def _abort(self) -> None:
            """Drop the connection mid-body, as a flaky network would."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # FIN: what was sent arrives
            except OSError:
                pass
            self.close_connection = True

    return Handler


# --------------------------------------------------------------------------- GGUF files

_GGUF_STRING, _GGUF_UINT32, _GGUF_ARRAY = 8, 4, 9


def _gguf_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf_kv(key: str, value: object) -> bytes:
    if isinstance(value, str):
        return _gguf_str(key) + struct.pack("<I", _GGUF_STRING) + _gguf_str(value)
    if isinstance(value, int):
        return _gguf_str(key) + struct.pack("<II", _GGUF_UINT32, value)
    if isinstance(value, list):
        body = b"".join(_gguf_str(v) for v in value)
        return _gguf_str(key) + struct.pack("<IIQ", _GGUF_ARRAY, _GGUF_STRING, len(value)) + body
    raise TypeError(value)


def gguf_header(
    n_floats: int,
    *,
    architecture: str = "llama",
    name: str = "Tiny Test Model",
    extra: dict[str, object] | None = None,
) -> bytes:
    """Header + metadata + one F32 tensor info, padded to 32 bytes; tensor data follows."""
    kvs = {
        "general.architecture": architecture,
        "general.name": name,
        f"{architecture}.block_count": 2,
        f"{architecture}.context_length": 2048,
        f"{architecture}.embedding_length": 64,
        f"{architecture}.attention.head_count": 4,
        f"{architecture}.attention.head_count_kv": 2,
        **(extra or {}),
    }
    out = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs))
    out += b"".join(_gguf_kv(k, v) for k, v in kvs.items())
    out += _gguf_str("weights") + struct.pack("<I", 1) + struct.pack("<Q", n_floats)
    out += struct.pack("<IQ", 0, 0)  # F32, offset 0
    return out + b"\0" * ((-len(out)) % 32)


def make_gguf(size: int = 256 * 1024, *, seed: int = 0, **kwargs: object) -> bytes:
    """A valid GGUF of about `size` bytes (tensor data is pseudo-random)."""
    n_floats = max(1, (size - 512) // 4)
    header = gguf_header(n_floats, **kwargs)  # type: ignore[arg-type]
    data_len = n_floats * 4
    block = hashlib.sha256(f"seed{seed}".encode()).digest() * 2048  # 64 KiB
    body = (block * (data_len // len(block) + 1))[:data_len]
    return header + body


def write_gguf_file(path: Path, size: int, **kwargs: object) -> Path:
    """Write a valid GGUF of about `size` bytes to `path` without holding it in memory."""
    n_floats = max(1, (size - 512) // 4)
    header = gguf_header(n_floats, **kwargs)  # type: ignore[arg-type]
    left = n_floats * 4
    block = os.urandom(4 << 20)
    with open(path, "wb") as handle:
        handle.write(header)
        while left > 0:
            n = min(left, len(block))
            handle.write(block[:n])
            left -= n
    return path


__all__ = ["FakeHub", "Faults", "HubFile", "Stats", "gguf_header", "make_gguf", "write_gguf_file"]
