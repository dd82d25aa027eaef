"""installers/gpu/build.sh: the backends it knows, the prerequisites it checks (no GPU
toolchain is installed here, so the GPU builds themselves are not run), and shellcheck
over every shell script of the installers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hanlin.engine.runtime.builds import GPU_BUILDS

ROOT = Path(__file__).resolve().parents[2]
BUILD_SH = ROOT / "installers" / "gpu" / "build.sh"


def _build_sh(*args: str, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess[str]:
    import sys

    env = {"PATH": path, "PYTHON": sys.executable, "HOME": "/nonexistent"}
    return subprocess.run(
        ["bash", str(BUILD_SH), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_help_and_unknown_backends() -> None:
    helped = _build_sh("--help")
    assert helped.returncode == 0 and "Backends: cuda (-DGGML_CUDA=on)" in helped.stdout
    bad = _build_sh("opencl")
    assert bad.returncode == 1 and "give a backend: cuda, rocm, vulkan, metal or cpu" in bad.stderr


def test_each_gpu_backend_names_what_is_missing() -> None:
    cuda = _build_sh("cuda", "--check")
    assert cuda.returncode == 1
    assert "nvcc is missing: install the NVIDIA CUDA Toolkit" in cuda.stderr
    metal = _build_sh("metal", "--check")
    assert metal.returncode == 1 and "Metal is macOS only" in metal.stderr
    rocm = _build_sh("rocm", "--check")
    assert rocm.returncode == 1 and "hipconfig is missing: install ROCm" in rocm.stderr
    if shutil.which("glslc") is None:
        vulkan = _build_sh("vulkan", "--check")
        assert vulkan.returncode == 1 and "glslc is missing" in vulkan.stderr


def test_the_cpu_build_passes_its_checks() -> None:
    import os

    path = os.environ["PATH"]  # cmake may live in the Python environment's bin
    cpu = _build_sh("cpu", "--check", path=path)
    if shutil.which("cmake", path=path) is None:
        assert cpu.returncode == 1 and "cmake is missing" in cpu.stderr
        return
    assert cpu.returncode == 0, cpu.stderr
    assert 'CMAKE_ARGS="-DGGML_CUDA=off -DGGML_VULKAN=off -DGGML_HIP=off"' in cpu.stdout
    assert "prerequisites found" in cpu.stdout


def test_the_flags_match_hanlin_doctor() -> None:
    script = BUILD_SH.read_text()
    for build in GPU_BUILDS.values():
        assert f'cmake_args="{build.cmake_args}' in script, build.backend


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: apt-get install shellcheck (.ci/run installs it)")
    scripts = [
        ROOT / "installers" / "linux" / "install.sh",
        ROOT / "installers" / "gpu" / "build.sh",
        ROOT / "installers" / "macos" / "build_dmg.sh",
    ]
    result = subprocess.run(
        [shellcheck, "-S", "warning", *map(str, scripts)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    apprun = subprocess.run(
        [shellcheck, "-S", "warning", "-s", "sh", "-"],
        input=_apprun(),
        capture_output=True,
        text=True,
    )
    assert apprun.returncode == 0, apprun.stdout


def _apprun() -> str:
    from tests.installers.support import build_script

    return build_script().APPRUN
