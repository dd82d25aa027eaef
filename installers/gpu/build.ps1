<#
.SYNOPSIS
  Rebuild llama-cpp-python for a GPU backend on Windows (the pip route), optionally the bundle.

.DESCRIPTION
    powershell -ExecutionPolicy Bypass -File installers\gpu\build.ps1 cuda
    powershell -ExecutionPolicy Bypass -File installers\gpu\build.ps1 vulkan -Bundle
    powershell -ExecutionPolicy Bypass -File installers\gpu\build.ps1 cpu

  cuda: -DGGML_CUDA=on, needs the CUDA Toolkit 12+ (nvcc on PATH) and the Visual Studio
  2022 C++ build tools; vulkan: -DGGML_VULKAN=on, needs the Vulkan SDK (VULKAN_SDK set,
  glslc on PATH). ROCm/HIP for Windows is not scripted here: use vulkan on AMD GPUs.
  $env:CUDA_ARCHITECTURES (e.g. "native") limits the CUDA kernels built (faster to compile).
  -Bundle then runs installers\windows\build.ps1 for the same backend (the setup.exe).
#>
[CmdletBinding()]
param(
  [Parameter(Mandatory = $true, Position = 0)] [ValidateSet("cpu", "cuda", "vulkan")] [string] $Backend,
  [string] $Python = "python",
  [switch] $Bundle
)
$ErrorActionPreference = "Stop"
$Root = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path

switch ($Backend) {
  "cuda" {
    if (-not (Get-Command nvcc -ErrorAction SilentlyContinue)) {
      throw "nvcc is missing: install the CUDA Toolkit 12+ (https://developer.nvidia.com/cuda-downloads)"
    }
    $CmakeArgs = "-DGGML_CUDA=on"
    if ($env:CUDA_ARCHITECTURES) { $CmakeArgs += " -DCMAKE_CUDA_ARCHITECTURES=$($env:CUDA_ARCHITECTURES)" }
  }
  "vulkan" {
    if (-not $env:VULKAN_SDK) { throw "VULKAN_SDK is not set: install the Vulkan SDK (https://vulkan.lunarg.com)" }
    $CmakeArgs = "-DGGML_VULKAN=on"
  }
  "cpu" { $CmakeArgs = "-DGGML_CUDA=off -DGGML_VULKAN=off" }
}
if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) { throw "CMake is missing: winget install Kitware.CMake" }

$LlamaVersion = & $Python -c "from importlib import metadata; print(metadata.version('llama_cpp_python'))"
if ($LASTEXITCODE -ne 0) { throw "llama-cpp-python is not installed for ${Python}: pip install -e . first" }
Write-Host "backend ${Backend}: CMAKE_ARGS=`"$CmakeArgs`", llama-cpp-python $LlamaVersion"

$env:CMAKE_ARGS = $CmakeArgs
if (-not $env:CMAKE_BUILD_PARALLEL_LEVEL) { $env:CMAKE_BUILD_PARALLEL_LEVEL = "$env:NUMBER_OF_PROCESSORS" }
& $Python -m pip install --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python "llama-cpp-python==$LlamaVersion"
if ($LASTEXITCODE -ne 0) { throw "the llama-cpp-python build failed (see above)" }

$Check = @'
import sys, llama_cpp
from hanlin.engine.runtime.hardware import detect_hardware
backend = sys.argv[1]
offload = bool(llama_cpp.llama_supports_gpu_offload())
found = detect_hardware().backend
print(f"llama_supports_gpu_offload: {offload}; Hanlin sees backend: {found}")
if backend != "cpu" and (not offload or found != backend):
    sys.exit(f"the new build does not report {backend}")
'@
& $Python -c $Check $Backend
if ($LASTEXITCODE -ne 0) { throw "the new build does not use $Backend" }

if ($Bundle) {
  & powershell -ExecutionPolicy Bypass -File (Join-Path $Root "installers\windows\build.ps1") -Backend $Backend -Python $Python -SkipLlamaBuild
  if ($LASTEXITCODE -ne 0) { throw "the Windows bundle build failed" }
}
