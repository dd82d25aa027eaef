#!/usr/bin/env bash
# Build Hanlin's llama.cpp for a GPU backend: for a pip install (rebuild llama-cpp-python
# in this Python environment) or, with --bundle, also the frozen bundle around it.
#
#   bash installers/gpu/build.sh cuda             # pip route: this environment uses CUDA
#   bash installers/gpu/build.sh vulkan --bundle  # ... then dist/ gets the Vulkan bundle
#   bash installers/gpu/build.sh cpu              # back to the CPU-only build
#
# Backends: cuda (-DGGML_CUDA=on), rocm (-DGGML_HIP=on, Linux), vulkan (-DGGML_VULKAN=on),
# metal (-DGGML_METAL=on, macOS; on by default on Apple silicon), cpu.
# Options: --python PY (default: python3, or $PYTHON), --bundle, --check (only check the
# prerequisites). Environment: CUDA_ARCHITECTURES (e.g. "native" for this GPU only,
# faster to compile; default: llama.cpp's list, for a bundle others can use),
# AMDGPU_TARGETS (e.g. gfx1100; default: the GPUs rocminfo lists), CMAKE_BUILD_PARALLEL_LEVEL.
# The Windows script is build.ps1 beside this one.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
backend=${1:-}
case "$backend" in -h|--help) usage; exit 0 ;; esac
shift || true
python=${PYTHON:-python3}
bundle=0 check_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle=1 ;;
    --check) check_only=1 ;;
    --python) python=$2; shift ;;
    --python=*) python=${1#--python=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "build.sh: $*" >&2; exit 1; }
need() {  # need TOOL WHAT-TO-INSTALL
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: install $2"
}

case "$backend" in
  cuda)
    need nvcc "the NVIDIA CUDA Toolkit 12+ (https://developer.nvidia.com/cuda-downloads; Debian: nvidia-cuda-toolkit) and put its bin/ on PATH"
    cmake_args="-DGGML_CUDA=on"
    if [ -n "${CUDA_ARCHITECTURES:-}" ]; then
      cmake_args="$cmake_args -DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHITECTURES"
    fi
    ;;
  rocm)
    [ "$(uname -s)" = Linux ] || die "ROCm builds are Linux-only here; use vulkan on Windows"
    need hipconfig "ROCm 6+ (https://rocm.docs.amd.com), with /opt/rocm/bin on PATH"
    targets=${AMDGPU_TARGETS:-$(rocminfo 2>/dev/null | grep -o 'gfx[0-9a-f]*' | sort -u | paste -sd ';' || true)}
    [ -n "$targets" ] || die "no AMD GPU target found: set AMDGPU_TARGETS (e.g. gfx1100)"
    HIPCXX="$(hipconfig -l)/clang"
    HIP_PATH="$(hipconfig -R)"
    export HIPCXX HIP_PATH
    cmake_args="-DGGML_HIP=on -DAMDGPU_TARGETS=$targets"
    ;;
  vulkan)
    need glslc "the Vulkan SDK (https://vulkan.lunarg.com) or, on Debian/Ubuntu: apt-get install libvulkan-dev glslc"
    cmake_args="-DGGML_VULKAN=on"
    ;;
  metal)
    [ "$(uname -s)" = Darwin ] || die "Metal is macOS only"
    xcode-select -p >/dev/null 2>&1 || die "the Xcode command line tools are missing: xcode-select --install"
    cmake_args="-DGGML_METAL=on"
    ;;
  cpu)
    cmake_args="-DGGML_CUDA=off -DGGML_VULKAN=off -DGGML_HIP=off"
    if [ "$(uname -s)" = Darwin ]; then cmake_args="-DGGML_METAL=off"; fi
    ;;
  *) die "give a backend: cuda, rocm, vulkan, metal or cpu (see --help)" ;;
esac
need cmake "CMake 3.21+ (pip install cmake, or your system's package)"
command -v "$python" >/dev/null 2>&1 || die "$python not found: pass --python /path/to/python"

# the llama-cpp-python version Hanlin runs on now (the one this checkout was tested with)
version=$("$python" -c 'from importlib import metadata; print(metadata.version("llama_cpp_python"))' 2>/dev/null) \
  || die "llama-cpp-python is not installed for $python: pip install -e . first"
echo "backend $backend: CMAKE_ARGS=\"$cmake_args\", llama-cpp-python $version, $python"
if [ "$check_only" = 1 ]; then echo "prerequisites found"; exit 0; fi

export CMAKE_ARGS="$cmake_args"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
started=$(date +%s)
"$python" -m pip install --force-reinstall --no-deps --no-cache-dir \
  --no-binary llama-cpp-python "llama-cpp-python==$version"
echo "llama-cpp-python rebuilt in $(( $(date +%s) - started )) s"

# check: llama.cpp says it can offload (GPU backends), and Hanlin names the backend
"$python" - "$backend" <<'PY'
import sys
import llama_cpp
from hanlin.engine.runtime.hardware import detect_hardware

backend = sys.argv[1]
offload = bool(llama_cpp.llama_supports_gpu_offload())
found = detect_hardware().backend
print(f"llama_supports_gpu_offload: {offload}; Hanlin sees backend: {found}")
if backend != "cpu" and (not offload or found != backend):
    sys.exit(f"build.sh: the new build does not report {backend} (see the lines above)")
PY

if [ "$bundle" = 1 ]; then
  case "$(uname -s)" in
    Darwin) bash "$root/installers/macos/build_dmg.sh" --python "$python" ;;
    *) "$python" -m pip install -e "${root}[bundle]" >/dev/null
       "$python" "$root/installers/build.py" all --backend "$backend" ;;
  esac
fi
