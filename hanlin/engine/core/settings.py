"""The user's settings file: `settings.toml` in the config directory.

Shared by the desktop app, the command line and `hanlin-lsp` (which re-reads it
when it changes, to follow the completion model chosen in the desktop app).

Rules:
- writes are atomic (temp file + rename), so a crash never leaves half a file;
- writers are serialised by a file lock (`settings.toml.lock`): the GUI thread,
  its workers, the command line and another process can all change settings at
  once; `update_settings` re-reads the file under the lock and applies only the
  keys it was given, so nobody's change is lost to someone else's stale copy;
- a file someone broke by hand is never overwritten silently: loading reports
  the problem and falls back to defaults; saving first moves the broken file
  aside to `settings.toml.broken-<timestamp>` so nothing the user typed is lost;
- keys Hanlin does not know are kept as they are on save, at the top level and
  inside `[models."..."]` (where they are also reported once, in the log and in
  `LoadedSettings.warnings`: a typo there must not cost the user the whole file).

File shape (every key optional):

    chat_model = "qwen3-4b-q4km"             # catalog id or a GGUF path
    completion_model = "qwen2.5-coder-1.5b-base-q4km"
    theme = "system"                          # system | light | dark
    threads = 0                               # 0 = physical cores
    kv_cache_mb = 2048                        # conversations' KV caches kept on disk; 0 = off

    [models."qwen3-4b-q4km"]                  # per-model overrides of catalog defaults
    temperature = 0.6
    top_p = 0.95
    n_ctx = 8192
    n_gpu_layers = -1                         # -1 = all layers on the GPU, 0 = CPU only
    speculative = true                        # prompt-lookup drafting (default: on)
    draft_model = "qwen2.5-coder-0.5b-instruct-q4km"  # a small same-tokenizer drafter

    [system_presets]
    "Code reviewer" = "You review code..."

    scan_folders = ["~/models"]               # extra folders `hanlin models scan` looks in
    trusted_publishers = ["Qwen", "unsloth"]  # "New from the labs" (absent = the default list)

    [server]                                  # `hanlin serve` and the desktop's API server
    autostart = false                         # the desktop app starts it on launch
    host = "127.0.0.1"
    port = 8080
    api_key_env = "HANLIN_API_KEY"            # or api_key = "..." (stored in plain text)
    parallel = 2
    max_queue = 16
    cors = []                                 # allowed browser origins; empty = CORS off

    [[remote]]                                # OpenAI-compatible servers: vLLM, llama-server
    name = "team-gpu"
    url = "http://gpu.lan:8000/v1"
    key_env = "TEAM_GPU_KEY"                  # or api_key = "..."
"""

from __future__ import annotations

import logging
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from hanlin.engine.core import paths
from hanlin.engine.core.atomic import write_text_atomic
from hanlin.engine.core.errors import SettingsError
from hanlin.engine.core.locks import FileLock
from hanlin.engine.core.quarantine import move_aside
from hanlin.engine.core.validate import describe_type, is_of_type

log = logging.getLogger(__name__)

THEMES = ("system", "light", "dark")

#: disk for saved conversation KV caches (engine/runtime/kv_state_store.py), in MiB
DEFAULT_KV_CACHE_MB = 2048

#: how long a writer waits for another one (each holds the lock for milliseconds)
LOCK_WAIT_S = 10.0


@dataclass(slots=True)
class ModelSettings:
    """Per-model overrides; None means "use the catalog's default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    max_tokens: int | None = None
    #: prompt-lookup speculative decoding (None = on where it helps, the default)
    speculative: bool | None = None
    #: a small same-tokenizer model that drafts tokens for this one (catalog id or GGUF path)
    draft_model: str | None = None
    #: keys we do not know (a newer Hanlin's, or a typo), kept verbatim so a save never drops them
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update(
            (name, getattr(self, name))
            for name in _MODEL_KEY_TYPES
            if getattr(self, name) is not None
        )
        return out


_MODEL_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "min_p": (int, float),
    "repeat_penalty": (int, float),
    "n_ctx": (int,),
    "n_gpu_layers": (int,),
    "max_tokens": (int,),
    "speculative": (bool,),
    "draft_model": (str,),
}


@dataclass(slots=True)
class ServerSettings:
    """The `[server]` table: defaults for `hanlin serve` and the desktop's server toggle."""

    autostart: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    #: the key itself (plain text in the file) or, preferred, the environment variable holding it
    api_key: str | None = None
    api_key_env: str | None = None
    parallel: int = 2
    max_queue: int = 16
    cors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        for name in _SERVER_KEY_TYPES:
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, list) else value
        return out


