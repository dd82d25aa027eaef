"""The fits / tight / won't-fit verdicts, from catalog numbers and from GGUF headers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hanlin.engine.models.catalog import CatalogEntry, load_catalog
from hanlin.engine.models.fit import (
    estimate_file_size,
    fit_for_entry,
    fit_for_file,
    kv_cache_bytes_for,
)
from hanlin.engine.models.gguf_info import read_gguf_info
from hanlin.engine.runtime.hardware import HardwareInfo, detect_hardware

GB = 10**9


def machine(ram_total: float = 16, ram_available: float = 12, **gpu: object) -> HardwareInfo:
    base = HardwareInfo(
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
    return dataclasses.replace(base, **gpu)  # type: ignore[arg-type]


def entry(**changes: object) -> CatalogEntry:
    base = CatalogEntry(
        id="test-7b-q4km",
        name="Test 7B",
        publisher="Test",
        family="qwen2.5-coder",
        parameters="7B",
        quantization="Q4_K_M",
        repo="test/test-7b",
        file="test-7b-q4_k_m.gguf",
        revision=None,
        size_bytes=4_680_000_000,
        sha256=None,
        context_length=32768,
        roles=("chat",),
        license="apache-2.0",
        description="test",
        n_layers=28,
        n_kv_heads=4,
        head_dim=128,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_kv_cache_formula() -> None:
    # layers × kv_heads × (key_len + value_len) × 2 bytes × ctx
    assert kv_cache_bytes_for(28, 4, 128, 128, 8192) == 28 * 4 * 256 * 2 * 8192
    assert kv_cache_bytes_for(None, 4, 128, 128, 8192) is None


def test_estimated_size_from_parameters_and_quant() -> None:
    assert estimate_file_size("1.5B", "Q4_K_M") == pytest.approx(1.5e9 * 4.85 / 8, rel=1e-6)
    assert estimate_file_size("30B-A3B", "Q4_K_M") == pytest.approx(30e9 * 4.85 / 8, rel=1e-6)
    assert estimate_file_size("135M", "Q8_0") == pytest.approx(135e6 * 8.5 / 8, rel=1e-6)
    assert estimate_file_size("7B", "NOT_A_QUANT") is None


def test_small_model_fits_in_ram() -> None:
    verdict = fit_for_entry(entry(), machine(ram_total=32, ram_available=24), n_ctx=8192)
    assert verdict.level == "fits"
    kv = 28 * 4 * 256 * 2 * 8192
    assert verdict.need_bytes > 4_680_000_000 + kv
    assert "KV cache at 8192 tokens" in verdict.reason and "RAM available" in verdict.reason
    assert not verdict.estimated


def test_tight_and_wont_fit() -> None:
    tight = fit_for_entry(entry(), machine(ram_total=8, ram_available=5))
    assert tight.level == "tight" and "close other programs" in tight.reason
    huge = fit_for_entry(entry(size_bytes=20 * GB), machine(ram_total=8, ram_available=5))
    assert huge.level == "wont_fit" and "smaller model" in huge.reason


def test_unknown_size_is_estimated_and_says_so() -> None:
    verdict = fit_for_entry(entry(size_bytes=None, parameters="1.5B"), machine())
    assert verdict.estimated and "estimated" in verdict.reason
    assert verdict.level == "fits"


def test_gpu_budget_is_vram_and_partial_offload_is_tight() -> None:
    gpu = {
        "backend": "cuda",
        "gpu_offload_supported": True,
        "gpu_name": "RTX",
        "vram_total": 8 * GB,
        "vram_free": int(7.5 * GB),
    }
    assert fit_for_entry(entry(), machine(**gpu), n_ctx=4096).level == "fits"
    big = fit_for_entry(entry(size_bytes=12 * GB), machine(ram_total=64, ram_available=48, **gpu))
    assert big.level == "tight" and "part runs on the CPU" in big.reason
    # Apple silicon: unified memory, so RAM is the budget even with Metal.
    metal = machine(
        ram_total=16,
        ram_available=12,
        backend="metal",
        gpu_offload_supported=True,
        unified_memory=True,
    )
    assert "unified memory" in fit_for_entry(entry(), metal).reason


def test_every_shipped_catalog_entry_gets_a_verdict() -> None:
    hw = detect_hardware()
    for item in load_catalog().entries:
        verdict = fit_for_entry(item, hw)
        assert verdict.level in ("fits", "tight", "wont_fit"), item.id
        assert verdict.reason


def test_fit_for_file_uses_the_gguf_header(smollm2_path: Path) -> None:
    info = read_gguf_info(smollm2_path)
    verdict = fit_for_file(info, smollm2_path.stat().st_size, machine(), n_ctx=2048)
    assert verdict.level == "fits"
    kv = info.n_layers * info.n_kv_heads * (info.key_length + info.value_length) * 2 * 2048
    assert verdict.need_bytes >= smollm2_path.stat().st_size + kv
