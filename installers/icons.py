"""Render Hanlin's icon from its SVG into every size and container the installers need.

Why a script: `installers/linux/icons/hanlin.svg` is the one drawing; the PNG sizes
(freedesktop hicolor theme), the Windows `.ico`, the macOS `.icns` and the VS Code
extension's icon are derived from it and committed, so a build needs no image tools.
Qt's SVG renderer (PySide6, already a dependency) rasterises; the `.ico` and `.icns`
containers hold PNG images and are written here (both formats are a short header and
a table of entries).

    python installers/icons.py          # rewrite the derived files
    python installers/icons.py --check  # exit 1 if they differ from the SVG (tests)
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SVG = HERE / "linux" / "icons" / "hanlin.svg"
HICOLOR = HERE / "linux" / "icons" / "hicolor"
ICO = HERE / "windows" / "hanlin.ico"
ICNS = HERE / "macos" / "hanlin.icns"
VSCODE = HERE / "vscode" / "images" / "hanlin.png"  # the extension's icon (128 x 128)

PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: icns element types holding PNG data, by pixel size (Apple's "icns" format)
ICNS_TYPES = (
    (b"icp4", 16),
    (b"icp5", 32),
    (b"icp6", 64),
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic09", 512),
    (b"ic10", 1024),
    (b"ic11", 32),  # 16@2x
    (b"ic12", 64),  # 32@2x
    (b"ic13", 256),  # 128@2x
    (b"ic14", 512),  # 256@2x
)


def render_png(size: int) -> bytes:
    """The SVG rasterised at `size` x `size`, as PNG bytes."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"{SVG} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def ico_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICO file whose entries are PNG images (Windows Vista and later read these)."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    table, blobs = b"", b""
    for size in sizes:
        png = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in an ICO directory entry
        table += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(png), offset)
        blobs += png
        offset += len(png)
    return header + table + blobs


def icns_bytes(pngs: dict[int, bytes]) -> bytes:
    """An ICNS file: 'icns' + length, then (type, length, PNG) elements."""
    body = b"".join(
        kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def derived_files() -> dict[Path, bytes]:
    sizes = sorted({*PNG_SIZES, *ICO_SIZES, *(s for _, s in ICNS_TYPES)})
    pngs = {size: render_png(size) for size in sizes}
    files = {HICOLOR / f"{s}x{s}" / "apps" / "hanlin.png": pngs[s] for s in PNG_SIZES}
    files[HICOLOR / "scalable" / "apps" / "hanlin.svg"] = SVG.read_bytes()
    files[ICO] = ico_bytes({s: pngs[s] for s in ICO_SIZES})
    files[ICNS] = icns_bytes(pngs)
    files[VSCODE] = pngs[128]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = []
    for path, data in derived_files().items():
        if path.exists() and path.read_bytes() == data:
            continue
        if args.check:
            stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path.relative_to(HERE.parent)}")
    for path in stale:
        print(f"stale: {path.relative_to(HERE.parent)} (run python installers/icons.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
