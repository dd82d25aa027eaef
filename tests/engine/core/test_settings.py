"""settings.toml: defaults, round trip, hand-broken files, atomic writes, unknown keys kept."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hanlin.engine.core import paths
from hanlin.engine.core.cancel import CancelToken, Progress
from hanlin.engine.core.errors import Cancelled, SettingsError
from hanlin.engine.core.settings import (
    ModelSettings,
    Settings,
    load_settings,
    save_settings,
    update_settings,
)


def test_hanlin_home_relocates_every_folder(hanlin_home: Path) -> None:
    for folder in (paths.config_dir(), paths.data_dir(), paths.models_dir(), paths.cache_dir()):
        assert hanlin_home in folder.parents
    assert paths.settings_file() == hanlin_home / "config" / "settings.toml"


def test_missing_file_gives_defaults_without_creating_it() -> None:
    loaded = load_settings()
    assert loaded.problem is None
    assert loaded.settings.chat_model is None and loaded.settings.theme == "system"
    assert not paths.settings_file().exists()


def test_round_trip_keeps_every_field() -> None:
    settings = Settings(chat_model="qwen3-4b-q4km", completion_model="/models/x.gguf", theme="dark")
    settings.models["qwen3-4b-q4km"] = ModelSettings(temperature=0.6, n_ctx=8192, n_gpu_layers=0)
    settings.system_presets["Reviewer"] = "You review code."
    save_settings(settings)
    again = load_settings().settings
    assert again.chat_model == "qwen3-4b-q4km"
    assert again.completion_model == "/models/x.gguf"
    assert again.theme == "dark"
    assert again.model("qwen3-4b-q4km").n_ctx == 8192
    assert again.model("qwen3-4b-q4km").n_gpu_layers == 0
    assert again.model("unknown").temperature is None
    assert again.system_presets == {"Reviewer": "You review code."}


def test_unknown_top_level_keys_survive_a_save() -> None:
    path = paths.settings_file()
    path.parent.mkdir(parents=True)
    path.write_text('future_feature = "keep me"\n[lsp]\nport = 7\n', encoding="utf-8")
    update_settings(chat_model="a")
    text = path.read_text(encoding="utf-8")
    assert 'future_feature = "keep me"' in text and "port = 7" in text
    assert load_settings().settings.chat_model == "a"


@pytest.mark.parametrize(
    "content, needle",
    [
        ("chat_model = \n", "not valid TOML"),
        ('theme = "purple"\n', "theme"),
        ("threads = -2\n", "threads"),
        ('[models."m"]\ntemprature = 1.0\n', "temprature"),
        ('[models."m"]\nn_ctx = "big"\n', "n_ctx"),
    ],
)
def test_hand_broken_file_falls_back_and_is_not_overwritten(content: str, needle: str) -> None:
    path = paths.settings_file()
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    loaded = load_settings()
    assert loaded.problem is not None and needle in loaded.problem
    assert loaded.settings == Settings()
    assert path.read_text(encoding="utf-8") == content  # loading never writes


def test_saving_over_a_broken_file_moves_it_aside_first() -> None:
    path = paths.settings_file()
    path.parent.mkdir(parents=True)
    path.write_text("this is = = broken", encoding="utf-8")
    backup = save_settings(Settings(theme="light"))
    assert backup is not None and backup.read_text(encoding="utf-8") == "this is = = broken"
    assert load_settings().settings.theme == "light"


def test_update_rejects_unknown_setting() -> None:
    with pytest.raises(SettingsError):
        update_settings(colour="red")


def test_concurrent_writers_never_leave_a_half_file() -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(30):
                save_settings(Settings(chat_model=f"model-{n}-{i}" * 50))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for _ in range(60):
        assert load_settings().problem is None
    for t in threads:
        t.join()
    assert not errors
    assert load_settings().settings.chat_model is not None
    leftovers = [p for p in paths.settings_file().parent.iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_cancel_token_raises_and_wakes_waiters() -> None:
    token = CancelToken()
    token.raise_if_cancelled()
    threading.Timer(0.05, token.cancel, args=("user pressed stop",)).start()
    assert token.wait(5) is True
    with pytest.raises(Cancelled, match="user pressed stop"):
        token.raise_if_cancelled()


def test_progress_fraction() -> None:
    assert Progress("download", 50, 200).fraction == 0.25
    assert Progress("download", 5).fraction is None
