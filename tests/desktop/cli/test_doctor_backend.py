"""`hanlin doctor` compares the llama.cpp build with the GPUs the machine has and gives the
one command that gets the matching build.

No GPU can run here, so the GPUs are the parts faked: an `nvidia-smi` on PATH that
answers like the real one, and a sysfs DRM folder. The llama.cpp build is the real
(CPU-only) one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from hanlin.engine.runtime import builds, hardware
from hanlin.engine.runtime.builds import GPU_BUILDS, advise, bundle_info, pip_command
from hanlin.engine.runtime.hardware import GpuHardware, HardwareInfo, detect_gpu_hardware
from tests.support.commands import HANLIN

FAKE_NVIDIA_SMI = """#!/bin/sh
# answers the two queries Hanlin makes, like nvidia-smi on a one-GPU machine
case "$*" in
  *memory*) echo "NVIDIA H200, 143771, 143000" ;;
  *--query-gpu=name*) echo "NVIDIA H200" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path) -> Path:
    folder = tmp_path / "gpu-bin"
    folder.mkdir()
    exe = folder / "nvidia-smi"
    exe.write_text(FAKE_NVIDIA_SMI, encoding="utf-8")
    exe.chmod(0o755)
    return folder


def _hw(backend: str = "cpu") -> HardwareInfo:
    return HardwareInfo(
        cpu_name="test CPU",
        physical_cores=2,
        logical_cores=2,
        ram_total=8 << 30,
        ram_available=4 << 30,
        backend=backend,  # type: ignore[arg-type]
        gpu_offload_supported=backend != "cpu",
        gpu_name=None,
        vram_total=None,
        vram_free=None,
        build_info="CPU : AVX2 = 1",
    )


NVIDIA = GpuHardware("nvidia", "NVIDIA H200", "nvidia-smi", ("cuda", "vulkan"))
AMD_ROCM = GpuHardware("amd", "AMD Radeon RX 7900 XTX", "sysfs", ("rocm", "vulkan"))
INTEL = GpuHardware("intel", "Intel GPU", "sysfs", ("vulkan",))
APPLE = GpuHardware("apple", "Apple M3 GPU", "apple-silicon", ("metal",))


def test_doctor_with_a_cpu_build_and_an_nvidia_gpu_gives_the_cuda_command(
    fake_nvidia_smi: Path,
) -> None:
    env = dict(os.environ, PATH=f"{fake_nvidia_smi}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [*HANLIN, "doctor", "--json"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    backend = report["backend"]
    assert backend["build"] == "cpu"  # the real llama.cpp build here
    assert backend["gpus"][0] == {
        "vendor": "nvidia",
        "name": "NVIDIA H200",
        "source": "nvidia-smi",
        "backends": ["cuda", "vulkan"],
    }
    assert backend["usable"][:2] == ["cuda", "vulkan"]
    advice = backend["advice"]
    assert advice["backend"] == "cuda" and advice["gpu"] == "NVIDIA H200"
    version = metadata.version("llama_cpp_python")
    assert advice["command"].startswith('CMAKE_ARGS="-DGGML_CUDA=on" ')
    assert advice["command"].endswith(
        "-m pip install --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python"
        f' "llama-cpp-python=={version}"'
    )
    assert "CUDA Toolkit" in advice["requires"]
    assert report["bundle"] is None  # a pip install, not the frozen bundle

    text = subprocess.run(
        [*HANLIN, "doctor"], capture_output=True, text=True, timeout=120, env=env, check=True
    ).stdout
    assert "GPU:        none: this llama.cpp build is CPU-only" in text
    assert re.search(r"GPU found: +NVIDIA H200 \(nvidia-smi\): this build cannot use it; "
                     r"a CUDA build can", text)
    assert re.search(r"Get CUDA: +CMAKE_ARGS=\"-DGGML_CUDA=on\" .* -m pip install", text)


def test_a_build_that_uses_the_gpu_gets_no_advice() -> None:
    assert advise(_hw("cuda"), [NVIDIA]) is None
    assert advise(_hw("vulkan"), [AMD_ROCM]) is None
    assert advise(_hw("cpu"), []) is None


def test_the_best_backend_for_each_gpu_and_platform() -> None:
    rocm = advise(_hw(), [AMD_ROCM], frozen=False, platform="linux", python="/usr/bin/python3")
    assert rocm is not None and rocm.backend == "rocm"
    assert rocm.command.startswith('CMAKE_ARGS="-DGGML_HIP=on" /usr/bin/python3 -m pip install')
    vulkan = advise(_hw(), [INTEL], frozen=False, platform="linux", python="python3")
    assert vulkan is not None and "-DGGML_VULKAN=on" in vulkan.command
    metal = advise(_hw(), [APPLE], frozen=False, platform="darwin", python="python3")
    assert metal is not None and "-DGGML_METAL=on" in metal.command
    # no backend for an Intel GPU on macOS, nor ROCm on Windows (Vulkan instead)
    assert advise(_hw(), [INTEL], frozen=False, platform="darwin") is None
    win = advise(_hw(), [AMD_ROCM], frozen=False, platform="win32", python=r"C:\Py 3\python.exe")
    assert win is not None and win.backend == "vulkan"
    assert win.command.startswith('$env:CMAKE_ARGS="-DGGML_VULKAN=on"; & "C:\\Py 3\\python.exe" -m')
    # the NVIDIA card wins over an integrated one
    both = advise(_hw(), [NVIDIA, INTEL], frozen=False, platform="linux")
    assert both is not None and both.backend == "cuda"


def test_the_frozen_bundle_is_told_which_bundle_to_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hanlin_build.json").write_text(
        json.dumps({"hanlin": "0.1.0", "backend": "cpu", "platform": "linux-x86_64"}),
        encoding="utf-8",
    )
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    info = bundle_info()
    assert info is not None and info["backend"] == "cpu" and info["hanlin"] == "0.1.0"
    advice = advise(_hw(), [NVIDIA], platform="linux")
    assert advice is not None
    assert advice.command == "bash installers/gpu/build.sh cuda --bundle"
    assert advice.note is not None and "hanlin-0.1.0-linux-x86_64-cuda.tar.gz" in advice.note
    assert "settings, history and models are kept" in advice.note
    win = advise(_hw(), [NVIDIA], platform="win32")
    assert win is not None and win.command.endswith(r"installers\gpu\build.ps1 cuda -Bundle")


