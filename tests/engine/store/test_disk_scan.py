"""Models already on disk: a real fake HF cache, Ollama store, LM Studio folder and user folder.

Every layout holds real GGUF files (tiny loadable models, a real split set) and the broken
files users really have. The scan must find the models, register them in place (nothing
copied, nothing deleted on removal), report the broken ones without listing them, and
never register the same file twice.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hanlin.engine.core.errors import OfflineError
from hanlin.engine.core.settings import Settings
from hanlin.engine.models.catalog import load_catalog
from hanlin.engine.store.disk_scan import (
    ScanLocation,
    default_locations,
    hf_cache_dir,
    register_found,
    scan_disk,
)
from hanlin.engine.store.model_store import ModelStore
from tests.support.fake_disk import BROKEN, EXPECTED, HF_FILE, HF_REPO, FakeDisk, build_fake_disk
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDisk:
    built = build_fake_disk(tmp_path / "disk")
    built.apply(monkeypatch)
    return built


def test_locations_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    assert hf_cache_dir() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert hf_cache_dir() == tmp_path / "cache"
    places = default_locations(Settings(scan_folders=["~/models", "~/models"]), ["/opt/more"])
    by_origin = [(p.origin, p.path) for p in places]
    assert ("ollama", tmp_path / ".ollama" / "models") in by_origin
    assert ("lmstudio", tmp_path / ".lmstudio" / "models") in by_origin
    assert ("lmstudio", tmp_path / ".cache" / "lm-studio" / "models") in by_origin
    assert [p for o, p in by_origin if o == "folder"] == [tmp_path / "models", Path("/opt/more")]
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "elsewhere"))
    ollama = [p.path for p in default_locations(Settings()) if p.origin == "ollama"]
    assert ollama == [tmp_path / "elsewhere"]


def test_scan_finds_every_layout_and_reports_broken_files(disk: FakeDisk) -> None:
    report = scan_disk()
    found = {f.model_id: f for f in report.found}
    assert {k: f.origin for k, f in found.items()} == EXPECTED
    # each is the real file, in place, its header read like an import
    for model_id, path in disk.paths.items():
        assert found[model_id].path == path
        assert found[model_id].architecture in ("qwen2", "llama")
        assert found[model_id].is_new
    hf = found["tiny-chat-q8_0"]
    assert (hf.repo, hf.file, hf.commit) == (HF_REPO, HF_FILE, "2" * 40)  # main, not the old one
    assert hf.name == f"{HF_REPO}/{HF_FILE}"
    coder = found["tiny-coder"]
    assert coder.name == "tiny-coder:latest" and coder.path.name.startswith("sha256-")
    assert "completion" in coder.roles  # the FIM tokens in its vocabulary
    split = found["tiny-split-q8_0"]
    assert split.shard_count == 2
    assert split.size_bytes == sum(p.stat().st_size for p in split.path.parent.glob("Tiny-Split*"))
    assert (split.repo, split.file) == (
        "lmstudio-community/Tiny-Split-GGUF",
        "Tiny-Split-Q8_0-00001-of-00002.gguf",
    )
    # vision projectors are not models, and later shards are not models of their own
    assert not any("mmproj" in str(f.path) or "00002-of" in str(f.path) for f in report.found)
    # the broken ones are reported with their reason, never listed
    messages = [p.message for p in report.problems]
    assert len(messages) == len(BROKEN), messages
    for words in BROKEN:
        assert sum(words in m for m in messages) == 1, (words, messages)
    truncated = next(p for p in report.problems if "truncated" in p.message)
    assert truncated.origin == "ollama" and "broken:7b" in truncated.message
    assert "ollama pull broken:7b" in (truncated.hint or "")
    assert json.loads(json.dumps(report.to_json()))["found"]  # serialisable as is


def test_register_in_place_then_remove_deletes_nothing(disk: FakeDisk) -> None:
    store = ModelStore()
    done, failed = register_found(store, scan_disk(store=store).found)
    assert failed == []
    assert {m.id: m.origin for m in done} == EXPECTED
    installed = {m.id: m for m in ModelStore().installed()}  # persisted, origin included
    assert {k: m.origin for k, m in installed.items()} == EXPECTED
    # in place: the cache keeps its file name (a link into blobs/), nothing was copied
    assert installed["tiny-chat-q8_0"].path == disk.paths["tiny-chat-q8_0"]
    assert installed["tiny-chat-q8_0"].path.is_symlink()
    assert installed["tiny-split-q8_0"].size_bytes == (
        sum(p.stat().st_size for p in disk.paths["tiny-split-q8_0"].parent.glob("Tiny-Split*"))
    )
    assert not any(p.suffix == ".gguf" for p in store.models_dir.rglob("*"))
    # a second scan shows them as registered and registers nothing again
    again = scan_disk(store=store)
    assert {f.registered_as for f in again.found} == set(EXPECTED)
    assert register_found(store, again.found) == ([], [])
    # removing them from Hanlin only forgets them
    for model_id in EXPECTED:
        store.remove(model_id)
    assert store.installed() == []
    assert all(p.is_file() for p in disk.paths.values())
    assert (disk.paths["tiny-split-q8_0"].parent / "Tiny-Split-Q8_0-00002-of-00002.gguf").is_file()


def test_a_cached_hub_file_is_not_downloaded_again(
    disk: FakeDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore()
    register_found(store, scan_disk(store=store).found)
    # offline: a pull that tried the network would fail; this one finds the cached file
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = store.pull(f"hf.co/{HF_REPO}/{HF_FILE}")
    assert model.id == "tiny-chat-q8_0" and model.path == disk.paths["tiny-chat-q8_0"]
    assert store.resolve(f"hf.co/{HF_REPO}/{HF_FILE}").origin == "hf-cache"
    with pytest.raises(OfflineError):
        store.pull(f"hf.co/{HF_REPO}/Tiny-Chat-Q4_K_M.gguf")  # not on disk: it would download


def test_a_catalog_file_registers_under_its_catalog_id(
    disk: FakeDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanlin.engine.core import paths

    path = disk.paths["tiny-chat-q8_0"]
    sha = Path(path.readlink()).name
    user = paths.user_catalog_file()
    paths.ensure(user.parent)
    entry = f"""
