"""The 2025-26 catalog: new entries, split models and sub-folders, projectors, real sizes.

The schema must take what unsloth's large repos look like (a `Q4_K_M/` folder holding
`-00001-of-00002.gguf` shards) and refuse what is not a model (a vision projector) or
would pull the wrong thing (a later shard, one sha256 for several files). Pinned sizes
replace the parameter-count estimate in the fit verdict, which for Qwen's small files is
far too low, and a workstation-only model is a plain "won't fit" on a laptop.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from hanlin.engine.core.errors import CatalogError
from hanlin.engine.models.catalog import is_projector_file, load_catalog
from hanlin.engine.models.families import FAMILIES
from hanlin.engine.models.fit import estimate_file_size, fit_for_entry
from hanlin.engine.models.shard_names import ShardName, parse_shard_name, shard_files
from hanlin.engine.runtime.hardware import HardwareInfo

GB = 10**9

ENTRY = """
[[model]]
id = "my-model-q4km"
name = "My Model"
publisher = "Me"
family = "qwen3"
parameters = "4B"
quantization = "Q4_K_M"
repo = "me/My-Model-GGUF"
file = "{file}"
context_length = 32768
roles = ["chat"]
license = "apache-2.0"
description = "Mine."
{extra}
"""

NEW_IDS = {
    "qwen3-4b-instruct-2507-q4km": "qwen3-instruct-2507",
    "qwen3-30b-a3b-instruct-2507-q4km": "qwen3-instruct-2507",
    "qwen3-4b-thinking-2507-q4km": "qwen3-thinking-2507",
    "qwen3-30b-a3b-thinking-2507-q4km": "qwen3-thinking-2507",
    "qwen3.5-2b-q4km": "qwen3.5",
    "qwen3.5-4b-q4km": "qwen3.5",
    "qwen3.5-9b-q4km": "qwen3.5",
    "qwen3.6-35b-a3b-ud-q4km": "qwen3.6",
    "deepseek-r1-0528-qwen3-8b-q4km": "deepseek-r1-0528",
    "glm-4-9b-0414-q4km": "glm-4",
    "glm-4.7-flash-ud-q4kxl": "glm-4.7-flash",
    "codegeex4-all-9b-q4km": "codegeex4",
    "glm-4.5-air-q4km": "glm-4.5",
    "kimi-linear-48b-a3b-instruct-q4km": "kimi-linear",
}

#: quantizers that re-upload files under the same name: their entries must pin a commit
REUPLOADERS = ("bartowski/", "lmstudio-community/")


def user_catalog(tmp_path: Path, file: str, extra: str = "") -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(ENTRY.format(file=file, extra=extra), encoding="utf-8")
    return path


def machine(ram_total: float, ram_available: float) -> HardwareInfo:
    return HardwareInfo(
        cpu_name="Test CPU",
        physical_cores=8,
        logical_cores=16,
        ram_total=int(ram_total * GB),
        ram_available=int(ram_available * GB),
        backend="cpu",
        gpu_offload_supported=False,
        gpu_name=None,
        vram_total=None,
        vram_free=None,
        build_info="CPU : AVX2 = 1",
    )


def test_new_entries_exist_with_their_families() -> None:
    catalog = load_catalog()
    for entry_id, family in NEW_IDS.items():
        entry = catalog.get(entry_id)
        assert entry.family == family and family in FAMILIES, entry_id
        assert entry.n_layers and entry.n_kv_heads and entry.head_dim, entry_id


def test_every_shipped_file_is_a_model_and_reuploaders_are_pinned() -> None:
    for entry in load_catalog():
        assert not is_projector_file(entry.file), entry.id
        if entry.is_sharded:
            assert entry.sha256 is None and entry.size_bytes, entry.id
        if entry.repo.startswith(REUPLOADERS) and entry.id in NEW_IDS:
            assert entry.revision and re.fullmatch(r"[0-9a-f]{40}", entry.revision), entry.id
        if entry.sha256:
            assert entry.size_bytes, entry.id  # a sha256 pin always comes with its size


def test_glm_45_air_is_the_first_split_entry() -> None:
    entry = load_catalog().get("glm-4.5-air-q4km")
    assert entry.file == "Q4_K_M/GLM-4.5-Air-Q4_K_M-00001-of-00002.gguf"
    assert entry.shard_files == [
        "Q4_K_M/GLM-4.5-Air-Q4_K_M-00001-of-00002.gguf",
        "Q4_K_M/GLM-4.5-Air-Q4_K_M-00002-of-00002.gguf",
    ]
    assert entry.size_bytes == 72_975_748_384  # both shards together
    assert entry.hub_ref == "hf.co/unsloth/GLM-4.5-Air-GGUF/" + entry.file


def test_qwen2_5_coder_7b_instruct_cannot_break() -> None:
    """Qwen's repo has the single file and a shard set: the entry pins the commit."""
    entry = load_catalog().get("qwen2.5-coder-7b-instruct-q4km")
    assert entry.revision == "13fb94bfda8c8cf22497dc57b78f391a9acb426a"
    assert entry.file == "qwen2.5-coder-7b-instruct-q4_k_m.gguf" and not entry.is_sharded
    assert entry.size_bytes == 4_683_073_536 and entry.sha256


@pytest.mark.parametrize(
    "name",
    [
        "mmproj-F16.gguf",
        "mmproj-Qwen3.6-35B-A3B-F16.gguf",
        "Qwen3.5-4B-mmproj-F16.gguf",
        "sub/dir/MMPROJ-model-q8_0.gguf",
        "mmproj.gguf",
    ],
)
def test_projector_files_are_recognised(name: str) -> None:
    assert is_projector_file(name)


