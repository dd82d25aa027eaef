"""installers/build.py's packaging steps on a stand-in bundle: the tarball's layout, the
AppImage's AppDir and its AppRun, the editor files, the extension's version."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.installers.support import ROOT, build_script

build = build_script()
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """dist/ with a bundle folder whose executables print their name and arguments."""
    bundle = tmp_path / "dist" / "hanlin"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "_internal" / "hanlin_build.json").write_text(json.dumps({"backend": "vulkan"}))
    for name in ("hanlin", "hanlin-lsp", "hanlin-app"):
        exe = bundle / name
        exe.write_text(f'#!/bin/sh\necho "{name} $*"\n')
        exe.chmod(0o755)
    build._add_linux_integration(bundle)
    return tmp_path / "dist"


def test_the_version_comes_from_pyproject_and_the_extension_carries_it() -> None:
    assert build.version() == VERSION
    package = json.loads((ROOT / "installers" / "vscode" / "package.json").read_text())
    lock = json.loads((ROOT / "installers" / "vscode" / "package-lock.json").read_text())
    assert package["version"] == lock["version"] == lock["packages"][""]["version"] == VERSION


def test_tarball(dist: Path) -> None:
    out = build.build_tarball(dist)
    assert out.name == f"hanlin-{VERSION}-linux-{build.machine()}-vulkan.tar.gz"
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
    top = f"hanlin-{VERSION}"
    assert {name.split("/")[0] for name in members} == {top}
    for name in ("hanlin", "hanlin-lsp", "hanlin-app", "install.sh"):
        assert members[f"{top}/{name}"].mode & stat.S_IXUSR, name
    assert f"{top}/share/applications/hanlin.desktop" in members
    assert f"{top}/share/icons/hicolor/512x512/apps/hanlin.png" in members


def test_appdir_and_its_apprun(dist: Path) -> None:
    appdir = build.build_appdir(dist)
    for name in ("AppRun", "hanlin.desktop", "hanlin.png", ".DirIcon"):
        assert (appdir / name).exists(), name
    assert os.readlink(appdir / ".DirIcon") == "hanlin.png"

    def apprun(*args: str, argv0: str | None = None) -> str:
        env = {"PATH": "/usr/bin:/bin"}
        if argv0:
            env["ARGV0"] = argv0
        return subprocess.run(
            [str(appdir / "AppRun"), *args], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    assert apprun() == "hanlin-app"
    assert apprun("/tmp/model.gguf") == "hanlin-app /tmp/model.gguf"
    assert apprun("hanlin", "doctor") == "hanlin doctor"
    assert apprun("hanlin-lsp", "--version") == "hanlin-lsp --version"
    assert apprun("--stdio", argv0="/home/me/bin/hanlin-lsp") == "hanlin-lsp --stdio"


def test_appimage_without_appimagetool_says_how(
    dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("APPIMAGETOOL", raising=False)
    assert build.build_appimage(dist, required=False) is None
    with pytest.raises(build.BuildError, match="appimagetool was not found"):
        build.build_appimage(dist, required=True)
    assert (dist / "Hanlin.AppDir" / "AppRun").is_file()


def test_editors_are_shipped_in_the_bundle(dist: Path) -> None:
    vsix = build.vsix_path(dist)
    vsix.write_bytes(b"PK")  # stands for the packaged extension
    build._add_editors(dist / "hanlin", dist)
    editors = dist / "hanlin" / "editors"
    assert (editors / "README.md").read_text() == (ROOT / "docs" / "editors.md").read_text()
    assert (editors / "vscode" / f"hanlin-{VERSION}.vsix").is_file()
    assert (editors / "jetbrains" / "hanlin" / "template.json").is_file()
    assert (editors / "neovim" / "hanlin.lua").is_file()


def test_a_bundle_needs_its_vsix_or_says_so(dist: Path) -> None:
    with pytest.raises(build.BuildError, match="vsix is missing"):
        build.build_bundle(dist, dist / "work", clean=False, backend=None, vsix=True)
    assert build.main(["tarball", "--dist", str(dist / "nothing-here")]) == 1
