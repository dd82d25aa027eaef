"""installers/linux/install.sh on a small stand-in bundle: install for a user, upgrade over
it, uninstall keeping the user's data, and --purge."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.installers.support import build_script

build = build_script()


def _fake_bundle(folder: Path, version: str) -> Path:
    """A bundle's layout with shell scripts standing in for the frozen executables."""
    folder.mkdir(parents=True)
    (folder / "_internal").mkdir()
    (folder / "_internal" / "marker").write_text(version)
    for name in ("hanlin", "hanlin-lsp", "hanlin-app"):
        exe = folder / name
        exe.write_text(f'#!/bin/sh\necho "{name} {version}"\n')
        exe.chmod(0o755)
    build._add_linux_integration(folder)
    return folder


def _run(script: Path, home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(
        ["sh", str(script), *args], env=env, capture_output=True, text=True, check=check
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    # the user's data, which no install, upgrade or uninstall may touch
    (home / ".config" / "hanlin").mkdir(parents=True)
    (home / ".config" / "hanlin" / "settings.toml").write_text('theme = "dark"\n')
    (home / ".local" / "share" / "hanlin" / "models").mkdir(parents=True)
    (home / ".local" / "share" / "hanlin" / "history.sqlite3").write_bytes(b"chats")
    return home


def test_install_upgrade_uninstall(tmp_path: Path, home: Path) -> None:
    old = _fake_bundle(tmp_path / "unpacked-0.1.0" / "hanlin-0.1.0", "0.1.0")
    out = _run(old / "install.sh", home).stdout
    dest = home / ".local" / "opt" / "hanlin"
    assert f"Hanlin 0.1.0 is installed in {dest}" in out
    assert "Add " in out and "to your PATH" in out  # ~/.local/bin is not on this PATH
    for name in ("hanlin", "hanlin-lsp", "hanlin-app"):
        link = home / ".local" / "bin" / name
        assert link.is_symlink() and os.readlink(link) == str(dest / name)
    desktop = (home / ".local" / "share" / "applications" / "hanlin.desktop").read_text()
    assert f"Exec={dest}/hanlin-app %F" in desktop and f"TryExec={dest}/hanlin-app" in desktop
    icons = home / ".local" / "share" / "icons" / "hicolor"
    assert (icons / "256x256" / "apps" / "hanlin.png").is_file()
    assert (icons / "scalable" / "apps" / "hanlin.svg").is_file()
    assert (home / ".local" / "share" / "mime" / "packages" / "hanlin-gguf.xml").is_file()

    # a newer bundle over it: the program folder is replaced, nothing else
    new = _fake_bundle(tmp_path / "unpacked-0.2.0" / "hanlin-0.2.0", "0.2.0")
    (dest / "_internal" / "left-over-from-0.1.0").write_text("x")
    assert "Hanlin 0.2.0 is installed" in _run(new / "install.sh", home).stdout
    assert (dest / "_internal" / "marker").read_text() == "0.2.0"
    assert not (dest / "_internal" / "left-over-from-0.1.0").exists()
    assert not list(dest.parent.glob("hanlin.*"))  # no .new / .old folder left
    assert (home / ".config" / "hanlin" / "settings.toml").read_text() == 'theme = "dark"\n'
    assert (home / ".local" / "share" / "hanlin" / "history.sqlite3").read_bytes() == b"chats"

    # someone else's `hanlin` in ~/.local/bin (pip --user) is never removed
    (home / ".local" / "bin" / "hanlin-lsp").unlink()
    (home / ".local" / "bin" / "hanlin-lsp").write_text("#!/bin/sh\n")
    out = _run(dest / "install.sh", home, "--uninstall").stdout
    assert "Your settings, chat history and models were kept" in out
    assert not dest.exists()
    assert not (home / ".local" / "bin" / "hanlin").exists()
    assert (home / ".local" / "bin" / "hanlin-lsp").is_file()
    assert not (home / ".local" / "share" / "applications" / "hanlin.desktop").exists()
    assert not (icons / "256x256" / "apps" / "hanlin.png").exists()
    assert (home / ".config" / "hanlin" / "settings.toml").is_file()
    assert (home / ".local" / "share" / "hanlin" / "history.sqlite3").is_file()


def test_purge_deletes_the_data_only_when_asked(tmp_path: Path, home: Path) -> None:
    bundle = _fake_bundle(tmp_path / "b" / "hanlin-0.1.0", "0.1.0")
    refused = _run(bundle / "install.sh", home, "--purge", check=False)
    assert refused.returncode == 2 and "--purge only goes with --uninstall" in refused.stderr
    _run(bundle / "install.sh", home)
    out = _run(bundle / "install.sh", home, "--uninstall", "--purge").stdout
    assert "Deleted your settings, chat history and models" in out
    assert not (home / ".config" / "hanlin").exists()
    assert not (home / ".local" / "share" / "hanlin").exists()


def test_a_custom_prefix_and_bad_options(tmp_path: Path, home: Path) -> None:
    bundle = _fake_bundle(tmp_path / "b" / "hanlin-0.1.0", "0.1.0")
    prefix = tmp_path / "apps" / "hanlin"
    _run(bundle / "install.sh", home, "--prefix", str(prefix))
    assert (prefix / "hanlin-app").is_file()
    assert os.readlink(home / ".local" / "bin" / "hanlin") == str(prefix / "hanlin")
    bad = _run(bundle / "install.sh", home, "--frobnicate", check=False)
    assert bad.returncode == 2 and "unknown option --frobnicate" in bad.stderr
    not_a_bundle = tmp_path / "elsewhere"
    not_a_bundle.mkdir()
    (not_a_bundle / "install.sh").write_bytes((bundle / "install.sh").read_bytes())
    lost = _run(not_a_bundle / "install.sh", home, check=False)
    assert lost.returncode == 1 and "inside an unpacked Hanlin bundle" in lost.stderr