@pytest.mark.parametrize(
    "name",
    [
        "Qwen3.5-4B-Q4_K_M.gguf",
        "Q4_K_M/GLM-4.5-Air-Q4_K_M-00001-of-00002.gguf",
        "mmprojection.gguf",
    ],
)
def test_models_are_not_projectors(name: str) -> None:
    assert not is_projector_file(name)


def test_shard_names() -> None:
    assert parse_shard_name("Q4_K_M/GLM-4.5-Air-Q4_K_M-00002-of-00002.gguf") == ShardName(
        "Q4_K_M/GLM-4.5-Air-Q4_K_M", 2, 2
    )
    assert parse_shard_name("Qwen3-8B-Q4_K_M.gguf") is None
    assert shard_files("m-00001-of-00003.gguf") == [
        "m-00001-of-00003.gguf",
        "m-00002-of-00003.gguf",
        "m-00003-of-00003.gguf",
    ]
    assert shard_files("single.gguf") == ["single.gguf"]
    assert shard_files("odd-00004-of-00003.gguf") == ["odd-00004-of-00003.gguf"]


def test_schema_accepts_a_sub_folder_and_a_first_shard(tmp_path: Path) -> None:
    path = user_catalog(tmp_path, "Q4_K_M/My-Model-Q4_K_M-00001-of-00003.gguf", "size_bytes = 3")
    entry = load_catalog(user=path).get("my-model-q4km")
    assert entry.is_sharded and len(entry.shard_files) == 3
    assert entry.shard_files[2] == "Q4_K_M/My-Model-Q4_K_M-00003-of-00003.gguf"
    path = user_catalog(tmp_path, "Q4_K_M/My-Model-Q4_K_M.gguf")
    assert not load_catalog(user=path).get("my-model-q4km").is_sharded


@pytest.mark.parametrize(
    ("file", "extra", "message"),
    [
        ("mmproj-F16.gguf", "", "vision projector"),
        ("Q8_0/mmproj-My-Model-Q8_0.gguf", "", "vision projector"),
        ("My-Model-Q4_K_M-00002-of-00003.gguf", "", "first shard"),
        ("My-Model-Q4_K_M-00001-of-00001.gguf", "", "not a valid shard"),
        ("My-Model-Q4_K_M-00001-of-00002.gguf", 'sha256 = "' + "a" * 64 + '"', "sha256"),
        ("Q4_K_M\\\\My-Model-Q4_K_M.gguf", "", "relative path"),
        ("Q4_K_M//My-Model-Q4_K_M.gguf", "", "relative path"),
        ("../My-Model-Q4_K_M.gguf", "", "relative path"),
        ("/abs/My-Model-Q4_K_M.gguf", "", "relative path"),
        ("My-Model-Q4_K_M.bin", "", "relative path"),
    ],
)
def test_schema_refuses_what_is_not_one_model(
    tmp_path: Path, file: str, extra: str, message: str
) -> None:
    path = user_catalog(tmp_path, file, extra)
    with pytest.raises(CatalogError) as err:
        load_catalog(user=path)
    text = str(err.value)
    assert message in text and "my-model-q4km" in text and str(path) in text
    if message == "first shard":
        assert "My-Model-Q4_K_M-00001-of-00003.gguf" in (err.value.hint or "")


def test_real_sizes_replace_the_parameter_estimate() -> None:
    """Qwen's 0.5B Q4_K_M is 491 MB; parameters x bits per weight says ~303 MB."""
    entry = load_catalog().get("qwen2.5-coder-0.5b-instruct-q4km")
    assert entry.size_bytes == 491_400_064
    estimate = estimate_file_size(entry.parameters, entry.quantization)
    assert estimate is not None and estimate < 0.65 * entry.size_bytes
    verdict = fit_for_entry(entry, machine(16, 12))
    assert not verdict.estimated and "491" in verdict.reason
    assert verdict.need_bytes > entry.size_bytes


def test_workstation_models_plainly_do_not_fit_a_laptop() -> None:
    catalog = load_catalog()
    laptop, workstation = machine(16, 11), machine(128, 120)
    for entry_id in ("glm-4.5-air-q4km", "kimi-linear-48b-a3b-instruct-q4km"):
        entry = catalog.get(entry_id)
        on_laptop = fit_for_entry(entry, laptop)
        assert on_laptop.level == "wont_fit", entry_id
        assert "pick a smaller model" in on_laptop.reason and not on_laptop.estimated
        assert fit_for_entry(entry, workstation).level == "fits", entry_id
    # the split model's verdict counts both shards, not the first one's size
    air = catalog.get("glm-4.5-air-q4km")
    assert fit_for_entry(air, workstation).need_bytes > air.size_bytes
    assert "73.0 GB weights" in fit_for_entry(air, laptop).reason


def test_hybrid_attention_kv_cache_counts_only_attention_layers() -> None:
    """Qwen3.5-9B keeps KV in 8 of its 32 layers: 32 KiB per token at f16, not 128 KiB."""
    entry = load_catalog().get("qwen3.5-9b-q4km")
    per_token = entry.n_layers * entry.n_kv_heads * 2 * entry.head_dim * 2
    assert per_token == 32_768
    small = dataclasses.replace(entry, n_layers=32)
    laptop = machine(16, 12)
    assert fit_for_entry(entry, laptop).need_bytes < fit_for_entry(small, laptop).need_bytes
