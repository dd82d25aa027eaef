"""Build Hanlin's installable artifacts: the frozen bundle, the Linux tarball and AppImage,
the VS Code extension.

Why one script: every platform's recipe (installers/windows/build.ps1,
installers/macos/build_dmg.sh, installers/gpu/build.sh, .ci/run) starts here, so the
bundle is laid out the same everywhere.

    python installers/build.py vsix      # installers/vscode -> dist/hanlin-<version>.vsix
    python installers/build.py bundle    # PyInstaller onedir -> dist/hanlin/ (macOS: Hanlin.app)
    python installers/build.py tarball   # Linux: dist/hanlin-<version>-linux-<arch>-<gpu>.tar.gz
    python installers/build.py appimage  # Linux: dist/Hanlin-<version>-<arch>.AppImage
    python installers/build.py all       # vsix, bundle, then tarball + AppImage on Linux

Options: --dist DIR (default dist/), --work DIR (PyInstaller's work and cache folder,
default build/pyinstaller; CI keeps it in ~/.cache/hanlin-ci), --clean (start the
PyInstaller work over), --backend NAME (recorded as the bundle's GPU backend; by
default read from llama-cpp-python's libraries), --no-vsix (bundle without the
VS Code extension when npm is not available).

The bundle needs the `bundle` extra: `python -m pip install -e ".[bundle]"`. The
build is for the machine it runs on (PyInstaller does not cross-compile): build the
Windows installer on Windows, the .dmg on macOS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLERS = ROOT / "installers"
SPEC = INSTALLERS / "pyinstaller" / "hanlin.spec"
VSCODE = INSTALLERS / "vscode"
LINUX = INSTALLERS / "linux"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


class BuildError(Exception):
    """A build step failed; the message says which and what to do."""


def version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return str(data["project"]["version"])


def machine() -> str:
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch) if os.name != "nt" else arch


def _run(cmd: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, cwd=cwd, env=env, check=True)
    except FileNotFoundError as exc:
        raise BuildError(f"{cmd[0]} is not installed ({exc})") from exc
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"`{' '.join(cmd)}` failed with exit code {exc.returncode}") from exc


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


# ------------------------------------------------------------------------------- vsix


def vsix_path(dist: Path) -> Path:
    return dist / f"hanlin-{version()}.vsix"


def build_vsix(dist: Path) -> Path:
    """Lint, type-check (tsc --strict), test and package the extension with @vscode/vsce."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm is not installed: install Node.js 20+ (Debian: apt-get install npm)")
    started = time.perf_counter()
    _sync_extension_version()
    # no install scripts: nothing here needs one (vsce-sign's only fetches its signing tool)
    ci = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
    _run(ci, cwd=VSCODE)
    _run([npm, "run", "lint"], cwd=VSCODE)
    _run([npm, "run", "compile"], cwd=VSCODE)
    _run([npm, "test"], cwd=VSCODE)
    dist.mkdir(parents=True, exist_ok=True)
    out = vsix_path(dist)
    _run(
        [npm, "exec", "--", "vsce", "package", "--skip-license", "--allow-missing-repository",
         "--out", str(out)],
        cwd=VSCODE,
    )
    took = time.perf_counter() - started
    print(f"vsix: {out} ({out.stat().st_size // 1024} KiB) in {took:.0f} s")
    return out


def _sync_extension_version() -> None:
    """The extension carries Hanlin's version (package.json and its lock file)."""
    wanted = version()
    for name in ("package.json", "package-lock.json"):
        path = VSCODE / name
        data = json.loads(path.read_text(encoding="utf-8"))
        changed = data.get("version") != wanted
        data["version"] = wanted
        root_pkg = data.get("packages", {}).get("")
        if root_pkg is not None and root_pkg.get("version") != wanted:
            root_pkg["version"] = wanted
            changed = True
        if changed:
            path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"{path.relative_to(ROOT)}: version set to {wanted}")


# ----------------------------------------------------------------------------- bundle


def bundle_dir(dist: Path) -> Path:
    """The onedir folder (on macOS, the .app's Contents/MacOS holds the executables)."""
    return dist / "hanlin"