_SERVER_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "autostart": (bool,),
    "host": (str,),
    "port": (int,),
    "api_key": (str,),
    "api_key_env": (str,),
    "parallel": (int,),
    "max_queue": (int,),
    "cors": (list,),
}


@dataclass(slots=True)
class RemoteEndpoint:
    """One `[[remote]]` entry: an OpenAI-compatible server Hanlin can use instead of llama.cpp."""

    name: str
    url: str
    key_env: str | None = None
    api_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out["name"] = self.name
        out["url"] = self.url
        if self.key_env:
            out["key_env"] = self.key_env
        if self.api_key:
            out["api_key"] = self.api_key
        return out


_REMOTE_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "url": (str,),
    "key_env": (str,),
    "api_key": (str,),
}


@dataclass(slots=True)
class Settings:
    chat_model: str | None = None
    completion_model: str | None = None
    theme: str = "system"
    threads: int = 0
    #: how much disk the saved KV caches of conversations may take (MiB); 0 = none are kept
    kv_cache_mb: int = DEFAULT_KV_CACHE_MB
    models: dict[str, ModelSettings] = field(default_factory=dict)
    system_presets: dict[str, str] = field(default_factory=dict)
    server: ServerSettings = field(default_factory=ServerSettings)
    remote: list[RemoteEndpoint] = field(default_factory=list)
    #: extra folders `hanlin models scan` searches for GGUF files
    scan_folders: list[str] = field(default_factory=list)
    #: publishers shown under "New from the labs"; None = the built-in list
    trusted_publishers: list[str] | None = None
    #: keys we do not know, kept verbatim so a save never drops them
    extra: dict[str, Any] = field(default_factory=dict)

    def model(self, model_id: str) -> ModelSettings:
        """Overrides for one model (an empty one if none are set)."""
        return self.models.get(model_id) or ModelSettings()

    def to_toml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        if self.chat_model:
            out["chat_model"] = self.chat_model
        if self.completion_model:
            out["completion_model"] = self.completion_model
        out["theme"] = self.theme
        out["threads"] = self.threads
        if self.kv_cache_mb != DEFAULT_KV_CACHE_MB:
            out["kv_cache_mb"] = self.kv_cache_mb
        models = {k: v.to_dict() for k, v in self.models.items() if v.to_dict()}
        if models:
            out["models"] = models
        if self.system_presets:
            out["system_presets"] = dict(self.system_presets)
        if self.scan_folders:
            out["scan_folders"] = list(self.scan_folders)
        if self.trusted_publishers is not None:
            out["trusted_publishers"] = list(self.trusted_publishers)
        server = self.server.to_dict()
        if server != ServerSettings().to_dict():
            out["server"] = server
        if self.remote:
            out["remote"] = [r.to_dict() for r in self.remote]
        return out

    def remote_named(self, name: str) -> RemoteEndpoint | None:
        return next((r for r in self.remote if r.name == name), None)


@dataclass(slots=True)
class LoadedSettings:
    settings: Settings
    #: a readable description of what was wrong with the file, if anything
    problem: str | None = None
    path: Path | None = None
    #: things worth telling the user that did not stop the file from loading (unknown keys)
    warnings: list[str] = field(default_factory=list)


