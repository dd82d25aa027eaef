"""Which llama.cpp build Hanlin runs on, and the one command that gets a better one.

Why: llama-cpp-python compiles llama.cpp for one GGML backend chosen at build time
(CPU by default; CUDA, ROCm/HIP, Vulkan or Metal with a CMake flag), and so does the
frozen bundle that ships it. A user with an NVIDIA card and the CPU-only build runs
many times slower than they could; `hanlin doctor` tells them, using:

- `GPU_BUILDS`: a registry of the GPU backends and how each is built (the CMake flag,
  the platforms llama.cpp supports it on, what must be installed first); the same flags
  as installers/gpu/build.sh, which scripts both routes;
- `bundle_info()`: in the frozen bundle, the build it is (hanlin_build.json, written by
  installers/pyinstaller/hanlin.spec); None for a pip install;
- `advise(hardware, gpus)`: nothing when the build already uses the best GPU there is,
  else the backend to get and the command: for a pip install, the pip line that rebuilds
  llama-cpp-python with the flag (for this very interpreter); for the bundle, the
  bundle of that backend and the script that builds it.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from hanlin.engine.runtime.hardware import GpuHardware, HardwareInfo

__all__ = ["GPU_BUILDS", "BackendAdvice", "GpuBuild", "advise", "bundle_info", "pip_command"]


@dataclass(frozen=True)
class GpuBuild:
    backend: str
    label: str
    cmake_args: str
    #: sys.platform prefixes llama.cpp builds this backend on
    platforms: tuple[str, ...]
    requires: str


GPU_BUILDS: dict[str, GpuBuild] = {
    b.backend: b
    for b in (
        GpuBuild(
            "cuda",
            "CUDA",
            "-DGGML_CUDA=on",
            ("linux", "win32"),
            "the NVIDIA CUDA Toolkit 12 or newer (nvcc) and a C++ compiler",
        ),
        GpuBuild(
            "rocm",
            "ROCm (HIP)",
            "-DGGML_HIP=on",
            ("linux",),
            "ROCm 6 or newer (hipcc; for your GPU, AMDGPU_TARGETS=gfx...) and CMake",
        ),
        GpuBuild(
            "vulkan",
            "Vulkan",
            "-DGGML_VULKAN=on",
            ("linux", "win32"),
            "the Vulkan SDK or headers and loader (Debian: libvulkan-dev glslc) and CMake",
        ),
        GpuBuild(
            "metal",
            "Metal",
            "-DGGML_METAL=on",
            ("darwin",),
            "the Xcode command line tools (xcode-select --install)",
        ),
    )
}


@dataclass(frozen=True)
class BackendAdvice:
    """The build to get for the GPU this machine has."""

    backend: str
    label: str
    gpu: str
    command: str
    requires: str
    #: one more sentence (the ready-made bundle to download, for the frozen app)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def bundle_info() -> dict[str, Any] | None:
    """What the frozen bundle says it is (version, backend, platform); None outside one."""
    if not is_frozen():
        return None
    path = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "hanlin_build.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"backend": None, "path": str(Path(sys.executable).parent)}
    return {**info, "path": str(Path(sys.executable).parent)}


def _platform() -> str:
    return "win32" if sys.platform == "win32" else sys.platform.split("-")[0]


def pip_command(backend: str, *, python: str | None = None, platform: str | None = None) -> str:
    """The pip line that rebuilds llama-cpp-python for `backend` in this environment.

    --no-binary and --no-cache-dir: built from source with the flag, never a cached CPU
    wheel; --no-deps: only llama-cpp-python is rebuilt. Pinned to the version installed
    now, which this Hanlin is known to work with.
    """
    build = GPU_BUILDS[backend]
    platform = platform or _platform()
    try:
        spec = f"llama-cpp-python=={metadata.version('llama_cpp_python')}"
    except metadata.PackageNotFoundError:
        spec = "llama-cpp-python"
    python = python or sys.executable
    args = "-m pip install --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python"
    if platform == "win32":
        return f'$env:CMAKE_ARGS="{build.cmake_args}"; & "{python}" {args} "{spec}"'
    return f'CMAKE_ARGS="{build.cmake_args}" {shlex.quote(python)} {args} "{spec}"'


def bundle_command(backend: str, *, platform: str | None = None) -> str:
    """The script that builds the frozen bundle for `backend` from a source checkout."""
    if (platform or _platform()) == "win32":
        script = r"installers\gpu\build.ps1"
        return f"powershell -ExecutionPolicy Bypass -File {script} {backend} -Bundle"
    return f"bash installers/gpu/build.sh {backend} --bundle"


def _bundle_name(backend: str, info: dict[str, Any]) -> str:
    """The file name installers/build.py and the platform recipes give that build."""
    version = info.get("hanlin") or "<version>"
    plat = str(info.get("platform") or f"{_platform()}-")
    system, _, arch = plat.partition("-")
    if system == "win32":
        return f"Hanlin-{version}-windows-{arch}-{backend}-setup.exe"
    if system == "darwin":
        return f"Hanlin-{version}-macos-{arch}.dmg"
    return f"hanlin-{version}-{system}-{arch}-{backend}.tar.gz"


def advise(
    hardware: HardwareInfo,
    gpus: list[GpuHardware],
    *,
    frozen: bool | None = None,
    platform: str | None = None,
    python: str | None = None,
) -> BackendAdvice | None:
    """The backend to get for the best GPU present, or None (the build uses it, or no GPU)."""
    platform = platform or _platform()
    frozen = is_frozen() if frozen is None else frozen
    if any(hardware.backend in gpu.backends for gpu in gpus):
        return None
    for gpu in gpus:
        for backend in gpu.backends:
            build = GPU_BUILDS.get(backend)
            if build is None or not any(platform.startswith(p) for p in build.platforms):
                continue
            if frozen:
                info = bundle_info() or {}
                return BackendAdvice(
                    backend=backend,
                    label=build.label,
                    gpu=gpu.name,
                    command=bundle_command(backend, platform=platform),
                    requires=build.requires,
                    note=(
                        f"install Hanlin's {build.label} build, {_bundle_name(backend, info)}, "
                        "over this one (settings, history and models are kept)"
                    ),
                )
            return BackendAdvice(
                backend=backend,
                label=build.label,
                gpu=gpu.name,
                command=pip_command(backend, python=python, platform=platform),
                requires=build.requires,
            )
    return None
