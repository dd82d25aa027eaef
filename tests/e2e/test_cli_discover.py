"""`hanlin models search / new / scan` as a user runs them: the installed script, a real local
Hub server, and a disk that already holds models (HF cache, Ollama, LM Studio, a folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hanlin.engine.core import paths
from tests.support import fake_hub_fixtures
from tests.support.commands import HANLIN
from tests.support.fake_disk import EXPECTED, HF_FILE, HF_REPO, FakeDisk, build_fake_disk
from tests.support.fake_hub import FakeHub, make_gguf

fake_hub = fake_hub_fixtures.fake_hub  # the fixture, visible to pytest in this module

ROOT = Path(__file__).resolve().parents[2]
QWEN = "Qwen/Qwen3-Tiny-GGUF"  # not a catalog repo: pulls of it are plain Hub pulls
GLM = "unsloth/Tiny-MoE-Air-GGUF"  # split in a sub-folder, as unsloth does
GATED = "meta-lab/Gated-7B-GGUF"

pytestmark = pytest.mark.slow  # each case runs the real `hanlin` a few times


def hanlin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HANLIN, *args],
        cwd=ROOT,
        env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_file(QWEN, "Qwen3-Tiny-Q4_K_M.gguf", make_gguf(300_000, seed=1, name="Qwen3 4B"))
    fake_hub.add_file(QWEN, "Qwen3-Tiny-Q8_0.gguf", make_gguf(500_000, seed=2))
    fake_hub.add_file(QWEN, "mmproj-F16.gguf", make_gguf(10_000, seed=3))
    fake_hub.set_repo_info(
        QWEN, downloads=12_345, last_modified="2025-07-01T00:00:00.000Z", tags=["gguf"]
    )
    for i in (1, 2):
        name = f"Q4_K_M/Tiny-MoE-Air-Q4_K_M-0000{i}-of-00002.gguf"
        fake_hub.add_file(GLM, name, make_gguf(100_000, seed=10 + i))
    fake_hub.set_repo_info(GLM, downloads=10, last_modified="2025-08-01T00:00:00.000Z")
    fake_hub.add_file(GATED, "Gated-7B-Q4_K_M.gguf", make_gguf(20_000, seed=9), gated_token="hf_x")
    fake_hub.set_repo_info(GATED, downloads=1)
    return fake_hub


def test_search_shows_files_fit_and_the_pull_that_gets_it(hub: FakeHub) -> None:
    result = hanlin("models", "search", "gguf", "--json")
    assert result.returncode == 0, result.stderr
    repos: list[dict[str, Any]] = json.loads(result.stdout)
    by_repo = {r["repo"]: r for r in repos}
    assert [r["repo"] for r in repos] == [QWEN, GLM, GATED]  # most downloaded first
    qwen = by_repo[QWEN]
    assert qwen["downloads"] == 12_345 and qwen["last_modified"].startswith("2025-07-01")
    assert [f["label"] for f in qwen["files"]] == ["Q4_K_M", "Q8_0"]  # no projector
    q4 = qwen["files"][0]
    assert q4["ref"] == f"hf.co/{QWEN}/Qwen3-Tiny-Q4_K_M.gguf" and not q4["installed"]
    assert q4["size_bytes"] == hub._repos[QWEN].files["Qwen3-Tiny-Q4_K_M.gguf"].size
    assert q4["fit"]["level"] in ("fits", "tight", "wont_fit") and q4["fit"]["reason"]
    glm = by_repo[GLM]["files"]
    assert len(glm) == 1 and glm[0]["shards"] == 2 and glm[0]["complete"]
    assert glm[0]["size_bytes"] == sum(f.size for f in hub._repos[GLM].files.values())
    gated = by_repo[GATED]
    assert gated["gated"] == "manual" and gated["files"] == []
    assert f"accept the license at https://huggingface.co/{GATED}" in gated["error"]["hint"]

    text = hanlin("models", "search", "qwen", "--author", "Qwen", "--sort", "updated")
    assert text.returncode == 0, text.stderr
    assert f"hanlin models pull hf.co/{QWEN}/Qwen3-Tiny-Q4_K_M.gguf" in text.stdout
    assert GLM not in text.stdout and "12.3k downloads" in text.stdout

    # one pull gets it; the search then says it is installed
    pulled = hanlin("models", "pull", q4["ref"])
    assert pulled.returncode == 0, pulled.stderr
    again = json.loads(hanlin("models", "search", "qwen3", "--json").stdout)
    assert again[0]["files"][0]["installed"] is True
    text = hanlin("models", "search", "air")
    assert "Q4_K_M (2 parts)" in text.stdout
    assert f"hanlin models pull hf.co/{GLM}/Q4_K_M/Tiny-MoE-Air-Q4_K_M-00001-of-00002.gguf" in (
        text.stdout
    )


def test_gated_offline_and_bad_input_say_what_to_do(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = hanlin("models", "search", "gated")
    assert text.returncode == 0, text.stderr
    assert f"gated: accept the license at https://huggingface.co/{GATED}" in text.stdout
    assert "set HF_TOKEN" in text.stdout
    with_token = hanlin("models", "search", "gated", env={**os.environ, "HF_TOKEN": "hf_x"})
    assert f"hanlin models pull hf.co/{GATED}/Gated-7B-Q4_K_M.gguf" in with_token.stdout

    offline = hanlin("models", "search", "qwen", env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode != 0
    assert offline.stderr.startswith("hanlin: error: Offline mode is on")
    assert "Traceback" not in offline.stderr and len(offline.stderr.strip().splitlines()) == 1
    requests = list(hub.stats.requests)
    hanlin("models", "new", env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert hub.stats.requests == requests  # nothing was asked

    bad = hanlin("models", "search", "qwen", "--sort", "stars")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    bad = hanlin("models", "search", "qwen", "--limit", "0")
    assert bad.returncode == 2 and "at least 1" in bad.stderr


def test_new_from_the_labs_follows_trusted_publishers(hub: FakeHub) -> None:
    result = hanlin("models", "new", "--json")
    assert result.returncode == 0, result.stderr
    assert [r["repo"] for r in json.loads(result.stdout)] == [GLM, QWEN]  # newest first
    settings = paths.settings_file()
    paths.ensure(settings.parent)
    settings.write_text('trusted_publishers = ["Qwen"]\n', encoding="utf-8")
    text = hanlin("models", "new")
    assert text.returncode == 0, text.stderr
    assert QWEN in text.stdout and GLM not in text.stdout


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDisk:
    built = build_fake_disk(tmp_path / "disk")
    built.apply(monkeypatch)
    return built


def test_scan_registers_in_place_and_rm_keeps_the_files(disk: FakeDisk, tmp_path: Path) -> None:
    env = disk.env()
    dry = hanlin("models", "scan", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert {f["id"]: f["origin"] for f in report["found"]} == EXPECTED
    assert not any(f["registered"] for f in report["found"]) and len(report["problems"]) == 3

    scan = hanlin("models", "scan", env=env)
    assert scan.returncode == 0, scan.stderr
    assert "Registered 4 models in place (nothing copied)" in scan.stdout
    assert "Not usable (3), not listed" in scan.stdout
    assert "missing blob" in scan.stdout and "truncated" in scan.stdout
    assert "not a GGUF" in scan.stdout

    listed = {r["id"]: r for r in json.loads(hanlin("models", "list", "--json", env=env).stdout)}
    for model_id, origin in EXPECTED.items():
        assert listed[model_id]["installed"] and listed[model_id]["origin"] == origin
        assert listed[model_id]["path"] == str(disk.paths[model_id])
    text = hanlin("models", "list", env=env).stdout
    assert "installed (ollama)" in text and "installed (hf-cache)" in text

    again = hanlin("models", "scan", env=env)
    assert "Already registered: 4" in again.stdout and "Registered 4" not in again.stdout

    # a pull of the cached Hub file finds it; nothing is downloaded (offline: would fail)
    cached = hanlin(
        "models", "pull", f"hf.co/{HF_REPO}/{HF_FILE}", env={**env, "HF_HUB_OFFLINE": "1"}
    )
    assert cached.returncode == 0, cached.stderr
    assert "already installed" in cached.stdout

    rm = hanlin("models", "rm", "tiny-coder", env=env)
    assert rm.returncode == 0, rm.stderr
    assert "the file stays where it was" in rm.stdout
    assert disk.paths["tiny-coder"].is_file()

    # a folder added for good
    extra = tmp_path / "more-models"
    extra.mkdir()
    (extra / "Extra-Q8_0.gguf").write_bytes(disk.paths["tiny-folder-q8_0"].read_bytes()[:-1])
    added = hanlin("models", "scan", str(extra), "--add", env=env)
    assert added.returncode == 0, added.stderr
    saved = tomllib.loads(paths.settings_file().read_text(encoding="utf-8"))
    assert str(extra.resolve()) in saved["scan_folders"]
    assert "Extra-Q8_0.gguf" in added.stdout and "truncated" in added.stdout  # reported only

    missing = hanlin("models", "scan", str(tmp_path / "nope"), env=env)
    assert missing.returncode != 0 and "is not a folder" in missing.stderr
