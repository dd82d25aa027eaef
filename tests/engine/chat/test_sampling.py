"""Which sampling a reply uses: the user's setting > the catalog entry > the family > defaults.

The levels are checked with the real family registry and the real shipped catalog, and
on the real SmolLM2 (loaded as a Qwen3-family model) by reading back the values the
sampler chain was actually built with (`GenerationStats.sampling`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.chat.sampling import DEFAULT_SAMPLING, resolve_sampling
from hanlin.engine.chat.stream import ChatMessage, ChatSession, stream_chat
from hanlin.engine.core.errors import CatalogError
from hanlin.engine.models.catalog import Sampling, load_catalog, parse_catalog_file
from hanlin.engine.models.families import family_for
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model

QWEN3 = family_for("qwen3")
PLAIN = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0}
THINKING = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0}


def _picked(sampling: Sampling, keys: dict[str, float]) -> dict[str, float]:
    return {k: getattr(sampling, k) for k in keys}


def test_qwen3_without_user_or_catalog_values_gets_the_family_values() -> None:
    assert _picked(resolve_sampling(None, QWEN3, thinking=False), PLAIN) == PLAIN
    assert _picked(resolve_sampling(Sampling(), QWEN3, thinking=False), PLAIN) == PLAIN
    assert _picked(resolve_sampling(None, QWEN3, thinking=True), THINKING) == THINKING
    resolved = resolve_sampling(None, QWEN3, thinking=False)
    assert resolved.repeat_penalty == DEFAULT_SAMPLING.repeat_penalty  # the family is silent
    assert resolved.max_tokens == DEFAULT_SAMPLING.max_tokens


def test_each_level_overrides_the_ones_below() -> None:
    catalog = Sampling(temperature=0.3, max_tokens=512)
    # catalog > family: the catalog's temperature, the family's top-p
    r = resolve_sampling(catalog, QWEN3, thinking=False)
    assert (r.temperature, r.top_p, r.max_tokens) == (0.3, 0.8, 512)
    # user > catalog
    user = Sampling(temperature=0.1)
    r = resolve_sampling(user.over(catalog), QWEN3, thinking=False)
    assert (r.temperature, r.top_p, r.max_tokens) == (0.1, 0.8, 512)
    # family > defaults, for a family without recommendations everything is a default
    generic = resolve_sampling(None, family_for("llama"), thinking=True)
    assert generic == DEFAULT_SAMPLING


def test_catalog_values_for_thinking_off_and_the_user_above_them() -> None:
    catalog = Sampling(temperature=0.6, top_p=0.95, no_think=Sampling(temperature=0.75))
    assert resolve_sampling(catalog, QWEN3, thinking=True).temperature == 0.6
    off = resolve_sampling(catalog, QWEN3, thinking=False)
    assert (off.temperature, off.top_p) == (0.75, 0.95)
    user = Sampling(temperature=0.2)
    assert resolve_sampling(user.over(catalog), QWEN3, thinking=False).temperature == 0.2
    assert resolve_sampling(user.over(catalog), QWEN3, thinking=True).temperature == 0.2


def test_shipped_qwen3_entries_follow_the_thinking_switch() -> None:
    catalog = load_catalog()
    for entry in catalog:
        if entry.family != "qwen3":
            continue
        behavior = family_for(entry.family)
        on = resolve_sampling(entry.sampling, behavior, thinking=True)
        off = resolve_sampling(entry.sampling, behavior, thinking=False)
        assert _picked(on, THINKING) == THINKING, entry.id
        assert _picked(off, PLAIN) == PLAIN, entry.id
        assert on.max_tokens == off.max_tokens == 8192


def test_catalog_no_think_table_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        "[sampling.mine]\ntemperature = 0.6\n[sampling.mine.no_think]\ntemperature = 0.7\n"
    )
    _, presets = parse_catalog_file(path, "user")
    assert presets["mine"] == Sampling(temperature=0.6, no_think=Sampling(temperature=0.7))
    for bad, needle in [
        ("[sampling.mine.no_think]\ntemperature = 9.0\n", "temperature"),
        ("[sampling.mine.no_think]\nwarmth = 1\n", "unknown sampling key `warmth`"),
        ("[sampling.mine.no_think.no_think]\ntemperature = 0.5\n", "no_think"),
        ("[sampling.mine]\nno_think = 3\n", "no_think"),
    ]:
        path.write_text(bad)
        with pytest.raises(CatalogError, match=needle):
            parse_catalog_file(path, "user")


# ---------------------------------------------------------------- on the real model


@pytest.fixture(scope="module")
def qwen3_like(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadedModel]:
    """SmolLM2's weights with the Qwen3 family's behaviour (no Qwen3 weights are reachable)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HANLIN_HOME", str(tmp_path_factory.mktemp("sampling_home")))
        loaded = load_model(
            smollm2_path, family="qwen3", options=LoadOptions(n_ctx=512, threads=1)
        )
    yield loaded
    loaded.close()


@pytest.mark.slow
def test_the_sampler_uses_the_family_values_when_thinking_is_off(qwen3_like: LoadedModel) -> None:
    hi = [ChatMessage("user", "Hi")]
    reply = stream_chat(qwen3_like, hi, thinking=False, max_tokens=2)
    assert _picked_dict(reply.stats.sampling, PLAIN) == PLAIN
    reply = stream_chat(qwen3_like, hi, thinking=True, max_tokens=2)
    assert _picked_dict(reply.stats.sampling, THINKING) == THINKING
    catalog = Sampling(top_p=0.5)
    user = Sampling(temperature=0.0)
    reply = stream_chat(qwen3_like, hi, sampling=user.over(catalog), thinking=False, max_tokens=2)
    assert reply.stats.sampling["temperature"] == 0.0
    assert reply.stats.sampling["top_p"] == 0.5
    assert reply.stats.sampling["top_k"] == 20
    chat = ChatSession(qwen3_like, sampling=catalog, thinking=False, max_tokens=2)
    assert chat.send("Hi").stats.sampling["top_p"] == 0.5


def _picked_dict(values: dict[str, float], keys: dict[str, float]) -> dict[str, float]:
    return {k: values[k] for k in keys}
