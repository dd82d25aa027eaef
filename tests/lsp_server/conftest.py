"""Fixtures for the language server tests: a generated FIM-capable GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_fim_gguf import write_tiny_fim_gguf


@pytest.fixture(scope="session")
def tiny_fim_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight qwen2.5-coder-style model with real FIM special tokens."""
    return write_tiny_fim_gguf(tmp_path_factory.mktemp("tiny_fim") / "tiny-qwen-fim.gguf")
