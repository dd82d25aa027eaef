"""The language server's settings: one object, from two places.

Editors send the same object as `initializationOptions` and as the `hanlin`
section of `workspace/configuration` (and sometimes inside
`workspace/didChangeConfiguration`), e.g.::

    {"model": "/path/to/model.gguf", "maxTokens": 64, "timeBudgetMs": 1500,
     "multiline": true, "kvReuse": true, "responseCache": true}

Every key is optional. With no `model`, the server follows `completion_model`
in the desktop app's settings file and notices when the user changes it there
(`SettingsFileWatcher`, polled by modification time).

Remote completion: `endpoint` names a server of `hanlin remote add` (or is a base
URL), and `model` is then the model's id on that server (empty: the server's first
model); a `model` of the form `NAME/MODEL` (a configured remote's name) works too,
also as the app's `completion_model`. Nothing is loaded locally then: completions
go to llama-server's `/infill`, or `/v1/completions` (engine/remote/completion.py).

Values of the wrong type are ignored with a warning in the log rather than
refusing the whole object: an editor's settings UI should never be able to
take completion down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from hanlin.engine.core import paths
from hanlin.engine.core.settings import load_settings
from hanlin.engine.core.validate import is_of_type

__all__ = [
    "CLIENT_ONLY_KEYS",
    "DEFAULTS",
    "SECTION",
    "SETTING_KEYS",
    "ServerConfig",
    "SettingsFileWatcher",
    "parse_config",
]

log = logging.getLogger(__name__)

#: the workspace/configuration section (and the VS Code settings prefix)
SECTION = "hanlin"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Completion settings the server runs with."""

    #: catalog id or GGUF path; None = `completion_model` from the settings file
    model: str | None = None
    #: most tokens one completion may generate
    max_tokens: int = 64
    #: wall-clock budget for one completion (prompt processing + prediction)
    time_budget_ms: int = 1500
    #: allow completions spanning several lines (the engine still stops at the block end)
    multiline: bool = True
    #: keep the KV cache between requests (off only for benchmarks)
    kv_reuse: bool = True
    #: reuse a completion when the user types what it predicted (off only for benchmarks)
    response_cache: bool = True
    #: context window to load the model with; None = the engine's default
    context_length: int | None = None
    #: llama.cpp threads; None = the settings file's `threads` / the engine's default
    threads: int | None = None
    #: chunks of other open files placed before the current one (0 turns it off)
    extra_context: bool = True
    #: a remote server to complete from: a `[[remote]]` name or a base URL; None = local
    endpoint: str | None = None
    #: shortest run of cached tokens shifted-KV reuse moves after an edit (0 = prefix reuse only)
    cache_reuse: int = 256
    #: prompt-lookup drafts (tokens copied from the document, verified in one batch)
    drafts: bool = True
    #: keep the context's KV state on disk so a restarted editor starts warm
    persist_kv: bool = True
    #: warm-ups (a file opened or focused) and prefetches (after a shown completion) when idle
    idle_work: bool = True
    #: on a cold prompt that cannot fit the budget, answer from the lines around the cursor
    small_window: bool = True

    def engine_key(self) -> tuple[object, ...]:
        """What requires a new CompletionEngine (or model) when it changes."""
        return (
            self.model,
            self.kv_reuse,
            self.response_cache,
            self.context_length,
            self.threads,
            self.endpoint,
            self.cache_reuse,
            self.drafts,
            self.persist_kv,
        )


DEFAULTS = ServerConfig()

#: camelCase key -> (ServerConfig field, accepted types); editors mirror these keys
SETTING_KEYS: dict[str, tuple[str, tuple[type, ...]]] = {
    "model": ("model", (str,)),
    "maxTokens": ("max_tokens", (int,)),
    "timeBudgetMs": ("time_budget_ms", (int, float)),
    "multiline": ("multiline", (bool,)),
    "kvReuse": ("kv_reuse", (bool,)),
    "responseCache": ("response_cache", (bool,)),
    "contextLength": ("context_length", (int,)),
    "threads": ("threads", (int,)),
    "extraContext": ("extra_context", (bool,)),
    "endpoint": ("endpoint", (str,)),
    "cacheReuse": ("cache_reuse", (int,)),
    "drafts": ("drafts", (bool,)),
    "persistKv": ("persist_kv", (bool,)),
    "idleWork": ("idle_work", (bool,)),
    "smallWindow": ("small_window", (bool,)),
}
_FIELD_NAMES = {f.name for f in fields(ServerConfig)}
#: keys editor extensions keep in the same section for themselves
CLIENT_ONLY_KEYS = {"serverCommand", "serverArgs", "trace"}


def _valid(name: str, value: Any) -> bool:
    if name in ("max_tokens", "time_budget_ms", "context_length", "threads"):
        return value > 0
    return True


def parse_config(data: Any, base: ServerConfig = DEFAULTS) -> ServerConfig:
    """Overlay a settings object (camelCase or snake_case keys) on `base`.

    Accepts the bare object or one wrapped as {"hanlin": {...}} (what
    didChangeConfiguration carries for clients that push settings). Unknown
    keys and wrongly typed values are logged and skipped.
    """
    if not isinstance(data, Mapping):
        if data is not None:
            log.warning("ignoring settings that are not an object: %r", data)
        return base
    if SECTION in data and isinstance(data[SECTION], Mapping):
        data = data[SECTION]
    changes: dict[str, Any] = {}
    for key, value in data.items():
        spec = SETTING_KEYS.get(key)
        if spec is None and key in _FIELD_NAMES:
            spec = next(s for s in SETTING_KEYS.values() if s[0] == key)
        if spec is None:
            if key not in CLIENT_ONLY_KEYS:
                log.info("ignoring unknown setting %r", key)
            continue
        name, types = spec
        if value is None or (name in ("model", "endpoint") and value == ""):
            changes[name] = getattr(DEFAULTS, name)
            continue
        if not is_of_type(value, types) or not _valid(name, value):
            log.warning("ignoring setting %s=%r: wrong type or out of range", key, value)
            continue
        if name == "time_budget_ms":
            value = int(value)
        changes[name] = value
    return replace(base, **changes)


class SettingsFileWatcher:
    """Follows `completion_model` in the desktop app's settings file.

    `poll()` is cheap (one stat) and returns True when the chosen model
    changed since the last call; the server calls it on a timer and before
    each completion. A file that does not load (saved half-edited, a typo)
    keeps the last good choice: the editor's model is not unloaded for it.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.settings_file()
        self._stamp: tuple[int, int] | None = None
        self.completion_model: str | None = None
        self.threads: int | None = None
        self.problem: str | None = None
        self.poll()

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def poll(self) -> bool:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        loaded = load_settings(self.path)
        self.problem = loaded.problem
        if loaded.problem:
            log.warning("%s (hanlin-lsp keeps the model chosen before)", loaded.problem)
            return False
        before = (self.completion_model, self.threads)
        self.completion_model = loaded.settings.completion_model
        self.threads = loaded.settings.threads or None
        return (self.completion_model, self.threads) != before