schema_version = 1
[[model]]
id = "tiny-chat-q8"
name = "Tiny Chat"
publisher = "Acme"
family = "qwen2.5-coder"
parameters = "1M"
quantization = "Q8_0"
repo = "{HF_REPO}"
file = "{HF_FILE}"
sha256 = "{{sha}}"
context_length = 4096
roles = ["chat", "completion"]
license = "apache-2.0"
description = "A tiny model in the Hugging Face cache."
"""
    user.write_text(entry.replace("{sha}", sha), encoding="utf-8")
    found = {f.path: f for f in scan_disk(store=ModelStore(catalog=load_catalog())).found}
    assert found[path].model_id == "tiny-chat-q8" and found[path].catalog_id == "tiny-chat-q8"
    # a different file under the same name (another revision) is not the catalog's
    user.write_text(entry.replace("{sha}", "0" * 64), encoding="utf-8")
    found = {f.path: f for f in scan_disk(store=ModelStore(catalog=load_catalog())).found}
    assert found[path].catalog_id is None and found[path].model_id == "tiny-chat-q8_0"


def test_ids_never_clash_and_copies_are_not_registered_twice(
    disk: FakeDisk, tmp_path: Path
) -> None:
    store = ModelStore()
    # the user imported another file under the id the folder model would get
    other = write_tiny_fim_gguf(tmp_path / "elsewhere" / "mine.gguf", seed=40)
    store.import_file(other, model_id="tiny-folder-q8_0")
    # the same folder reached twice (through a link to it), and a real copy of a file
    (tmp_path / "again").symlink_to(disk.folder)
    shutil.copy(disk.paths["tiny-folder-q8_0"], disk.folder / "Copy-Q8_0.gguf")
    places = [
        *default_locations(),
        ScanLocation("folder", tmp_path / "again", explicit=True),
    ]
    report = scan_disk(places, store=store)
    ids = [f.model_id for f in report.found]
    assert len(ids) == len(set(ids))
    folder_model = next(f for f in report.found if f.path == disk.paths["tiny-folder-q8_0"])
    assert folder_model.model_id == "tiny-folder-q8_0-folder"
    assert sum(f.path.name == "Tiny-Folder-Q8_0.gguf" for f in report.found) == 1
    assert any(f.path.name == "Copy-Q8_0.gguf" for f in report.found)  # a real copy is a file


def test_a_hub_download_makes_the_cached_copy_a_duplicate(disk: FakeDisk) -> None:
    store = ModelStore()
    # pretend Hanlin pulled the same Hub file earlier: same repo/file, its own copy
    own = store.models_dir / HF_REPO / HF_FILE
    own.parent.mkdir(parents=True)
    shutil.copy(disk.paths["tiny-chat-q8_0"], own)
    store.import_file(own, model_id="pulled-chat", repo=HF_REPO, file=HF_FILE)
    found = next(f for f in scan_disk(store=store).found if f.origin == "hf-cache")
    assert found.duplicate_of == "pulled-chat" and not found.is_new
    done, _ = register_found(store, [found])
    assert done == []


def test_ollama_models_env_and_a_bad_manifest(
    disk: FakeDisk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = tmp_path / "ollama-elsewhere"
    shutil.copytree(disk.ollama, moved)
    shutil.rmtree(disk.ollama)
    monkeypatch.setenv("OLLAMA_MODELS", str(moved))
    broken = moved / "manifests" / "registry.ollama.ai" / "library" / "cut" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    short = moved / "manifests" / "registry.ollama.ai" / "acme" / "tiny" / "q8"
    short.parent.mkdir(parents=True)
    coder = next((moved / "blobs").glob("sha256-*"))
    layer = {
        "mediaType": "application/vnd.ollama.image.model",
        "digest": "sha256:" + coder.name.removeprefix("sha256-"),
        "size": coder.stat().st_size + 1,
    }
    short.write_text(json.dumps({"layers": [layer]}))
    only_ollama = [p for p in default_locations() if p.origin == "ollama"]
    report = scan_disk(only_ollama)
    assert [p.path for p in only_ollama] == [moved]
    messages = " | ".join(p.message for p in report.problems)
    assert "manifest of cut:latest cannot be read" in messages
    assert "acme/tiny:q8" in messages and "manifest says" in messages
    assert "truncated" in messages


def test_correcting_the_family_keeps_where_it_came_from(disk: FakeDisk) -> None:
    store = ModelStore()
    register_found(store, scan_disk(store=store).found)
    path = disk.paths["tiny-chat-q8_0"]
    fixed = store.import_file(path, model_id="tiny-chat-q8_0", family="qwen3")
    assert fixed.family == "qwen3"
    again = store.get("tiny-chat-q8_0")
    assert again is not None
    assert (again.family, again.origin) == ("qwen3", "hf-cache")
    assert (again.repo, again.file) == (HF_REPO, HF_FILE)
    assert again.path == path


@pytest.mark.slow
def test_a_registered_ollama_blob_loads_in_llama_cpp(disk: FakeDisk) -> None:
    from hanlin.engine.runtime.loader import load_model

    store = ModelStore()
    register_found(store, scan_disk(store=store).found)
    model = store.resolve("tiny-coder")
    assert model.path.suffix == ""  # Ollama's blob: no .gguf, only the magic says GGUF
    loaded = load_model(model.path, model_id=model.id)
    try:
        assert loaded.info.architecture == "llama"
        assert loaded.session.tokenize("def f():", add_special=False)
    finally:
        loaded.close()
