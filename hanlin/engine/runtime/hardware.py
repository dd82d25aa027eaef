"""What this machine has: CPU, RAM, the GPU backend llama.cpp was built with, VRAM.

Why: the runtime needs the thread count (physical cores) and whether to offload, and the
fit verdict (models/fit.py) compares a model's needs with what is detected here.

Backends are detected through a registry of probes over llama.cpp's own
answers (`llama_supports_gpu_offload`, `llama_print_system_info`, and ggml's
backend device list, which also reports device memory); `nvidia-smi` fills in
VRAM for CUDA when the device API cannot.

`detect_gpu_hardware()` answers a different question: which GPUs the machine has,
whatever this llama.cpp build can use (`nvidia-smi`, the Linux DRM devices in sysfs,
Apple silicon, Windows' video controllers), and which llama.cpp backends could drive
each. `hanlin doctor` compares the two (engine/runtime/builds.py says how to get the
build that matches).
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
from typing import Literal

import psutil

__all__ = ["GpuDevice", "GpuHardware", "HardwareInfo", "detect_gpu_hardware", "detect_hardware"]

Backend = Literal["cuda", "rocm", "metal", "vulkan", "cpu"]


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


# ---------------------------------------------------------------- detection


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
    _BackendProbe("rocm", r"\bROCm\d*\b|\bHIP\b"),
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


# ------------------------------------------------------ GPUs, whatever the build


@dataclass(frozen=True)
class GpuHardware:
    """A GPU the machine has, and the llama.cpp backends that could use it (best first)."""

    vendor: Literal["nvidia", "amd", "intel", "apple"]
    name: str
    #: how it was seen: "nvidia-smi", "sysfs", "apple-silicon", "windows"
    source: str
    backends: tuple[Backend, ...]

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "backends": list(self.backends)}


#: PCI vendor ids of the GPUs llama.cpp has backends for
_PCI_VENDORS = {"0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel"}
_VENDOR_NAMES = {"nvidia": "NVIDIA GPU", "amd": "AMD GPU", "intel": "Intel GPU"}
#: Linux DRM devices; a module constant so a test can point it at a folder of its own
_SYSFS_DRM = Path("/sys/class/drm")


def _run_quietly(cmd: list[str], timeout: float = 10) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout if out.returncode == 0 else ""


def _backends_for(vendor: str) -> tuple[Backend, ...]:
    if vendor == "nvidia":
        return ("cuda", "vulkan")
    if vendor == "amd":
        # ROCm only where it is installed (and only Linux); Vulkan runs on any AMD GPU
        rocm = sys.platform.startswith("linux") and (
            shutil.which("rocminfo") is not None or Path("/opt/rocm").is_dir()
        )
        return ("rocm", "vulkan") if rocm else ("vulkan",)
    if vendor == "apple":
        return ("metal",)
    return ("vulkan",)


def _probe_nvidia_smi() -> list[GpuHardware]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    out = _run_quietly([exe, "--query-gpu=name", "--format=csv,noheader"])
    return [
        GpuHardware("nvidia", line.strip(), "nvidia-smi", _backends_for("nvidia"))
        for line in out.splitlines()
        if line.strip()
    ]


def _probe_sysfs() -> list[GpuHardware]:
    if not sys.platform.startswith("linux"):
        return []
    found = []
    try:
        cards = sorted(p for p in _SYSFS_DRM.glob("card*") if p.name[4:].isdigit())
    except OSError:
        return []
    for card in cards:
        try:
            vendor_id = (card / "device" / "vendor").read_text().strip().lower()
        except OSError:
            continue
        vendor = _PCI_VENDORS.get(vendor_id)
        if vendor is None:
            continue
        try:
            name = (card / "device" / "product_name").read_text().strip()
        except OSError:
            name = ""
        found.append(
            GpuHardware(vendor, name or _VENDOR_NAMES[vendor], "sysfs", _backends_for(vendor))
        )
    return found


def _probe_apple_silicon() -> list[GpuHardware]:
    if sys.platform != "darwin" or platform.machine() != "arm64":
        return []
    return [GpuHardware("apple", f"{_cpu_name()} GPU", "apple-silicon", ("metal",))]


def _probe_windows() -> list[GpuHardware]:
    if sys.platform != "win32":
        return []
    out = _run_quietly(
        [
            "powershell",
            "-NoProfile",
            "-NonInteractive",
            "-Command",
            "Get-CimInstance Win32_VideoController | Select-Object -ExpandProperty Name",
        ],
        timeout=20,
    )
    found = []
    for line in out.splitlines():
        name = line.strip()
        low = name.lower()
        vendor = (
            "nvidia"
            if "nvidia" in low
            else "amd"
            if "amd" in low or "radeon" in low
            else "intel"
            if "intel" in low
            else None
        )
        if vendor:
            found.append(GpuHardware(vendor, name, "windows", _backends_for(vendor)))
    return found


#: checked in order; a vendor seen by an earlier probe is not repeated by a later one
_GPU_PROBES: list[Callable[[], list[GpuHardware]]] = [
    _probe_nvidia_smi,
    _probe_apple_silicon,
    _probe_sysfs,
    _probe_windows,
]


def detect_gpu_hardware() -> list[GpuHardware]:
    """The GPUs this machine has (best candidates first), whatever llama.cpp was built with."""
    found: list[GpuHardware] = []
    for probe in _GPU_PROBES:
        seen = {g.vendor for g in found}
        found.extend(g for g in probe() if g.vendor not in seen)
    order = {"nvidia": 0, "apple": 1, "amd": 2, "intel": 3}
    return sorted(found, key=lambda g: order[g.vendor])
