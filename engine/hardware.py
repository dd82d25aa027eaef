"""What this machine can run: CPU, RAM, the GPU backend llama.cpp was built with, VRAM.

Why: the catalog and the doctor command tell the user, before a multi-gigabyte
download, whether a model "fits", is "tight" or "won't fit" (Jan's hint), and
the runtime needs the thread count (physical cores) and whether to offload.

Memory needed = weights (file size) + KV cache + a compute-buffer overhead,
with KV cache = layers × kv_heads × (key_len + value_len) × 2 bytes × context
(f16 cache). It is compared with free VRAM when llama.cpp can offload to a GPU
with its own memory, else with available RAM (Apple's unified memory is RAM).

Backends are detected through a registry of probes over llama.cpp's own
answers (`llama_supports_gpu_offload`, `llama_print_system_info`, and ggml's
backend device list, which also reports device memory); `nvidia-smi` fills in
VRAM for CUDA when the device API cannot.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import psutil

if TYPE_CHECKING:
    from engine.catalog import CatalogEntry
    from engine.gguf_info import GGUFInfo

__all__ = [
    "DEFAULT_N_CTX",
    "FitVerdict",
    "GpuDevice",
    "HardwareInfo",
    "detect_hardware",
    "estimate_file_size",
    "fit_for_entry",
    "fit_for_file",
    "format_bytes",
    "kv_cache_bytes_for",
]

#: context length Hanlin loads chat models with unless told otherwise
DEFAULT_N_CTX = 8192

Backend = Literal["cuda", "metal", "vulkan", "cpu"]
FitLevel = Literal["fits", "tight", "wont_fit"]

GiB = 1024**3


@dataclass(frozen=True)
class GpuDevice:
    name: str
    description: str
    memory_total: int | None
    memory_free: int | None


@dataclass
class HardwareInfo:
    cpu_name: str
    physical_cores: int
    logical_cores: int
    ram_total: int
    ram_available: int
    backend: Backend
    gpu_offload_supported: bool
    gpu_name: str | None
    vram_total: int | None
    vram_free: int | None
    build_info: str
    #: unified memory (Apple silicon): the GPU shares RAM, so RAM is the budget
    unified_memory: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class FitVerdict:
    level: FitLevel
    need_bytes: int
    reason: str
    #: True when the size was estimated from parameters × bits per weight
    estimated: bool = False


# ---------------------------------------------------------------- detection


def format_bytes(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _cpu_name() -> str:
    try:
        if sys.platform.startswith("linux"):
            for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                    return value.strip()
        elif sys.platform == "darwin":
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.stdout.strip():
                return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _llama_lib_dir() -> Path:
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def _ggml_devices() -> list[tuple[int, GpuDevice]]:
    """(device type, device) for every ggml backend device, via libggml's C API.

    Types: 0 CPU, 1 GPU, 2 integrated GPU, 3 accelerator. Empty if unreadable.
    """
    names = {"linux": "libggml.so", "darwin": "libggml.dylib", "win32": "ggml.dll"}
    lib_path = _llama_lib_dir() / names.get(sys.platform, "libggml.so")
    try:
        lib = ctypes.CDLL(str(lib_path))
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
            getattr(lib, fn).restype = ctypes.c_char_p
        lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_type.restype = ctypes.c_int
        lib.ggml_backend_dev_memory.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_size_t),
        ]
        lib.ggml_backend_dev_memory.restype = None
    except (OSError, AttributeError):
        return []
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        if not dev:
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append(
            (
                lib.ggml_backend_dev_type(dev),
                GpuDevice(
                    name=(lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace"),
                    description=(lib.ggml_backend_dev_description(dev) or b"").decode(
                        errors="replace"
                    ),
                    memory_total=total.value or None,
                    memory_free=free.value or None,
                ),
            )
        )
    return devices


def _nvidia_smi() -> GpuDevice | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        name, total, free = (part.strip() for part in out.stdout.splitlines()[0].split(","))
        return GpuDevice(name, name, int(float(total)) * 1024**2, int(float(free)) * 1024**2)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class _BackendProbe:
    """Recognises one GPU backend in llama.cpp's system info / device names."""

    backend: Backend
    pattern: str  # regex, case-insensitive, over system info + device names
    unified_memory: bool = False
    vram_fallback: Callable[[], GpuDevice | None] | None = None