def build_bundle(dist: Path, work: Path, *, clean: bool, backend: str | None, vsix: bool) -> Path:
    try:
        import PyInstaller  # noqa: F401
    except ImportError as exc:
        raise BuildError(
            "PyInstaller is not installed: python -m pip install -e '.[bundle]'"
        ) from exc
    if vsix and not vsix_path(dist).is_file():
        raise BuildError(
            f"{vsix_path(dist)} is missing: build it first (`python installers/build.py vsix`), "
            "or pass --no-vsix"
        )
    env = dict(os.environ)
    # PyInstaller's own cache (processed binaries) beside its work folder, so one
    # cached folder (CI: ~/.cache/hanlin-ci) keeps everything a rebuild can reuse
    env.setdefault("PYINSTALLER_CONFIG_DIR", str(work / "config"))
    if backend:
        env["HANLIN_BUNDLE_BACKEND"] = backend
    started = time.perf_counter()
    cmd = [
        sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
        "--distpath", str(dist), "--workpath", str(work / "work"), str(SPEC),
    ]
    if clean:
        cmd.insert(4, "--clean")
    _run(cmd, env=env)
    frozen = time.perf_counter() - started
    if sys.platform == "darwin":
        target = dist / "Hanlin.app" / "Contents" / "Resources"
    else:
        target = bundle_dir(dist)
    _add_editors(target, dist if vsix else None)
    if sys.platform.startswith("linux"):
        _add_linux_integration(target)
    shown = dist / "Hanlin.app" if sys.platform == "darwin" else target
    print(f"bundle: {shown} ({_mib(_size(shown))}) in {frozen:.0f} s")
    return shown


def _add_editors(target: Path, dist_with_vsix: Path | None) -> None:
    """editors/: the VS Code .vsix, the JetBrains LSP4IJ template, the Neovim config."""
    editors = target / "editors"
    shutil.rmtree(editors, ignore_errors=True)
    editors.mkdir(parents=True)
    shutil.copy2(ROOT / "docs" / "editors.md", editors / "README.md")
    jetbrains = editors / "jetbrains"
    shutil.copytree(INSTALLERS / "jetbrains" / "hanlin", jetbrains / "hanlin")
    shutil.copy2(INSTALLERS / "jetbrains" / "README.md", jetbrains / "README.md")
    neovim = editors / "neovim"
    neovim.mkdir()
    for name in ("hanlin.lua", "README.md"):
        shutil.copy2(INSTALLERS / "neovim" / name, neovim / name)
    if dist_with_vsix is not None:
        (editors / "vscode").mkdir()
        shutil.copy2(vsix_path(dist_with_vsix), editors / "vscode" / vsix_path(dist_with_vsix).name)


def _add_linux_integration(target: Path) -> None:
    """share/ (menu entry, icons, .gguf type) and install.sh, for install.sh and AppImage."""
    share = target / "share"
    shutil.rmtree(share, ignore_errors=True)
    (share / "applications").mkdir(parents=True)
    shutil.copy2(LINUX / "hanlin.desktop", share / "applications" / "hanlin.desktop")
    (share / "mime" / "packages").mkdir(parents=True)
    shutil.copy2(LINUX / "hanlin-gguf.xml", share / "mime" / "packages" / "hanlin-gguf.xml")
    shutil.copytree(LINUX / "icons" / "hicolor", share / "icons" / "hicolor")
    shutil.copy2(LINUX / "install.sh", target / "install.sh")
    (target / "install.sh").chmod(0o755)


def backend_of(bundle: Path) -> str:
    """The GPU backend recorded in the bundle (hanlin_build.json, written by the spec)."""
    info = bundle / "_internal" / "hanlin_build.json"
    try:
        return str(json.loads(info.read_text(encoding="utf-8"))["backend"])
    except (OSError, ValueError, KeyError):
        return "cpu"


# --------------------------------------------------------------------- Linux packages


def build_tarball(dist: Path) -> Path:
    """hanlin-<version>-linux-<arch>-<backend>.tar.gz with one top folder hanlin-<version>/."""
    bundle = bundle_dir(dist)
    if not (bundle / "hanlin").is_file():
        raise BuildError(f"no bundle in {bundle}: run `python installers/build.py bundle` first")
    started = time.perf_counter()
    name = f"hanlin-{version()}-linux-{machine()}-{backend_of(bundle)}"
    out = dist / f"{name}.tar.gz"
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=f"hanlin-{version()}")
    tmp.replace(out)
    print(f"tarball: {out} ({_mib(out.stat().st_size)}) in {time.perf_counter() - started:.0f} s")
    return out


