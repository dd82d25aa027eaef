"""installers/pyinstaller/hanlin.spec: three entry points sharing one runtime, every module of
`hanlin`, the catalog, llama.cpp's libraries, fonts; nothing Hanlin imports is excluded.

The spec runs for real (PyInstaller's hook helpers collect the real files) with
PyInstaller's build steps replaced by recorders, so this checks what the spec asks
PyInstaller for in seconds; CI's bundle build and smoke test check the result.
"""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import runpy
import sys
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import pytest

import hanlin

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "installers" / "pyinstaller" / "hanlin.spec"
LAUNCHER = ROOT / "installers" / "pyinstaller" / "launcher.py"


class _Recorder:
    made: ClassVar[list[_Recorder]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        type(self).made.append(self)


class Analysis(_Recorder):
    made: ClassVar[list[_Recorder]] = []

    def __init__(self, scripts: list[str], **kwargs: Any) -> None:
        super().__init__(scripts, **kwargs)
        self.scripts = [(Path(s).stem, s, "PYSOURCE") for s in scripts]
        self.pure: list[Any] = []
        # PyInstaller turns (source, destination folder) pairs into (dest, source, kind)
        self.binaries = [
            (f"{dest}/{os.path.basename(src)}", src, "BINARY") for src, dest in kwargs["binaries"]
        ]
        self.datas = [
            (f"{dest}/{os.path.basename(src)}".lstrip("./"), src, "DATA")
            for src, dest in kwargs["datas"]
        ]


class PYZ(_Recorder):
    made: ClassVar[list[_Recorder]] = []


class EXE(_Recorder):
    made: ClassVar[list[_Recorder]] = []


class COLLECT(_Recorder):
    made: ClassVar[list[_Recorder]] = []


class BUNDLE(_Recorder):
    made: ClassVar[list[_Recorder]] = []


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    for kind in (Analysis, PYZ, EXE, COLLECT, BUNDLE):
        kind.made = []
    work = tmp_path_factory.mktemp("pyinstaller-work")
    spec_globals = {
        "SPECPATH": str(SPEC.parent),
        "workpath": str(work),
        "DISTPATH": str(work / "dist"),
        "Analysis": Analysis,
        "PYZ": PYZ,
        "EXE": EXE,
        "COLLECT": COLLECT,
        "BUNDLE": BUNDLE,
    }
    return runpy.run_path(str(SPEC), init_globals=spec_globals)


def _entry_points() -> dict[str, tuple[str, str, bool]]:
    return runpy.run_path(str(LAUNCHER))["ENTRY_POINTS"]


def test_the_launcher_has_the_three_entry_points_of_pyproject() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    entries = _entry_points()
    assert list(entries) == ["hanlin-app", "hanlin", "hanlin-lsp"]
    for name, target in scripts.items():
        module, function = target.split(":")
        assert entries[name] == (module, function, True), name
    # the window: the CLI with no arguments, without a console
    assert entries["hanlin-app"] == ("hanlin.desktop.cli.main", "main", False)


@pytest.mark.slow
def test_three_executables_one_collect(spec: dict[str, Any]) -> None:
    (analysis,) = Analysis.made
    assert [Path(s).name for s in analysis.args[0]] == ["launcher.py"]
    exes = EXE.made
    assert [(e.kwargs["name"], e.kwargs["console"]) for e in exes] == [
        ("hanlin-app", False),
        ("hanlin", True),
        ("hanlin-lsp", True),
    ]
    assert all(e.kwargs["exclude_binaries"] for e in exes)  # onedir: the libraries are shared
    (pyz,) = PYZ.made
    assert all(e.args[0] is pyz for e in exes)  # one set of modules for all three
    (collect,) = COLLECT.made
    assert collect.kwargs["name"] == "hanlin"
    assert [a for a in collect.args if isinstance(a, EXE)] == exes
    # modules as files in _internal/, not an archive copied into each executable
    assert analysis.kwargs["noarchive"] is True
    assert [Path(h).name for h in analysis.kwargs["runtime_hooks"]] == ["rthook_hanlin.py"]
    assert BUNDLE.made == [] or sys.platform == "darwin"


@pytest.mark.slow
def test_every_hanlin_module_is_collected(spec: dict[str, Any]) -> None:
    (analysis,) = Analysis.made
    hidden = set(analysis.kwargs["hiddenimports"])
    modules = {
        m.name for m in pkgutil.walk_packages(hanlin.__path__, prefix="hanlin.")
    } | {"hanlin"}
    assert modules <= hidden, sorted(modules - hidden)
    # including the packages others are adding (the server, remote endpoints)
    assert {"hanlin.engine.chat.history_migrations", "hanlin.engine.runtime.builds"} <= hidden


@pytest.mark.slow
def test_the_catalog_llama_cpp_libraries_fonts_and_build_info(spec: dict[str, Any]) -> None:
    (analysis,) = Analysis.made
    datas = {dest: src for dest, src, _ in analysis.datas}
    assert "hanlin/engine/models/model_catalog.toml" in datas
    assert Path(datas["hanlin/engine/models/model_catalog.toml"]).is_file()
    kinds = (".dist-info", ".egg-info")
    metadata = {dest for _src, dest in analysis.kwargs["datas"] if dest.endswith(kinds)}
    assert any(d.startswith("hanlin") for d in metadata), metadata  # hanlin.__version__
    assert any(d.startswith("llama_cpp_python-") for d in metadata), metadata
    binaries = {dest for dest, _, _ in analysis.binaries}
    assert any(d.startswith("llama_cpp/lib/libllama") for d in binaries), sorted(binaries)
    assert any(d.startswith("llama_cpp/lib/libggml") for d in binaries)
    if sys.platform.startswith("linux"):
        for font in ("fonts/DejaVuSans.ttf", "fonts/DejaVuSansMono.ttf", "fonts/fonts.conf"):
            assert font in datas, font
    info = Path(datas["hanlin_build.json"])
    build = json.loads(info.read_text(encoding="utf-8"))
    assert build["hanlin"] == spec["VERSION"]
    assert build["backend"] == "cpu"  # the CPU-only llama-cpp-python installed here


def _top_level_imports() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "hanlin").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.slow
def test_nothing_hanlin_imports_is_excluded(spec: dict[str, Any]) -> None:
    imported = _top_level_imports()
    for excluded in spec["EXCLUDES"]:
        clash = {m for m in imported if m == excluded or m.startswith(excluded + ".")}
        assert not clash, f"hanlin imports {sorted(clash)} but hanlin.spec excludes {excluded}"


