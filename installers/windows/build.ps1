<#
.SYNOPSIS
  Build Hanlin's Windows installer: the PyInstaller bundle, then the Inno Setup setup.exe.

.DESCRIPTION
  Run from anywhere in a Hanlin checkout, in PowerShell 5.1+ on Windows 10/11 x64:

    powershell -ExecutionPolicy Bypass -File installers\windows\build.ps1            # CPU build
    powershell -ExecutionPolicy Bypass -File installers\windows\build.ps1 -Backend cuda
    powershell -ExecutionPolicy Bypass -File installers\windows\build.ps1 -Backend vulkan

  Needs: Python 3.11+ (python.org or winget install Python.Python.3.11), Visual Studio
  2022 Build Tools with "Desktop development with C++" (llama-cpp-python compiles
  llama.cpp), CMake, Node.js 20+ (the VS Code extension), Inno Setup 6
  (winget install JRSoftware.InnoSetup). For -Backend cuda: the CUDA Toolkit 12+; for
  vulkan: the Vulkan SDK. Output: dist\Hanlin-<version>-windows-amd64-<backend>-setup.exe
#>
[CmdletBinding()]
param(
  [ValidateSet("cpu", "cuda", "vulkan")] [string] $Backend = "cpu",
  [string] $Python = "python",
  [string] $Iscc = "",
  [switch] $NoVsix,
  # llama-cpp-python is already built for -Backend (installers\gpu\build.ps1 -Bundle says so)
  [switch] $SkipLlamaBuild
)
$ErrorActionPreference = "Stop"
$Root = (Resolve-Path (Join-Path $PSScriptRoot "..\..")).Path
Set-Location $Root

function Invoke-Step([string] $What, [scriptblock] $Action) {
  Write-Host "== $What" -ForegroundColor Cyan
  & $Action
  if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE)" }
}

$Version = & $Python -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])"
if ($LASTEXITCODE -ne 0) { throw "$Python cannot read pyproject.toml: install Python 3.11+" }

Invoke-Step "install Hanlin and PyInstaller" { & $Python -m pip install -e ".[bundle]" }
if ($Backend -ne "cpu" -and -not $SkipLlamaBuild) {
  Invoke-Step "rebuild llama-cpp-python for $Backend" {
    & powershell -ExecutionPolicy Bypass -File (Join-Path $Root "installers\gpu\build.ps1") $Backend -Python $Python
  }
}
if (-not $NoVsix) { Invoke-Step "VS Code extension" { & $Python installers\build.py vsix } }
$BundleArgs = @("installers\build.py", "bundle", "--backend", $Backend)
if ($NoVsix) { $BundleArgs += "--no-vsix" }
Invoke-Step "PyInstaller bundle" { & $Python @BundleArgs }
Invoke-Step "bundle runs" { & (Join-Path $Root "dist\hanlin\hanlin.exe") doctor }

if (-not $Iscc) {
  $Candidates = @(
    (Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe"),
    (Join-Path $env:ProgramFiles "Inno Setup 6\ISCC.exe"),
    (Join-Path $env:LOCALAPPDATA "Programs\Inno Setup 6\ISCC.exe")
  )
  $Iscc = $Candidates | Where-Object { Test-Path $_ } | Select-Object -First 1
  if (-not $Iscc) { $Iscc = (Get-Command ISCC.exe -ErrorAction SilentlyContinue).Source }
  if (-not $Iscc) { throw "Inno Setup 6 not found: winget install JRSoftware.InnoSetup (or pass -Iscc PATH)" }
}
Invoke-Step "Inno Setup" {
  & $Iscc "/DAppVersion=$Version" "/DBackend=$Backend" "/DSourceDir=$Root\dist\hanlin" `
    "/DOutputDir=$Root\dist" (Join-Path $Root "installers\windows\hanlin.iss")
}
Write-Host "Built dist\Hanlin-$Version-windows-amd64-$Backend-setup.exe" -ForegroundColor Green
