"""The shipped catalog's content, the schema's validation, and user entries merged over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlin.engine.core import paths
from hanlin.engine.core.errors import CatalogError, UnknownModelError
from hanlin.engine.models.catalog import KNOWN_FAMILIES, MODEL_ROLES, load_catalog

GOOD_ENTRY = """
[[model]]
id = "my-model-q4km"
name = "My Model"
publisher = "Me"
family = "qwen3"
parameters = "4B"
quantization = "Q4_K_M"
repo = "me/My-Model-GGUF"
file = "My-Model-Q4_K_M.gguf"
context_length = 32768
roles = ["chat"]
license = "apache-2.0"
description = "Mine."
"""


def test_shipped_catalog_covers_the_required_models() -> None:
    catalog = load_catalog()
    ids = {e.id for e in catalog}
    for size in ("0.5b", "1.5b", "3b", "7b", "14b", "32b"):
        assert f"qwen2.5-coder-{size}-instruct-q4km" in ids
        assert f"qwen2.5-coder-{size}-base-q4km" in ids
    for size in ("0.6b", "1.7b", "4b", "8b", "14b", "30b-a3b"):
        assert f"qwen3-{size}-q4km" in ids
    for size in ("1.5b", "7b", "14b"):
        assert f"deepseek-r1-distill-qwen-{size}-q4km" in ids
    assert "qwen3-coder-30b-a3b-instruct-q4km" in ids
    assert "deepseek-coder-v2-lite-instruct-q4km" in ids
    assert {"deepseek-coder-1.3b-base-q4km", "deepseek-coder-6.7b-base-q4km"} <= ids
    # Q8_0 for the smallest models
    assert {"qwen2.5-coder-0.5b-base-q8", "qwen2.5-coder-0.5b-instruct-q8", "qwen3-0.6b-q8"} <= ids
    assert {e.family for e in catalog} == set(KNOWN_FAMILIES) - {"llama"}


def test_shipped_entries_are_consistent() -> None:
    catalog = load_catalog()
    for entry in catalog:
        assert entry.source == "shipped"
        assert entry.file.endswith(".gguf") and "/" in entry.repo
        assert entry.quantization.replace("_", "").upper() in entry.file.replace("_", "").upper()
        assert entry.n_layers and entry.n_kv_heads and entry.head_dim, entry.id
        assert set(entry.roles) <= set(MODEL_ROLES)
        if "-base-" in entry.id:
            assert entry.roles == ("completion",), entry.id
        if "instruct" in entry.id and entry.family == "qwen2.5-coder":
            assert entry.roles == ("chat",), entry.id
        if entry.family in ("qwen3", "deepseek-r1-distill"):
            assert entry.sampling.temperature == 0.6
    coder = catalog.get("qwen2.5-coder-1.5b-instruct-q4km")
    assert coder.repo == "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF"
    assert coder.file == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert catalog.get("qwen3-4b-q4km").repo == "Qwen/Qwen3-4B-GGUF"
    assert {e.id for e in catalog.with_role("completion")} >= {"qwen2.5-coder-1.5b-base-q4km"}


def test_unknown_id_suggests_close_ones() -> None:
    with pytest.raises(UnknownModelError) as err:
        load_catalog().get("qwen2.5-coder-1.5b-q4km")
    assert "qwen2.5-coder-1.5b-base-q4km" in str(err.value)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('colour = "red"\n', "unknown key `colour`"),
        ('roles = ["edit"]', "roles"),
        ('sha256 = "abc"', "sha256"),
        ("size_bytes = -5", "size_bytes"),
        ('family = "gpt5"', "unknown family `gpt5`"),
        ('context_length = "long"', "context_length"),
        ('repo = "no-slash"', "repo"),
        ('file = "../../etc/passwd.gguf"', "file"),
        ('file = "model.bin"', "file"),
        ('sampling = "nope"', "unknown sampling preset"),
        ("sampling = { temperature = 9.0 }", "temperature"),
        ("sampling = { warmth = 1.0 }", "unknown sampling key `warmth`"),
        ("roles = []", "roles"),
        ("n_layers = true", "n_layers"),
    ],
)
def test_bad_values_name_the_file_and_the_entry(tmp_path: Path, change: str, expected: str) -> None:
    key = change.split("=")[0].strip()
    lines = [ln for ln in GOOD_ENTRY.splitlines() if not ln.startswith(f"{key} =")]
    path = _write(tmp_path, "\n".join(lines) + "\n" + change + "\n")
    with pytest.raises(CatalogError) as err:
        load_catalog(user=path)
    message = str(err.value)
    assert str(path) in message
    assert "my-model-q4km" in message
    assert expected in message


def test_bad_id_missing_key_duplicates_and_syntax(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD_ENTRY.replace('"my-model-q4km"', '"My Model!"'))
    with pytest.raises(CatalogError, match="id must be"):
        load_catalog(user=path)
    path = _write(tmp_path, GOOD_ENTRY.replace('license = "apache-2.0"\n', ""))
    with pytest.raises(CatalogError, match="missing required key `license`"):
        load_catalog(user=path)
    path = _write(tmp_path, GOOD_ENTRY + GOOD_ENTRY)
    with pytest.raises(CatalogError, match="defined twice"):
        load_catalog(user=path)
    path = _write(tmp_path, GOOD_ENTRY + "\n[[model]\n")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(user=path)
    path = _write(tmp_path, "models = 3\n" + GOOD_ENTRY)
    with pytest.raises(CatalogError, match="unknown top-level key `models`"):
        load_catalog(user=path)
    path = _write(tmp_path, "schema_version = 7\n" + GOOD_ENTRY)
    with pytest.raises(CatalogError, match="schema_version"):
        load_catalog(user=path)


def test_user_entries_merge_over_shipped(tmp_path: Path) -> None:
    override = GOOD_ENTRY.replace('"my-model-q4km"', '"qwen3-4b-q4km"').replace(
        'repo = "me/My-Model-GGUF"', 'repo = "mirror/Qwen3-4B-GGUF"'
    )
    user_file = paths.user_catalog_file()  # HANLIN_HOME is a fresh temp dir per test
    user_file.parent.mkdir(parents=True, exist_ok=True)
    user_file.write_text(GOOD_ENTRY + 'sampling = "qwen3-thinking"\n' + override, encoding="utf-8")
    shipped = load_catalog(user=tmp_path / "absent.toml")
    catalog = load_catalog()
    assert len(catalog) == len(shipped) + 1
    mine = catalog.get("my-model-q4km")
    assert mine.source == "user"
    assert mine.sampling.top_k == 20  # the shipped preset, used from the user's file
    replaced = catalog.get("qwen3-4b-q4km")
    assert replaced.repo == "mirror/Qwen3-4B-GGUF" and replaced.source == "user"
    assert [e.id for e in catalog].index("qwen3-4b-q4km") == [e.id for e in shipped].index(
        "qwen3-4b-q4km"
    )
    assert catalog.files == (catalog.files[0], user_file)
