"""Whether a model fits this machine: weights + KV cache + overhead against free RAM or VRAM.

Why: the catalog, the Models page and `hanlin doctor` tell the user, before a multi-gigabyte
download, whether a model "fits", is "tight" or "won't fit" (Jan's hint). The verdict is a
pure function of a catalog entry or a GGUF header and a `HardwareInfo` (runtime/hardware.py
detects that), so it is tested without the machine it describes.

Memory needed = weights (file size) + KV cache + a compute-buffer overhead, with
KV cache = layers × kv_heads × (key_len + value_len) × 2 bytes × context (f16 cache). It is
compared with free VRAM when llama.cpp can offload to a GPU with its own memory, else with
available RAM (Apple's unified memory is RAM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hanlin.engine.core.units import format_bytes, parse_parameter_count

if TYPE_CHECKING:
    from hanlin.engine.models.catalog import CatalogEntry
    from hanlin.engine.models.gguf_info import GGUFInfo
    from hanlin.engine.runtime.hardware import HardwareInfo

__all__ = [
    "DEFAULT_N_CTX",
    "FitVerdict",
    "default_n_ctx",
    "estimate_file_size",
    "fit_for_entry",
    "fit_for_file",
    "kv_cache_bytes_for",
    "kv_cache_bytes_of",
]

#: context length Hanlin loads models with unless told otherwise; the verdict assumes the
#: same, so "fits" means "fits as Hanlin will load it"
DEFAULT_N_CTX = 8192

FitLevel = Literal["fits", "tight", "wont_fit"]


def default_n_ctx(trained: int | None) -> int:
    """The context Hanlin loads a model with when not told: its training context, capped."""
    return min(trained or DEFAULT_N_CTX, DEFAULT_N_CTX)


@dataclass(frozen=True)
class FitVerdict:
    level: FitLevel
    need_bytes: int
    reason: str
    #: True when the size was estimated from parameters × bits per weight
    estimated: bool = False



#: approximate bits per weight of common GGUF quantizations (llama.cpp's quantize table)
BITS_PER_WEIGHT: dict[str, float] = {
    "F32": 32.0,
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_K_M": 5.69,
    "Q5_K_S": 5.54,
    "Q5_1": 6.0,
    "Q5_0": 5.5,
    "Q4_K_M": 4.85,
    "Q4_K_S": 4.58,
    "Q4_1": 5.0,
    "Q4_0": 4.5,
    "IQ4_NL": 4.5,
    "IQ4_XS": 4.25,
    "Q3_K_L": 4.27,
    "Q3_K_M": 3.91,
    "Q3_K_S": 3.5,
    "IQ3_M": 3.66,
    "IQ3_XS": 3.3,
    "Q2_K": 2.96,
    "IQ2_M": 2.7,
    "IQ2_XS": 2.31,
}

#: compute buffers, scratch and runtime on top of weights + KV cache
_OVERHEAD_FIXED = 300 * 1024**2
_OVERHEAD_FRACTION = 0.05
#: "fits" leaves this share of the budget free for everything else on the machine
_COMFORT = 0.85


def estimate_file_size(parameters: str, quantization: str) -> int | None:
    """GGUF size from a parameter count and a quantization name, or None if unknown."""
    n = parse_parameter_count(parameters)
    bpw = BITS_PER_WEIGHT.get((quantization or "").upper())
    if n is None or bpw is None:
        return None
    return int(n * bpw / 8)


def kv_cache_bytes_for(
    n_layers: int | None,
    n_kv_heads: int | None,
    key_len: int | None,
    value_len: int | None,
    n_ctx: int,
) -> int | None:
    """layers × kv_heads × (key_len + value_len) × 2 bytes (f16) × context, or None if unknown."""
    if not (n_layers and n_kv_heads and key_len and value_len):
        return None
    return n_layers * n_kv_heads * (key_len + value_len) * 2 * n_ctx


def _verdict(
    weights: int, kv: int | None, n_ctx: int, hw: HardwareInfo, *, estimated: bool
) -> FitVerdict:
    need = int((weights + (kv or 0)) * (1 + _OVERHEAD_FRACTION)) + _OVERHEAD_FIXED
    parts = f"{'~' if estimated else ''}{format_bytes(weights)} weights"
    parts += (
        f" + {format_bytes(kv)} KV cache at {n_ctx} tokens"
        if kv is not None
        else " (KV cache size unknown: no layer/head counts)"
    )
    what = f"needs about {format_bytes(need)} ({parts}{', size estimated' if estimated else ''})"

    gpu_budget = hw.gpu_offload_supported and not hw.unified_memory and hw.vram_total
    if gpu_budget:
        free = hw.vram_free or hw.vram_total or 0
        total = hw.vram_total or 0
        if need <= free * _COMFORT:
            return FitVerdict(
                "fits", need, f"{what}; {format_bytes(free)} of GPU memory free", estimated
            )
        if need <= total:
            return FitVerdict(
                "tight",
                need,
                f"{what}; only {format_bytes(free)} of GPU memory free — close other GPU programs",
                estimated,
            )
        if need <= hw.ram_available:
            return FitVerdict(
                "tight",
                need,
                f"{what}; more than the GPU's {format_bytes(total)}, "
                "so part runs on the CPU (slower)",
                estimated,
            )
        return FitVerdict(
            "wont_fit",
            need,
            f"{what}; more than GPU memory ({format_bytes(total)}) and free RAM "
            f"({format_bytes(hw.ram_available)}) — pick a smaller model or quantization",
            estimated,
        )
    memory = "unified memory" if hw.unified_memory else "RAM"
    if need <= hw.ram_available * _COMFORT:
        return FitVerdict(
            "fits", need, f"{what}; {format_bytes(hw.ram_available)} {memory} available", estimated
        )
    if need <= hw.ram_total * 0.9:
        return FitVerdict(
            "tight",
            need,
            f"{what}; only {format_bytes(hw.ram_available)} {memory} available of "
            f"{format_bytes(hw.ram_total)} — close other programs or use a smaller context",
            estimated,
        )
    return FitVerdict(
        "wont_fit",
        need,
        f"{what}; this machine has {format_bytes(hw.ram_total)} {memory} — "
        "pick a smaller model or quantization",
        estimated,
    )


def fit_for_entry(entry: CatalogEntry, hw: HardwareInfo, n_ctx: int | None = None) -> FitVerdict:
    """Whether a catalog model fits, before it is downloaded (catalog fields only)."""
    ctx = n_ctx or default_n_ctx(entry.context_length)
    estimated = entry.size_bytes is None
    weights = (
        entry.size_bytes
        if entry.size_bytes is not None
        else estimate_file_size(entry.parameters, entry.quantization)
    )
    if weights is None:
        return FitVerdict(
            "tight",
            0,
            f"size unknown (no size in the catalog and no estimate for {entry.parameters} "
            f"{entry.quantization}) — check the download size before pulling",
            True,
        )
    kv = kv_cache_bytes_for(entry.n_layers, entry.n_kv_heads, entry.head_dim, entry.head_dim, ctx)
    return _verdict(weights, kv, ctx, hw, estimated=estimated)


def kv_cache_bytes_of(info: GGUFInfo, n_ctx: int) -> int | None:
    """KV-cache bytes of a GGUF at `n_ctx` from its header, or None when unknown."""
    return kv_cache_bytes_for(
        info.n_layers, info.n_kv_heads, info.key_length, info.value_length, n_ctx
    )


def fit_for_file(info: GGUFInfo, size_bytes: int, hw: HardwareInfo, n_ctx: int) -> FitVerdict:
    """Whether an on-disk GGUF fits at `n_ctx`, from its header."""
    return _verdict(size_bytes, kv_cache_bytes_of(info, n_ctx), n_ctx, hw, estimated=False)
