"""The distribution installs under one import name, `hanlin`, and its surfaces resolve.

Why: PyPI already has a `desktop` distribution and `engine` is a common name; a wheel that
installed top-level `engine`/`desktop` packages could overwrite, or be overwritten by, other
software. These tests build the real wheel and read what it would install.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUB_PACKAGES = ("core", "models", "store", "runtime", "chat", "completion")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (path,) = out.glob("hanlin-*.whl")
    return zipfile.ZipFile(path)


@pytest.mark.slow
def test_the_wheel_installs_only_under_hanlin(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"hanlin"}
    assert "hanlin/engine/models/model_catalog.toml" in names  # the shipped catalog travels
    assert "hanlin/engine/models/catalog.py" in names
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.slow
def test_the_wheel_entry_points_name_hanlin_modules(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "hanlin = hanlin.desktop.cli.main:main" in text
    assert "hanlin-lsp = hanlin.lsp_server.main:main" in text


def test_installed_console_scripts_resolve() -> None:
    scripts = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}
    for name in ("hanlin", "hanlin-lsp"):
        assert scripts[name].value.startswith("hanlin."), scripts[name].value
        assert callable(scripts[name].load())


def test_version_comes_from_the_package_metadata() -> None:
    import hanlin

    assert hanlin.__version__ == metadata.version("hanlin")
    result = subprocess.run(
        [sys.executable, "-m", "hanlin.desktop.cli.main", "--version"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.stdout.strip() == f"hanlin {metadata.version('hanlin')}"


@pytest.mark.parametrize("package", SUB_PACKAGES)
def test_each_sub_package_surface_resolves(package: str) -> None:
    module = importlib.import_module(f"hanlin.engine.{package}")
    assert module.__all__, package
    for name in module.__all__:
        assert getattr(module, name) is not None, f"hanlin.engine.{package}.{name}"
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_importing_one_module_does_not_load_the_rest_of_its_package() -> None:
    """`runtime/__init__` names `load_model`, yet `runtime.hardware` must not pull in llama.cpp."""
    script = (
        "import sys, hanlin.engine.runtime.hardware, hanlin.engine.store.part_writer\n"
        "heavy = [m for m in ('llama_cpp', 'huggingface_hub', 'hanlin.engine.runtime.loader',"
        " 'hanlin.engine.store.model_store') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
