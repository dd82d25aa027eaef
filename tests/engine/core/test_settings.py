"""settings.toml: defaults, round trip, hand-broken files, atomic writes, unknown keys kept."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hanlin.engine.core import paths
from hanlin.engine.core.cancel import CancelToken, Progress
from hanlin.engine.core.errors import Cancelled, SettingsError
from hanlin.engine.core.settings import (
    ModelSettings,
    RemoteEndpoint,
    ServerSettings,
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
    with pytest.raises(SettingsError):
        update_settings(theme="purple")  # would not load back: refused, nothing written
    assert not paths.settings_file().exists()


UNKNOWN_MODEL_KEY = """\
chat_model = "qwen3-4b-q4km"
completion_model = "qwen2.5-coder-1.5b-base-q4km"

[models."qwen3-4b-q4km"]
temperature = 0.6
n_batch = 256

[system_presets]
"Reviewer" = "You review code."
"""


def test_unknown_per_model_key_is_kept_not_a_reason_to_drop_the_file(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 11 item 2: one `n_batch` used to make the whole file fall back to defaults."""
    path = paths.settings_file()
    path.parent.mkdir(parents=True)
    path.write_text(UNKNOWN_MODEL_KEY, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="hanlin.engine.core.settings"):
        loaded = load_settings()
        again = load_settings()
    assert loaded.problem is None
    s = loaded.settings
    assert s.chat_model == "qwen3-4b-q4km"
    assert s.completion_model == "qwen2.5-coder-1.5b-base-q4km"
    assert s.model("qwen3-4b-q4km").temperature == 0.6
    assert s.system_presets == {"Reviewer": "You review code."}
    assert len(loaded.warnings) == 1 and "n_batch" in loaded.warnings[0]
    assert again.warnings == loaded.warnings  # every load says so ...
    warned = [r for r in caplog.records if "n_batch" in r.getMessage()]
    assert len(warned) == 1  # ... but the log hears it once
    # kept on save, like unknown top-level keys
    update_settings(theme="dark")
    text = path.read_text(encoding="utf-8")
    assert "n_batch = 256" in text and "temperature = 0.6" in text
    assert load_settings().settings.model("qwen3-4b-q4km").extra == {"n_batch": 256}


def test_update_merges_presets_and_models_entry_by_entry() -> None:
    update_settings(system_presets={"A": "a"})
    update_settings(system_presets={"B": "b"})
    update_settings(models={"m1": ModelSettings(n_ctx=4096)})
    update_settings(models={"m2": ModelSettings(temperature=0.2)})
    s = load_settings().settings
    assert s.system_presets == {"A": "a", "B": "b"}
    assert s.model("m1").n_ctx == 4096 and s.model("m2").temperature == 0.2
    update_settings(system_presets={"A": None}, models={"m1": None})
    s = load_settings().settings
    assert s.system_presets == {"B": "b"} and "m1" not in s.models and "m2" in s.models


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hanlin.engine.core.settings import update_settings

    role, count, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.005)
    for j in range(count):
        if role == "chat":
            update_settings(chat_model=f"chat-{j}")
        elif role == "completion":
            update_settings(completion_model=f"completion-{j}")
        elif role == "threads":
            update_settings(threads=j + 1)
        else:
            update_settings(system_presets={f"preset-{j}": f"text {j}"})
    """
)


def test_processes_updating_different_keys_at_once_lose_nothing(
    tmp_path: Path, hanlin_home: Path
) -> None:
    """The GUI, a worker and the CLI all write settings.toml: every update must survive."""
    go = tmp_path / "go"
    roles = {"chat": 20, "completion": 40, "threads": 60, "presets": 30}
    env = {**os.environ, "HANLIN_HOME": str(hanlin_home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, role, str(n), str(go)], env=env)
        for role, n in roles.items()
    ]
    time.sleep(1.0)  # let every interpreter start, then release them together
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    loaded = load_settings()
    assert loaded.problem is None
    s = loaded.settings
    assert s.chat_model == "chat-19"
    assert s.completion_model == "completion-39"
    assert s.threads == 60
    assert s.system_presets == {f"preset-{j}": f"text {j}" for j in range(30)}


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


def test_server_remote_and_scan_tables_round_trip() -> None:
    settings = Settings(scan_folders=["~/models"], trusted_publishers=["Qwen"])
    settings.server = ServerSettings(autostart=True, port=9090, api_key_env="K", cors=["http://x"])
    settings.remote = [RemoteEndpoint("gpu", "http://gpu.lan:8000/v1", key_env="GPU_KEY")]
    save_settings(settings)
    again = load_settings().settings
    assert again.server.autostart is True and again.server.port == 9090
    assert again.server.cors == ["http://x"] and again.server.host == "127.0.0.1"
    assert again.remote_named("gpu") == RemoteEndpoint("gpu", "http://gpu.lan:8000/v1", "GPU_KEY")
    assert again.scan_folders == ["~/models"] and again.trusted_publishers == ["Qwen"]
    # defaults are not written out
    save_settings(Settings())
    assert "server" not in paths.settings_file().read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[server]\nport = 70000\n", "between 1 and 65535"),
        ('[server]\nautostart = "yes"\n', "true or false"),
        ('[[remote]]\nurl = "http://x"\n', "needs a `name`"),
        ('[[remote]]\nname = "a"\nurl = "u"\n[[remote]]\nname = "a"\nurl = "v"\n', "two"),
        ("scan_folders = [1]\n", "list of strings"),
    ],
)
def test_broken_server_and_remote_tables_are_reported(content: str, needle: str) -> None:
    path = paths.settings_file()
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    loaded = load_settings()
    assert loaded.problem is not None and needle in loaded.problem


def test_update_with_a_callable_sees_the_value_read_under_the_lock() -> None:
    update_settings(remote=lambda cur: [*cur, RemoteEndpoint("a", "http://a")])
    update_settings(remote=lambda cur: [*cur, RemoteEndpoint("b", "http://b")])
    assert [r.name for r in load_settings().settings.remote] == ["a", "b"]
    update_settings(remote=lambda cur: [r for r in cur if r.name != "a"])
    assert [r.name for r in load_settings().settings.remote] == ["b"]
