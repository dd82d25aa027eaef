"""Helpers the desktop tests share: the real SmolLM2 registered as a chat model, short answers."""

from __future__ import annotations

from pathlib import Path

from hanlin.engine.core.settings import ModelSettings, Settings, save_settings

SMOL_ID = "smollm2"


def install_smollm2(path: Path, model_id: str = SMOL_ID, family: str | None = None):
    """Register the real SmolLM2 GGUF in this test's HANLIN_HOME."""
    from hanlin.engine.models.catalog import load_catalog
    from hanlin.engine.store.model_store import ModelStore

    store = ModelStore(catalog=load_catalog())
    store.import_file(path, model_id=model_id, family=family)
    return store


def short_answers(max_tokens: int = 12, *ids: str) -> None:
    """Greedy, short answers so the real model's tests stay quick and repeatable."""
    models = {i: ModelSettings(max_tokens=max_tokens, temperature=0.0) for i in (ids or (SMOL_ID,))}
    save_settings(Settings(chat_model=(ids or (SMOL_ID,))[0], models=models))