def _parse(data: Mapping[str, Any], path: Path, warnings: list[str] | None = None) -> Settings:
    warnings = [] if warnings is None else warnings
    s = Settings()
    for key, value in data.items():
        if key in ("chat_model", "completion_model"):
            if not isinstance(value, str):
                raise SettingsError(f"{path}: `{key}` must be a string (a model id or a path)")
            setattr(s, key, value or None)
        elif key == "theme":
            if value not in THEMES:
                raise SettingsError(
                    f"{path}: `theme` must be one of {', '.join(THEMES)}, not {value!r}"
                )
            s.theme = value
        elif key == "threads":
            if not is_of_type(value, int) or value < 0:
                raise SettingsError(f"{path}: `threads` must be a whole number >= 0")
            s.threads = value
        elif key == "kv_cache_mb":
            if not is_of_type(value, int) or value < 0:
                raise SettingsError(
                    f"{path}: `kv_cache_mb` must be a whole number of MiB >= 0 (0 = off)"
                )
            s.kv_cache_mb = value
        elif key == "models":
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: [models] must be a table of per-model tables")
            for model_id, table in value.items():
                s.models[model_id] = _parse_model(table, path, model_id, warnings)
        elif key == "system_presets":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise SettingsError(f"{path}: [system_presets] must map names to strings")
            s.system_presets = dict(value)
        elif key in ("scan_folders", "trusted_publishers"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SettingsError(f"{path}: `{key}` must be a list of strings")
            setattr(s, key, list(value))
        elif key == "server":
            s.server = _parse_server(value, path, warnings)
        elif key == "remote":
            s.remote = _parse_remotes(value, path, warnings)
        else:
            s.extra[key] = value
    return s


def _parse_model(table: Any, path: Path, model_id: str, warnings: list[str]) -> ModelSettings:
    if not isinstance(table, dict):
        raise SettingsError(f'{path}: [models."{model_id}"] must be a table')
    ms = ModelSettings()
    for key, value in table.items():
        types = _MODEL_KEY_TYPES.get(key)
        if types is None:
            ms.extra[key] = value
            warnings.append(
                f'{path}: unknown key `{key}` in [models."{model_id}"] is ignored (and kept in'
                f" the file); known keys: {', '.join(_MODEL_KEY_TYPES)}"
            )
            continue
        if not is_of_type(value, types):
            raise SettingsError(
                f'{path}: `{key}` in [models."{model_id}"] must be {describe_type(types)}'
            )
        setattr(ms, key, value)
    return ms


def _parse_server(table: Any, path: Path, warnings: list[str]) -> ServerSettings:
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [server] must be a table")
    server = ServerSettings()
    for key, value in table.items():
        types = _SERVER_KEY_TYPES.get(key)
        if types is None:
            server.extra[key] = value
            warnings.append(
                f"{path}: unknown key `{key}` in [server] is ignored (and kept in the file);"
                f" known keys: {', '.join(_SERVER_KEY_TYPES)}"
            )
            continue
        if not is_of_type(value, types):
            raise SettingsError(f"{path}: `{key}` in [server] must be {describe_type(types)}")
        if key == "port" and not 0 < value < 65536:
            raise SettingsError(f"{path}: `port` in [server] must be between 1 and 65535")
        if key in ("parallel", "max_queue") and value < (1 if key == "parallel" else 0):
            raise SettingsError(f"{path}: `{key}` in [server] is too small ({value})")
        if key == "cors" and not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{path}: `cors` in [server] must be a list of origins")
        setattr(server, key, list(value) if key == "cors" else value)
    return server


def _parse_remotes(value: Any, path: Path, warnings: list[str]) -> list[RemoteEndpoint]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise SettingsError(f"{path}: `remote` must be [[remote]] tables (name, url, key_env)")
    remotes: list[RemoteEndpoint] = []
    for table in value:
        name, url = table.get("name"), table.get("url")
        if not isinstance(name, str) or not name or not isinstance(url, str) or not url:
            raise SettingsError(f"{path}: every [[remote]] needs a `name` and a `url` (strings)")
        if any(r.name == name for r in remotes):
            raise SettingsError(f"{path}: two [[remote]] entries are named {name!r}")
        remote = RemoteEndpoint(name=name, url=url)
        for key, item in table.items():
            types = _REMOTE_KEY_TYPES.get(key)
            if types is None:
                remote.extra[key] = item
                warnings.append(
                    f"{path}: unknown key `{key}` in [[remote]] {name!r} is ignored (and kept"
                    f" in the file); known keys: {', '.join(_REMOTE_KEY_TYPES)}"
                )
            elif not is_of_type(item, types):
                raise SettingsError(
                    f"{path}: `{key}` in [[remote]] {name!r} must be {describe_type(types)}"
                )
            elif key in ("key_env", "api_key"):
                setattr(remote, key, item or None)
        remotes.append(remote)
    return remotes


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(messages: list[str]) -> None:
    """Log each warning the first time this process sees it (the LSP re-reads on every change)."""
    with _warned_lock:
        fresh = [m for m in messages if m not in _warned]
        _warned.update(fresh)
    for message in fresh:
        log.warning("%s", message)


def load_settings(path: Path | None = None) -> LoadedSettings:
    """Read the settings file. Never raises for a bad file: reports it in `problem`."""
    path = path or paths.settings_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LoadedSettings(Settings(), None, path)
    except (OSError, UnicodeDecodeError) as exc:
        return LoadedSettings(Settings(), f"Could not read {path}: {exc}. Using defaults.", path)
    warnings: list[str] = []
    try:
        settings = _parse(tomllib.loads(text), path, warnings)
        _warn_once(warnings)
        return LoadedSettings(settings, None, path, warnings)
    except tomllib.TOMLDecodeError as exc:
        problem = (
            f"{path} is not valid TOML ({exc}). Using default settings; fix or delete the file."
        )
    except SettingsError as exc:
        problem = f"{exc}. Using default settings; fix or delete the file."
    return LoadedSettings(Settings(), problem, path)


def _writers_lock(path: Path) -> FileLock:
    """The lock every writer of `path` takes (other processes and threads alike)."""
    return FileLock(path.with_name(path.name + ".lock"), f"A change to {path.name}")


def _save_locked(settings: Settings, path: Path, current: LoadedSettings) -> Path | None:
    """Write `settings` over `current` (the file as just read under the writers' lock)."""
    data = settings.to_toml_dict()
    # Never write what would not load back: the next start would fall back to defaults.
    _parse(data, path)
    backup: Path | None = None
    if current.problem is not None and path.exists():
        backup = move_aside(path, "could not be loaded; writing new settings")
    try:
        write_text_atomic(path, tomli_w.dumps(data))
    except OSError as exc:
        raise SettingsError(
            f"Could not write {path}: {exc}", "check the disk and permissions"
        ) from exc
    return backup


def save_settings(settings: Settings, path: Path | None = None) -> Path | None:
    """Write these settings as the whole file, atomically, under the writers' lock.

    Returns the backup path if a broken file was moved aside. To change a few
    keys, prefer `update_settings`, which cannot overwrite someone else's change.
    """
    path = path or paths.settings_file()
    with _writers_lock(path).acquire(wait=LOCK_WAIT_S):
        return _save_locked(settings, path, load_settings(path))


#: table-valued settings that `update_settings` merges entry by entry
_MERGED_TABLES = ("models", "system_presets")
_UPDATABLE = tuple(f.name for f in fields(Settings) if f.name != "extra")


def update_settings(path: Path | None = None, **changes: Any) -> Settings:
    """Change some settings and save; returns the settings as now written.

    Under the writers' lock the file is read again and only `changes` are
    applied, so concurrent updates of different keys (by other threads or
    processes) all survive. `models` and `system_presets` merge entry by entry:
    `system_presets={"Reviewer": "..."}` adds or replaces that one preset,
    `models={"qwen3-4b-q4km": ModelSettings(...)}` that one model's overrides,
    and None as an entry's value removes it.

    A callable value is a change computed from the value just read under the
    lock: `remote=lambda current: [*current, RemoteEndpoint("gpu", url)]` adds
    an endpoint without losing one another process added a moment ago.
    """
    for key in changes:
        if key not in _UPDATABLE:
            raise SettingsError(
                f"Unknown setting `{key}`", f"known settings: {', '.join(_UPDATABLE)}"
            )
    path = path or paths.settings_file()
    with _writers_lock(path).acquire(wait=LOCK_WAIT_S):
        current = load_settings(path)
        settings = current.settings
        for key, value in changes.items():
            if callable(value):
                setattr(settings, key, value(getattr(settings, key)))
            elif key in _MERGED_TABLES:
                if not isinstance(value, Mapping):
                    raise SettingsError(f"`{key}` must be given as a table of entries to change")
                table = getattr(settings, key)
                for name, entry in value.items():
                    if entry is None:
                        table.pop(name, None)
                    else:
                        table[name] = entry
            else:
                setattr(settings, key, value)
        _save_locked(settings, path, current)
    return settings