APPRUN = """#!/bin/sh
# AppRun of Hanlin's AppImage: the window by default; the command line tools by name.
#   ./Hanlin.AppImage                    the desktop app (a .gguf argument is imported)
#   ./Hanlin.AppImage hanlin doctor      the `hanlin` command
#   ./Hanlin.AppImage hanlin-lsp         the language server (point an editor at this)
# A link named hanlin or hanlin-lsp to the AppImage runs that tool ($ARGV0).
here=$(dirname "$(readlink -f "$0")")
bundle="$here/usr/lib/hanlin"
name=$(basename "${ARGV0:-$0}")
case "$name" in
  hanlin|hanlin-lsp) exec "$bundle/$name" "$@" ;;
esac
case "${1:-}" in
  hanlin|hanlin-lsp|hanlin-app) tool=$1; shift; exec "$bundle/$tool" "$@" ;;
esac
exec "$bundle/hanlin-app" "$@"
"""


def build_appdir(dist: Path) -> Path:
    """Hanlin.AppDir: AppRun, the .desktop file and icon at the top, the bundle in usr/lib."""
    bundle = bundle_dir(dist)
    if not (bundle / "hanlin").is_file():
        raise BuildError(f"no bundle in {bundle}: run `python installers/build.py bundle` first")
    appdir = dist / "Hanlin.AppDir"
    shutil.rmtree(appdir, ignore_errors=True)
    (appdir / "usr" / "lib").mkdir(parents=True)
    shutil.copytree(bundle, appdir / "usr" / "lib" / "hanlin", symlinks=True)
    (appdir / "AppRun").write_text(APPRUN, encoding="utf-8")
    (appdir / "AppRun").chmod(0o755)
    shutil.copy2(LINUX / "hanlin.desktop", appdir / "hanlin.desktop")
    icon = LINUX / "icons" / "hicolor" / "256x256" / "apps" / "hanlin.png"
    shutil.copy2(icon, appdir / "hanlin.png")
    (appdir / ".DirIcon").symlink_to("hanlin.png")
    share = appdir / "usr" / "share"
    shutil.copytree(LINUX / "icons" / "hicolor", share / "icons" / "hicolor")
    (share / "applications").mkdir(parents=True)
    shutil.copy2(LINUX / "hanlin.desktop", share / "applications" / "hanlin.desktop")
    return appdir


def build_appimage(dist: Path, *, required: bool) -> Path | None:
    """The AppImage from the AppDir with appimagetool (APPIMAGETOOL or on PATH)."""
    appdir = build_appdir(dist)
    tool = os.environ.get("APPIMAGETOOL") or shutil.which("appimagetool")
    if tool is None:
        message = (
            f"{appdir} is ready, but appimagetool was not found (Debian does not package it): "
            "download appimagetool-<arch>.AppImage from the AppImage project's releases, "
            "make it executable, and run it again with APPIMAGETOOL=/path/to/it, or run "
            f"`appimagetool {appdir}` yourself"
        )
        if required:
            raise BuildError(message)
        print(f"appimage: skipped. {message}")
        return None
    out = dist / f"Hanlin-{version()}-{machine()}.AppImage"
    env = dict(os.environ, ARCH=machine())
    _run([tool, "--no-appstream", str(appdir), str(out)], env=env)
    print(f"appimage: {out} ({_mib(out.stat().st_size)})")
    return out


# -------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="installers/build.py", description=__doc__.splitlines()[0]
    )
    parser.add_argument("target", choices=("vsix", "bundle", "tarball", "appimage", "all"))
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "build" / "pyinstaller",
        help="PyInstaller's work + cache folder (kept between builds)",
    )
    parser.add_argument("--clean", action="store_true", help="discard PyInstaller's cache first")
    parser.add_argument("--backend", help="GPU backend name to record (default: detected)")
    parser.add_argument("--no-vsix", action="store_true", help="bundle without the .vsix")
    args = parser.parse_args(argv)
    dist, work = args.dist.resolve(), args.work.expanduser().resolve()
    linux = sys.platform.startswith("linux")
    try:
        if args.target in ("vsix", "all") and not args.no_vsix:
            build_vsix(dist)
        if args.target in ("bundle", "all"):
            build_bundle(
                dist, work, clean=args.clean, backend=args.backend, vsix=not args.no_vsix
            )
        if args.target == "tarball" or (args.target == "all" and linux):
            build_tarball(dist)
        if args.target == "appimage" or (args.target == "all" and linux):
            build_appimage(dist, required=args.target == "appimage")
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
