"""Fixtures for the language server tests: a generated FIM-capable GGUF, and a
CompletionService with real SmolLM2 loaded."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.lsp_server.completion_service import CompletionService, LoadSpec
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf


@pytest.fixture(scope="session")
def tiny_fim_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight qwen2.5-coder-style model with real FIM special tokens."""
    return write_tiny_fim_gguf(tmp_path_factory.mktemp("tiny_fim") / "tiny-qwen-fim.gguf")


@pytest.fixture
def service(smollm2_path: Path) -> Iterator[CompletionService]:
    """A CompletionService that has loaded SmolLM2 (2048-token context, 1 thread)."""
    svc = CompletionService()
    done = threading.Event()
    errors: list[object] = []

    def on_done(error: object) -> None:
        errors.append(error)
        done.set()

    svc.start_loading(
        LoadSpec(model=str(smollm2_path), context_length=2048, threads=1),
        on_progress=lambda p: None,
        on_done=on_done,
    )
    assert done.wait(120) and errors == [None]
    yield svc
    svc.close()