def test_outside_a_bundle_there_is_no_bundle_info() -> None:
    assert not getattr(sys, "frozen", False)
    assert bundle_info() is None


def test_gpus_from_sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drm = tmp_path / "drm"
    for card, vendor, product in (
        ("card0", "0x1002", "AMD Radeon RX 7600"),
        ("card1", "0x1af4", None),  # virtio: not a GPU llama.cpp can use
        ("card2", "0x8086", None),
    ):
        (drm / card / "device").mkdir(parents=True)
        (drm / card / "device" / "vendor").write_text(vendor + "\n")
        if product:
            (drm / card / "device" / "product_name").write_text(product + "\n")
    (drm / "card0-DP-1").mkdir()  # a connector, not a card
    monkeypatch.setattr(hardware, "_SYSFS_DRM", drm)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi, no rocminfo
    monkeypatch.setattr(hardware, "_probe_apple_silicon", lambda: [])
    monkeypatch.setattr(
        hardware, "_GPU_PROBES", [hardware._probe_nvidia_smi, hardware._probe_sysfs]
    )
    gpus = detect_gpu_hardware()
    rocm_installed = Path("/opt/rocm").is_dir()
    assert [(g.vendor, g.name, g.source) for g in gpus] == [
        ("amd", "AMD Radeon RX 7600", "sysfs"),
        ("intel", "Intel GPU", "sysfs"),
    ]
    assert gpus[0].backends == (("rocm", "vulkan") if rocm_installed else ("vulkan",))


def test_nvidia_smi_is_preferred_over_sysfs_for_the_same_card(
    tmp_path: Path, fake_nvidia_smi: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drm = tmp_path / "drm"
    (drm / "card0" / "device").mkdir(parents=True)
    (drm / "card0" / "device" / "vendor").write_text("0x10de\n")
    monkeypatch.setattr(hardware, "_SYSFS_DRM", drm)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("PATH", str(fake_nvidia_smi))
    assert [(g.name, g.source) for g in detect_gpu_hardware()] == [("NVIDIA H200", "nvidia-smi")]


def test_backend_probes_recognise_each_gpu_build() -> None:
    def probe(system_info: str) -> str:
        for p in hardware._BACKEND_PROBES:
            if re.search(p.pattern, system_info, re.IGNORECASE):
                return p.backend
        return "cpu"

    assert probe("CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : AVX2 = 1") == "cuda"
    assert probe("ROCm : NO_VMM = 1 | CPU : AVX2 = 1") == "rocm"
    assert probe("Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1") == "metal"
    assert probe("Vulkan : COOPMAT = 1 | CPU : AVX2 = 1") == "vulkan"
    assert probe("CPU : SSE3 = 1 | AVX = 1 | LLAMAFILE = 1") == "cpu"


def test_every_backend_has_a_build_script_entry() -> None:
    script = (Path(__file__).parents[3] / "installers" / "gpu" / "build.sh").read_text()
    for build in GPU_BUILDS.values():
        assert build.cmake_args in script, build.backend
    assert pip_command("cuda", python="py", platform="linux").count("-DGGML_CUDA=on") == 1
    assert builds.bundle_command("vulkan", platform="linux").endswith("vulkan --bundle")


def test_the_bundle_is_told_to_download_first_then_how_to_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanlin.desktop.cli.doctor_cmd import _backend_rows

    (tmp_path / "hanlin_build.json").write_text(
        json.dumps({"hanlin": "0.1.0", "backend": "cpu", "platform": "linux-x86_64"})
    )
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    advice = advise(_hw(), [NVIDIA], platform="linux")
    assert advice is not None
    report = {
        "backend": {"build": "cpu", "gpus": [NVIDIA.to_dict()], "advice": advice.to_dict()},
        "bundle": bundle_info(),
    }
    rows = _backend_rows(report)
    assert rows[0] == ("GPU found", "NVIDIA H200 (nvidia-smi): this build cannot use it; "
                       "a CUDA build can")
    assert rows[1] == (
        "Get CUDA",
        "install Hanlin's CUDA build, hanlin-0.1.0-linux-x86_64-cuda.tar.gz, over this one "
        "(settings, history and models are kept)",
    )
    assert rows[2] == ("", "or build it from a source checkout: "
                       "bash installers/gpu/build.sh cuda --bundle")
    assert rows[3][1].startswith("(building needs the NVIDIA CUDA Toolkit")
    assert rows[4][0] == "Bundle" and "0.1.0 linux-x86_64, cpu build" in rows[4][1]
