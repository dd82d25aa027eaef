"""A newer Hanlin over an older one keeps settings, chat history and models.

`fixtures/hanlin-home-0.1.0/` was written by Hanlin 0.1.0's own code
(fixtures/make_upgrade_fixtures.py) and committed; `expected.json` is what 0.1.0 read
back from it. Today's code must open the same files with nothing lost, write to them,
and leave what it does not know alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hanlin.engine.chat.history import History
from hanlin.engine.core.settings import load_settings, update_settings
from tests.installers.fixtures.make_upgrade_fixtures import dump_home
from tests.installers.support import kept as _kept
from tests.support.commands import HANLIN

FIXTURE = Path(__file__).parent / "fixtures" / "hanlin-home-0.1.0"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text(encoding="utf-8"))
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/model.gguf"


@pytest.fixture
def old_home(hanlin_home: Path) -> Path:
    """The user's folder as 0.1.0 left it (HANLIN_HOME points here)."""
    for part in ("config", "data"):
        shutil.copytree(FIXTURE / part, hanlin_home / part, dirs_exist_ok=True)
    model = hanlin_home / "data" / "models" / MODEL
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"GGUF")  # model files are not committed; the manifest names this one
    return hanlin_home


def test_everything_0_1_0_wrote_reads_back_the_same(old_home: Path) -> None:
    now = dump_home()
    assert _kept(now["settings"], EXPECTED["settings"]), now["settings"]
    assert now["settings_warnings"] == EXPECTED["settings_warnings"]
    assert _kept(now["conversations"], EXPECTED["conversations"]), now["conversations"]
    assert _kept(now["models"], EXPECTED["models"]), now["models"]
    assert not _kept({"a": 1}, {"a": 2}) and not _kept([1], [1, 2])  # the check can fail


def test_the_upgraded_files_take_changes_and_keep_the_rest(old_home: Path) -> None:
    update_settings(theme="light")
    settings = load_settings().settings.to_toml_dict()
    assert settings["theme"] == "light"
    assert _kept(settings, {**EXPECTED["settings"], "theme": "light"})  # future_key kept, too
    with History() as history:
        first = history.list()[-1]
        history.append(first.id, "assistant", "written by the new version")
    after = dump_home()
    old = {c["conversation"]["id"]: c for c in EXPECTED["conversations"]}
    for conv in after["conversations"]:
        before = old[conv["conversation"]["id"]]["messages"]
        assert _kept(conv["messages"][: len(before)], before)
    assert _kept(after["models"], EXPECTED["models"])


@pytest.mark.slow
def test_the_cli_sees_the_old_model_and_settings(old_home: Path) -> None:
    listed = subprocess.run(
        [*HANLIN, "models", "list", "--json"], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    (model,) = [m for m in json.loads(listed.stdout) if m["id"] == "smollm2-135m-upgrade"]
    assert model["installed"] is True
    doctor = json.loads(
        subprocess.run(
            [*HANLIN, "doctor", "--json"], capture_output=True, text=True, timeout=120, check=True
        ).stdout
    )
    assert doctor["settings"] == {
        "chat_model": "qwen3-4b-q4km",
        "completion_model": "smollm2-135m-upgrade",
    }
    assert doctor["problems"] == []
