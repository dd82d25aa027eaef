"""The Linux desktop integration: a valid .desktop file, the .gguf MIME type, and the icon
in every size and container (drawn once, as SVG)."""

from __future__ import annotations

import configparser
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "installers" / "linux"
HICOLOR = LINUX / "icons" / "hicolor"


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: apt-get install {package} (.ci/run installs it)")
    return found


def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(LINUX / "hanlin.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_file_validates() -> None:
    result = subprocess.run(
        [_tool("desktop-file-validate", "desktop-file-utils"), str(LINUX / "hanlin.desktop")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_desktop_file_starts_the_window_and_opens_models() -> None:
    entry = _desktop_entry()
    assert entry["Exec"] == "hanlin-app %F"  # install.sh makes it an absolute path
    assert entry["TryExec"] == "hanlin-app"
    assert entry["Icon"] == "hanlin"
    assert entry["Terminal"] == "false"
    assert entry["MimeType"] == "application/x-gguf;"


def test_the_gguf_mime_type_is_registered_by_shared_mime_info(tmp_path: Path) -> None:
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    root = ET.parse(LINUX / "hanlin-gguf.xml").getroot()
    (kind,) = root.findall("m:mime-type", ns)
    assert kind.get("type") == "application/x-gguf" == _desktop_entry()["MimeType"].rstrip(";")
    assert kind.find("m:glob", ns).get("pattern") == "*.gguf"  # type: ignore[union-attr]
    match = kind.find("m:magic/m:match", ns)
    assert match is not None and (match.get("value"), match.get("offset")) == ("GGUF", "0")
    packages = tmp_path / "mime" / "packages"
    packages.mkdir(parents=True)
    shutil.copy2(LINUX / "hanlin-gguf.xml", packages)
    subprocess.run(
        [_tool("update-mime-database", "shared-mime-info"), str(tmp_path / "mime")], check=True
    )
    assert "application/x-gguf:*.gguf" in (tmp_path / "mime" / "globs2").read_text()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_icon_pngs_in_every_hicolor_size() -> None:
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        png = HICOLOR / f"{size}x{size}" / "apps" / "hanlin.png"
        assert _png_size(png.read_bytes()) == (size, size), png
    svg = HICOLOR / "scalable" / "apps" / "hanlin.svg"
    assert svg.read_bytes() == (LINUX / "icons" / "hanlin.svg").read_bytes()
    vscode = ROOT / "installers" / "vscode" / "images" / "hanlin.png"
    assert _png_size(vscode.read_bytes()) == (128, 128)


def test_the_svg_renders(qapp) -> None:  # pytest-qt's QApplication
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(LINUX / "icons" / "hanlin.svg"))
    assert renderer.isValid()
    assert renderer.defaultSize().width() == renderer.defaultSize().height() == 256


def test_windows_ico_and_macos_icns_hold_png_images() -> None:
    ico = (ROOT / "installers" / "windows" / "hanlin.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1) and count == 7
    sizes = []
    for i in range(count):
        width, _h, _c, _r, _planes, _bits, length, offset = struct.unpack(
            "<BBBBHHII", ico[6 + 16 * i : 22 + 16 * i]
        )
        size = _png_size(ico[offset : offset + length])
        assert size[0] == (width or 256)
        sizes.append(size[0])
    assert sizes == [16, 24, 32, 48, 64, 128, 256]

    icns = (ROOT / "installers" / "macos" / "hanlin.icns").read_bytes()
    assert icns[:4] == b"icns" and struct.unpack(">I", icns[4:8])[0] == len(icns)
    pos, kinds = 8, {}
    while pos < len(icns):
        kind_name, length = icns[pos : pos + 4], struct.unpack(">I", icns[pos + 4 : pos + 8])[0]
        kinds[kind_name] = _png_size(icns[pos + 8 : pos + length])[0]
        pos += length
    assert kinds[b"ic10"] == 1024 and kinds[b"ic07"] == 128 and kinds[b"icp4"] == 16
