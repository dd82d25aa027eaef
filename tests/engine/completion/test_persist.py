"""A restarted editor starts warm: the engine saves its context's KV state in idle time
(engine/runtime/kv_state_store.py) and a new engine on a freshly loaded model loads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlin.engine.completion.engine import CompletionEngine, CompletionRequest
from hanlin.engine.runtime.kv_state_store import KVStateStore
from hanlin.engine.runtime.loader import LoadOptions, load_model

pytestmark = pytest.mark.slow

PREFIX = "".join(f"invoice_{i} = build_invoice(customer_{i}, lines_{i})\n" for i in range(20))


def _request(prefix: str) -> CompletionRequest:
    return CompletionRequest(prefix=prefix, suffix="\n", time_budget_ms=600_000, max_tokens=8)


def test_a_warmed_context_survives_a_restart(smollm2_path: Path, tmp_path: Path) -> None:
    store = KVStateStore(tmp_path / "kv")
    options = LoadOptions(n_ctx=2048, threads=1)
    model = load_model(smollm2_path, options=options)
    try:
        engine = CompletionEngine(model, kv_store=store)
        warmed = engine.warm(_request(PREFIX))
        assert warmed > 200
        assert len(store.entries()) == 1
        # warming the same prompt again saves nothing new
        engine.warm(_request(PREFIX))
        assert len(store.entries()) == 1
    finally:
        model.close()

    # "restart": a new process would load the model again and make a new engine
    model = load_model(smollm2_path, options=options)
    try:
        engine = CompletionEngine(model, kv_store=store)
        result = engine.complete(_request(PREFIX + "invoice_20 = "))
        assert engine.totals.restored_tokens >= warmed - 2
        # the new model's cache was empty: all but the new tokens came from the disk
        assert result.tokens_cached >= warmed - 2
        assert result.tokens_evaluated <= 12, result
        assert result.text.strip()
    finally:
        model.close()