#: checked in order; the first match is the backend (CPU when none matches)
_BACKEND_PROBES: list[_BackendProbe] = [
    _BackendProbe("cuda", r"\bCUDA\b|\bcuda\d*\b", vram_fallback=_nvidia_smi),
    _BackendProbe("metal", r"\bMETAL\b|\bMTL\d*\b", unified_memory=True),
    _BackendProbe("vulkan", r"\bVULKAN\b|\bVulkan\d*\b"),
]


def _detect() -> HardwareInfo:
    import llama_cpp

    vm = psutil.virtual_memory()
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    system_info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    devices = _ggml_devices()
    gpus = [dev for kind, dev in devices if kind in (1, 2, 3)]
    haystack = " ".join([system_info, *(f"{d.name} {d.description}" for d in gpus)])

    backend: Backend = "cpu"
    gpu: GpuDevice | None = None
    unified = False
    if offload:
        for probe in _BACKEND_PROBES:
            if re.search(probe.pattern, haystack, re.IGNORECASE):
                backend = probe.backend
                unified = probe.unified_memory
                gpu = gpus[0] if gpus else None
                if (gpu is None or gpu.memory_total is None) and probe.vram_fallback:
                    gpu = probe.vram_fallback() or gpu
                break
    return HardwareInfo(
        cpu_name=_cpu_name(),
        physical_cores=physical,
        logical_cores=logical,
        ram_total=vm.total,
        ram_available=vm.available,
        backend=backend,
        gpu_offload_supported=offload,
        gpu_name=gpu.description or gpu.name if gpu else None,
        vram_total=gpu.memory_total if gpu else None,
        vram_free=gpu.memory_free if gpu else None,
        build_info=system_info,
        unified_memory=unified,
    )


_cache: HardwareInfo | None = None
_cache_lock = threading.Lock()


def detect_hardware(refresh: bool = False) -> HardwareInfo:
    """This machine's hardware; cached after the first call (`refresh=True` re-reads RAM/VRAM)."""
    global _cache
    with _cache_lock:
        if _cache is None or refresh:
            _cache = _detect()
        return _cache


# ---------------------------------------------------------------- fit verdict

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


def _parse_parameters(text: str) -> float | None:
    """'1.5B' -> 1.5e9, '30B-A3B' -> 30e9 (all experts are loaded), '135M' -> 1.35e8."""
    match = re.match(r"\s*([\d.]+)\s*([KMBT])", text or "", re.IGNORECASE)
    if not match:
        return None
    scale = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2).upper()]
    return float(match.group(1)) * scale


def estimate_file_size(parameters: str, quantization: str) -> int | None:
    """GGUF size from a parameter count and a quantization name, or None if unknown."""
    n = _parse_parameters(parameters)
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
    ctx = n_ctx or min(entry.context_length or DEFAULT_N_CTX, DEFAULT_N_CTX)
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


def fit_for_file(info: GGUFInfo, size_bytes: int, hw: HardwareInfo, n_ctx: int) -> FitVerdict:
    """Whether an on-disk GGUF fits at `n_ctx`, from its header."""
    head = None
    if info.embedding_length and info.n_heads:
        head = info.embedding_length // info.n_heads
    kv = kv_cache_bytes_for(
        info.n_layers,
        info.n_kv_heads or info.n_heads,
        info.key_length or head,
        info.value_length or head,
        n_ctx,
    )
    return _verdict(size_bytes, kv, n_ctx, hw, estimated=False)
