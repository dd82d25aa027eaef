"""Draft models: the suggestion among installed models, loading one beside the main model,
and the tokenizer check that refuses a model whose token ids mean other text.

The models are tiny real GGUFs (tests/support/tiny_fim_gguf.py) with chosen vocabularies,
registered in a real `ModelStore`, and SmolLM2 for a vocabulary of another size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlin.engine.runtime.draft_model import (
    DraftModelError,
    load_draft_model,
    same_tokenizer_files,
    suggest_draft_model,
)
from hanlin.engine.runtime.loader import LoadOptions, load_model
from hanlin.engine.store.model_store import ModelStore
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    """main (qwen2.5-coder vocabulary, ~8 MB), and candidates for drafting for it."""
    store = ModelStore()
    files = tmp_path / "models"
    layouts = {
        # id: (tiny family, n_embd, n_ff, the store's family)
        "coder-main": ("qwen2.5-coder", 256, 1024, "qwen2.5-coder"),
        "coder-draft": ("qwen2.5-coder", 64, 128, "qwen2.5-coder"),
        "coder-medium": ("qwen2.5-coder", 192, 512, "qwen2.5-coder"),  # not 4x smaller
        "other-family-tiny": ("qwen2.5-coder", 32, 64, "qwen3"),  # same ids, other family
        "glm-tiny": ("codegeex4", 32, 64, "codegeex4"),  # another tokenizer
    }
    for model_id, (tiny, n_embd, n_ff, family) in layouts.items():
        path = write_tiny_fim_gguf(files / f"{model_id}.gguf", tiny, n_embd=n_embd, n_ff=n_ff)
        store.import_file(path, model_id=model_id, family=family)
    return store


@pytest.mark.slow
def test_suggests_the_small_model_of_the_same_tokenizer_and_family(store: ModelStore) -> None:
    sizes = {m.id: m.size_bytes for m in store.installed()}
    assert sizes["coder-main"] >= 4 * sizes["coder-draft"]
    assert sizes["coder-main"] < 4 * sizes["coder-medium"]
    suggested = suggest_draft_model(store, "coder-main")
    assert suggested is not None and suggested.id == "coder-draft"
    # nothing much smaller with its tokenizer: no suggestion (glm-tiny has another one)
    assert suggest_draft_model(store, "coder-draft") is None
    assert suggest_draft_model(store, "glm-tiny") is None
    assert suggest_draft_model(store, "not-installed") is None
    # the family outranks size, the tokenizer outranks the family
    store.remove("coder-draft")
    suggested = suggest_draft_model(store, "coder-main")
    assert suggested is not None and suggested.id == "other-family-tiny"
    by_id = {m.id: m for m in store.installed()}
    assert same_tokenizer_files(by_id["coder-main"].path, by_id["coder-medium"].path)
    assert not same_tokenizer_files(by_id["coder-main"].path, by_id["glm-tiny"].path)


@pytest.mark.slow
def test_loads_a_compatible_draft_beside_the_main_model(store: ModelStore) -> None:
    main = load_model(store.get("coder-main").path, options=LoadOptions(n_ctx=512, threads=1))
    try:
        draft = load_draft_model(main, "coder-draft", store=store)
        try:
            assert draft.model_id == "coder-draft"
            assert draft.n_ctx == main.n_ctx and draft.threads == main.threads
        finally:
            draft.close()
    finally:
        main.close()


@pytest.mark.slow
def test_refuses_a_draft_model_with_another_tokenizer(
    store: ModelStore, smollm2_path: Path
) -> None:
    main = load_model(store.get("coder-main").path, options=LoadOptions(n_ctx=512, threads=1))
    try:
        # vocabularies of nearly the same size whose token texts differ
        with pytest.raises(DraftModelError) as err:
            load_draft_model(main, "glm-tiny", store=store)
        message = str(err.value)
        assert "glm-tiny cannot be the draft model of coder-main" in message
        assert "another tokenizer" in message and err.value.hint
        # a vocabulary of another size altogether
        with pytest.raises(DraftModelError, match="its vocabulary has 49152 tokens"):
            load_draft_model(main, str(smollm2_path), store=store)
        with pytest.raises(DraftModelError, match="not available"):
            load_draft_model(main, "no-such-model", store=store)
    finally:
        main.close()
