"""installers/pyinstaller/launcher.py: each executable of the bundle is what its name says;
`hanlin-app FILE.gguf` imports the model and opens the Models page."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from hanlin import __version__
from hanlin.engine.core import paths
from hanlin.engine.store.model_store import ModelStore

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "installers" / "pyinstaller" / "launcher.py"


@pytest.fixture
def launcher() -> dict:
    return runpy.run_path(str(LAUNCHER))


def _launch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        cwd=ROOT.parent,  # not the checkout: the installed package is what runs
    )


@pytest.mark.slow
def test_the_cli_and_the_language_server_by_name() -> None:
    cli = _launch("hanlin", "--version")
    assert cli.returncode == 0 and cli.stdout.strip() == f"hanlin {__version__}", cli.stderr
    lsp = _launch("hanlin-lsp", "--version")
    assert lsp.returncode == 0 and lsp.stdout.strip().startswith("hanlin-lsp "), lsp.stderr
    bad = _launch("hanlin", "models", "pull", "no-such-model")
    assert bad.returncode != 0 and bad.stderr.startswith("hanlin: error: Unknown model")


def test_a_frozen_executable_is_named_by_its_file(
    launcher: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    entry = launcher["_entry_name"]
    for exe, name in (
        ("/opt/hanlin/hanlin-lsp", "hanlin-lsp"),
        (r"C:\Program Files\Hanlin\hanlin-app.exe".replace("\\", "/"), "hanlin-app"),
        ("/Applications/Hanlin.app/Contents/MacOS/hanlin", "hanlin"),
        ("/somewhere/renamed-by-user", "hanlin"),  # unknown: the CLI
    ):
        monkeypatch.setattr(sys, "executable", exe)
        assert entry([exe, "doctor"]) == (name, ["doctor"])


def test_a_windowed_app_without_stdio_logs_to_a_file(
    launcher: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    launcher["_ensure_stdio"]()
    print("reached the log")
    sys.stderr.flush()
    log = paths.log_dir() / "hanlin-app.log"
    assert sys.stdout is sys.stderr and sys.stdout.name == str(log)
    sys.stdout.close()
    assert "reached the log" in log.read_text(encoding="utf-8")


def test_models_given_to_the_app_are_imported(
    launcher: dict, smollm2_path: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    problems = launcher["_import_models"]([smollm2_path, broken])
    assert [m.path for m in ModelStore().installed()] == [smollm2_path.resolve()]
    (problem,) = problems
    assert "broken.gguf" in str(problem)


@pytest.mark.slow
def test_open_with_hanlin_shows_the_models_page(smollm2_path: Path, hanlin_home: Path) -> None:
    shown = _launch(
        "hanlin-app",
        str(smollm2_path),
        HANLIN_STARTUP_PROBE="1",
        QT_QPA_PLATFORM="offscreen",
        HANLIN_HOME=str(hanlin_home),
    )
    assert shown.returncode == 0, shown.stderr
    assert "HANLIN_STARTUP_PROBE shown_ms=" in shown.stdout
    assert [m.path for m in ModelStore().installed()] == [smollm2_path.resolve()]