@pytest.mark.slow
def test_qt_plugins_and_drivers_that_stay_out(spec: dict[str, Any]) -> None:
    keep = spec["_keep"]
    assert not keep(("PySide6/Qt/plugins/platforms/libqeglfs.so", "x", "BINARY"))
    assert not keep(("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "x", "BINARY"))
    assert keep(("PySide6/Qt/plugins/platforms/libqxcb.so", "x", "BINARY"))
    assert keep(("PySide6/Qt/plugins/platforms/libqoffscreen.so", "x", "BINARY"))
    assert keep(("PySide6/Qt/plugins/platforms/libqwayland.so", "x", "BINARY"))
    assert not keep(("PySide6/Qt/translations/qtdeclarative_de.qm", "x", "DATA"))
    assert keep(("PySide6/Qt/translations/qtbase_de.qm", "x", "DATA"))
    # GPU drivers come from the user's system; CUDA's runtime libraries do not
    assert not keep(("libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "BINARY"))
    assert not keep(("libvulkan.so.1", "/usr/lib/x86_64-linux-gnu/libvulkan.so.1", "BINARY"))
    assert keep(("libcudart.so.12", "/usr/local/cuda/lib64/libcudart.so.12", "BINARY"))
    assert not keep(("librocblas.so.4", "/opt/rocm/lib/librocblas.so.4", "BINARY"))
