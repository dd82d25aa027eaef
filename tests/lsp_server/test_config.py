"""hanlin.lsp_server.config: settings objects from editors and the desktop app's settings file."""

from __future__ import annotations

import os
from pathlib import Path

from hanlin.engine.core.settings import Settings, save_settings
from hanlin.lsp_server.config import DEFAULTS, SettingsFileWatcher, parse_config


def test_parse_camel_case_settings() -> None:
    cfg = parse_config(
        {
            "model": "/m/model.gguf",
            "maxTokens": 32,
            "timeBudgetMs": 800,
            "multiline": False,
            "kvReuse": False,
            "responseCache": False,
        }
    )
    assert cfg.model == "/m/model.gguf"
    assert (cfg.max_tokens, cfg.time_budget_ms, cfg.multiline) == (32, 800, False)
    assert (cfg.kv_reuse, cfg.response_cache) == (False, False)


def test_wrapped_section_bad_values_and_unknown_keys_are_ignored() -> None:
    base = parse_config({"maxTokens": 10})
    cfg = parse_config(
        {"hanlin": {"maxTokens": "many", "multiline": 1, "timeBudgetMs": -5, "colour": "red"}},
        base,
    )
    assert cfg.max_tokens == 10
    assert cfg.multiline is DEFAULTS.multiline
    assert cfg.time_budget_ms == DEFAULTS.time_budget_ms
    assert parse_config(None) == DEFAULTS
    assert parse_config(["not", "an", "object"]) == DEFAULTS


def test_empty_model_means_follow_the_desktop_app() -> None:
    cfg = parse_config({"model": ""}, parse_config({"model": "x"}))
    assert cfg.model is None


def test_settings_file_watcher_follows_completion_model(hanlin_home: Path) -> None:
    watcher = SettingsFileWatcher()
    assert watcher.completion_model is None
    assert watcher.poll() is False
    save_settings(Settings(completion_model="qwen2.5-coder-1.5b-base-q4km"))
    assert watcher.poll() is True
    assert watcher.completion_model == "qwen2.5-coder-1.5b-base-q4km"
    assert watcher.poll() is False
    path = watcher.path
    save_settings(Settings(completion_model="/models/other.gguf"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse-mtime filesystems
    assert watcher.poll() is True
    assert watcher.completion_model == "/models/other.gguf"


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse-mtime filesystems


def test_unknown_per_model_key_does_not_unload_the_editors_model(hanlin_home: Path) -> None:
    """Issue 11 item 2: `n_batch` under [models."..."] used to turn completion_model into None."""
    save_settings(Settings(completion_model="qwen2.5-coder-1.5b-base-q4km", threads=2))
    watcher = SettingsFileWatcher()
    assert watcher.completion_model == "qwen2.5-coder-1.5b-base-q4km"
    path = watcher.path
    path.write_text(
        path.read_text(encoding="utf-8")
        + '\n[models."qwen2.5-coder-1.5b-base-q4km"]\nn_batch = 256\n',
        encoding="utf-8",
    )
    _bump_mtime(path)
    assert watcher.poll() is False  # nothing the server follows changed
    assert watcher.completion_model == "qwen2.5-coder-1.5b-base-q4km"
    assert watcher.threads == 2 and watcher.problem is None


def test_a_file_broken_mid_edit_keeps_the_last_good_choice(hanlin_home: Path) -> None:
    save_settings(Settings(completion_model="qwen2.5-coder-1.5b-base-q4km"))
    watcher = SettingsFileWatcher()
    path = watcher.path
    path.write_text('completion_model = "qwen2.5-coder-1.5b-ba', encoding="utf-8")  # half typed
    _bump_mtime(path)
    assert watcher.poll() is False
    assert watcher.completion_model == "qwen2.5-coder-1.5b-base-q4km"
    assert watcher.problem is not None and "not valid TOML" in watcher.problem
    path.write_text('completion_model = "/models/other.gguf"\n', encoding="utf-8")
    _bump_mtime(path)
    assert watcher.poll() is True
    assert watcher.completion_model == "/models/other.gguf" and watcher.problem is None
