"""ModelStore without the network: import in place, resolve, remove, and a damaged manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hanlin.engine.core.errors import (
    HanlinError,
    ModelFileError,
    ModelNotInstalledError,
    UnknownModelError,
)
from hanlin.engine.store.model_store import ModelStore, slug_id
from tests.support.fake_hub import make_gguf


def test_import_registers_in_place(smollm2_path: Path) -> None:
    store = ModelStore()
    model = store.import_file(smollm2_path)
    assert model.id == "smollm2-135m-instruct.q4_1"
    assert model.path == smollm2_path.resolve()
    assert model.source == "import" and model.family == "llama"
    assert model.size_bytes == smollm2_path.stat().st_size
    # no copy in the models folder
    assert not any(p.suffix == ".gguf" for p in store.models_dir.rglob("*"))
    assert [m.id for m in ModelStore().installed()] == [model.id]  # persisted
    assert store.resolve(model.id).path == model.path
    # removing an import elsewhere only unregisters it
    store.remove(model.id)
    assert store.installed() == [] and smollm2_path.is_file()


def test_import_with_id_and_family(tmp_path: Path) -> None:
    path = tmp_path / "coder.gguf"
    path.write_bytes(make_gguf(50_000, architecture="qwen2", name="Qwen2.5 Coder 0.5B"))
    store = ModelStore()
    model = store.import_file(path, model_id="my-coder", family="qwen2.5-coder")
    assert (model.id, model.family) == ("my-coder", "qwen2.5-coder")
    with pytest.raises(HanlinError, match="Unknown family"):
        store.import_file(path, model_id="other", family="gpt5")
    with pytest.raises(HanlinError, match="cannot be a model id"):
        store.import_file(path, model_id="Bad Id!")
    other = tmp_path / "other.gguf"
    other.write_bytes(make_gguf(50_000))
    with pytest.raises(HanlinError, match="already installed"):
        store.import_file(other, model_id="my-coder")


def test_import_rejects_broken_files(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        ModelStore().import_file(bad)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(make_gguf(100_000)[:60_000])
    with pytest.raises(ModelFileError, match="truncated"):
        ModelStore().import_file(truncated)
    assert ModelStore().installed() == []


def test_resolve_errors_say_what_to_do(tmp_path: Path) -> None:
    store = ModelStore()
    with pytest.raises(ModelNotInstalledError) as err:
        store.resolve("qwen3-4b-q4km")
    assert "hanlin models pull qwen3-4b-q4km" in str(err.value)
    with pytest.raises(UnknownModelError) as unknown:
        store.resolve("qwen3-4b")
    assert "qwen3-4b-q4km" in str(unknown.value)
    with pytest.raises(ModelFileError, match="does not exist"):
        store.resolve(str(tmp_path / "missing.gguf"))
    path = tmp_path / "direct.gguf"
    path.write_bytes(make_gguf(20_000))
    direct = store.resolve(str(path))
    assert direct.source == "import" and direct.path == path.resolve()
    assert store.installed() == []  # a path is used, not recorded


def test_resolving_a_hub_ref_that_is_not_pulled_says_how_to_pull_it() -> None:
    store = ModelStore()
    ref = "hf.co/someone/Tiny-GGUF/sub/Tiny-Q4_K_M.gguf"
    with pytest.raises(ModelNotInstalledError) as err:
        store.resolve(ref)
    assert str(err.value) == (
        f"`{ref}` is not downloaded yet — run `hanlin models pull {ref}`"
    )
    # a partial download of it is reported with its progress
    folder = store.models_dir / "someone" / "Tiny-GGUF" / "sub"
    folder.mkdir(parents=True)
    (folder / "Tiny-Q4_K_M.gguf.part").write_bytes(b"x" * 250)
    note = {"id": "tiny-q4_k_m", "repo": "someone/Tiny-GGUF", "file": "sub/Tiny-Q4_K_M.gguf"}
    (folder / "Tiny-Q4_K_M.gguf.part.json").write_text(json.dumps({**note, "size": 1000}))
    with pytest.raises(ModelNotInstalledError, match=r"only partly downloaded \(25%\)"):
        store.resolve(ref)


def test_remove_inside_models_dir_deletes_the_file(tmp_path: Path) -> None:
    store = ModelStore()
    inside = store.models_dir / "me" / "Mine-GGUF" / "mine.gguf"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(make_gguf(20_000))
    store.import_file(inside, model_id="mine")
    store.remove("mine")
    assert not inside.exists() and not (store.models_dir / "me").exists()
    with pytest.raises(UnknownModelError, match="No installed or partly downloaded model"):
        store.remove("mine")


def test_missing_file_is_not_listed(tmp_path: Path) -> None:
    path = tmp_path / "gone.gguf"
    path.write_bytes(make_gguf(20_000))
    store = ModelStore()
    store.import_file(path)
    path.unlink()
    assert store.installed() == [] and store.get("gone") is None


def test_broken_manifest_is_moved_aside(tmp_path: Path, smollm2_path: Path) -> None:
    store = ModelStore()
    store.models_dir.mkdir(parents=True)
    store.manifest_path.write_text("{not json")
    assert store.installed() == []
    assert list(store.models_dir.glob("manifest.json.broken-*"))
    store.import_file(smollm2_path)
    data = json.loads(store.manifest_path.read_text())
    assert [m["id"] for m in data["models"]] == ["smollm2-135m-instruct.q4_1"]


def test_two_broken_manifests_in_one_second_are_both_kept() -> None:
    store = ModelStore()
    store.models_dir.mkdir(parents=True)
    store.manifest_path.write_text("{first")
    assert store.installed() == []
    store.manifest_path.write_text("{second")
    assert store.installed() == []
    kept = sorted(p.read_text() for p in store.models_dir.glob("manifest.json.broken-*"))
    assert kept == ["{first", "{second"]  # the second never overwrote the first


def test_manifest_paths_are_relative_inside_models_dir(tmp_path: Path) -> None:
    store = ModelStore()
    inside = store.models_dir / "o" / "R" / "x.gguf"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(make_gguf(20_000))
    store.import_file(inside, model_id="x")
    raw = json.loads(store.manifest_path.read_text())["models"][0]
    assert raw["path"] == "o/R/x.gguf"
    # moving the whole models folder keeps it working
    moved = tmp_path / "moved"
    shutil.move(str(store.models_dir), moved)
    assert ModelStore(models_dir=moved).get("x").path == moved / "o" / "R" / "x.gguf"


def test_slug_id() -> None:
    assert slug_id("Qwen3-4B-Q4_K_M.gguf") == "qwen3-4b-q4_k_m"
    assert slug_id("weird name (v2).GGUF") == "weird-name-v2"
