"""The completion engine on real llama.cpp: SmolLM2 (prefix-only) and tiny generated FIM models."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.completion.engine import CompletionEngine, ResponseCache
from hanlin.engine.completion.engine import CompletionRequest as _Request
from hanlin.engine.completion.filters import postprocess
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import Cancelled
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model
from tests.support.tiny_fim_gguf import FAMILIES, write_tiny_fim_gguf

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
# A real Python file that is not Hanlin's own code (so refactors here cannot change the test).
SOURCE = (ROOT / "bench" / "data" / "inventory.py").read_text()
CUT = SOURCE.index("    def needs_reorder")
PY_PREFIX = SOURCE[:CUT][-3000:]
PY_SUFFIX = SOURCE[CUT:][:1500]

SPECIAL_MARKERS = ("<|", "|>", "<｜", "<fim", "</s>")


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    from tests.conftest import smollm2_gguf

    model = load_model(smollm2_gguf(), options=LoadOptions(n_ctx=2048, threads=1))
    yield model
    model.close()


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    path = write_tiny_fim_gguf(tmp_path_factory.mktemp("tiny") / "tiny-qwen.gguf")
    model = load_model(path, options=LoadOptions(n_ctx=1024, threads=1))
    yield model
    model.close()


def _fresh(model: LoadedModel, **kwargs: object) -> CompletionEngine:
    with model.lock:
        model.session.reset()
    return CompletionEngine(model, **kwargs)  # type: ignore[arg-type]


def CompletionRequest(**kwargs: object) -> _Request:
    """A request with a generous time budget: tests share two busy cores and never assert speed."""
    kwargs.setdefault("time_budget_ms", 600_000)
    return _Request(**kwargs)  # type: ignore[arg-type]


class CancelAfter(CancelToken):
    """A token that reports itself cancelled from its n-th check on (a deterministic cancel)."""

    __slots__ = ("checks", "limit")

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.checks = 0

    @property
    def cancelled(self) -> bool:  # type: ignore[override]
        self.checks += 1
        if self.checks >= self.limit:
            self.cancel("newer keystroke")
        return super().cancelled


# ------------------------------------------------------------------ FIM on the tiny Qwen model


def test_tiny_qwen_uses_fim_and_never_shows_special_tokens(tiny_qwen: LoadedModel) -> None:
    engine = _fresh(tiny_qwen)
    assert engine.template.name == "qwen2.5-coder"
    for i in range(6):
        result = engine.complete(
            CompletionRequest(
                prefix=f"def f{i}(x):\n    return x",
                suffix="\n\nprint(f(1))\n",
                max_tokens=24,
                multiline=True,
            )
        )
        assert result.template == "qwen2.5-coder"
        assert result.prompt_tokens > 10
        assert not any(m in result.text for m in SPECIAL_MARKERS)
        assert not any(m in result.raw_text for m in SPECIAL_MARKERS)


def test_tiny_qwen_filters_cut_at_its_vocabularys_special_tokens_only(
    tiny_qwen: LoadedModel,
) -> None:
    engine = _fresh(tiny_qwen)
    ctx = engine.filter_context(
        CompletionRequest(prefix="<ul>\n  <li><s>", suffix="\n</ul>\n", language="html")
    )
    assert ctx.special_texts == FAMILIES["qwen2.5-coder"].specials
    html = "Milk</s> sold out</li>"
    assert postprocess(html, ctx) == html
    assert postprocess(html + "<|fim_pad|><|file_sep|>shop.html", ctx) == html
    assert postprocess("<|endoftext|>" + html, ctx) == ""


def test_qwen_like_ordinary_closing_s_token_does_not_cut_html(tmp_path: Path) -> None:
    """Real Qwen2.5/Qwen3 GGUFs hold `</s>` as an ordinary token that llama.cpp promotes to
    CONTROL at load; a strikethrough in an HTML completion must still survive."""
    path = write_tiny_fim_gguf(tmp_path / "qwen-s.gguf", extra_normal_tokens=("</s>",))
    model = load_model(path, options=LoadOptions(n_ctx=512, threads=1))
    try:
        engine = CompletionEngine(model)
        request = CompletionRequest(prefix="<p><s>$49", suffix="\n", language="html")
        ctx = engine.filter_context(request)
        assert "</s>" not in ctx.special_texts and "<|fim_pad|>" in ctx.special_texts
        assert postprocess("</s> $29 today</p>", ctx) == "</s> $29 today</p>"
        assert postprocess("</s> $29 today</p><|fim_pad|>", ctx) == "</s> $29 today</p>"
        result = engine.complete(request)
        assert result.template == "qwen2.5-coder" and result.prompt_tokens > 3
    finally:
        model.close()


def test_a_keystroke_evaluates_only_the_new_tokens_fim(tiny_qwen: LoadedModel) -> None:
    engine = _fresh(tiny_qwen)
    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(30))
    suffix = "\nprint(g(2))\n"
    first = engine.complete(CompletionRequest(prefix=body + "def g(x):\n    ret", suffix=suffix))
    assert first.tokens_cached == 0
    assert first.tokens_evaluated == first.prompt_tokens > 300
    second = engine.complete(CompletionRequest(prefix=body + "def g(x):\n    retu", suffix=suffix))
    assert not second.from_cache
    # the keystroke's own token(s) plus the short suffix and <|fim_middle|> run again
    suffix_tokens = len(engine.vocab.tokenize(suffix)) + 2
    assert second.tokens_evaluated <= suffix_tokens + 4
    assert second.tokens_cached >= first.prompt_tokens - suffix_tokens - 4
    assert engine.totals.tokens_cached == second.tokens_cached


def test_without_kv_reuse_everything_is_evaluated_again(tiny_qwen: LoadedModel) -> None:
    engine = _fresh(tiny_qwen, kv_reuse=False, response_cache=False)
    request = CompletionRequest(prefix="import os\n\ndef main():\n    os.", suffix="\n")
    a = engine.complete(request)
    b = engine.complete(request)
    assert a.tokens_evaluated == b.tokens_evaluated == b.prompt_tokens
    assert b.tokens_cached == 0 and not b.from_cache


def test_model_that_wants_special_tokens_gives_empty_text(tmp_path: Path) -> None:
    path = write_tiny_fim_gguf(tmp_path / "eager.gguf", eager_specials=True)
    model = load_model(path, options=LoadOptions(n_ctx=512, threads=1))
    try:
        engine = CompletionEngine(model)
        result = engine.complete(CompletionRequest(prefix="x = ", suffix="\n", max_tokens=16))
        assert result.text == "" and result.raw_text == ""
        assert result.stop_reason == "stop"
        assert result.generated_tokens == 0
    finally:
        model.close()


def test_deepseek_tiny_model_completes_with_its_template(tmp_path: Path) -> None:
    path = write_tiny_fim_gguf(tmp_path / "ds.gguf", "deepseek-coder")
    model = load_model(path, options=LoadOptions(n_ctx=512, threads=1))
    try:
        engine = CompletionEngine(model)
        assert engine.template.name == "deepseek-coder"
        result = engine.complete(CompletionRequest(prefix="int main() {\n  ", suffix="\n}\n"))
        assert result.prompt_tokens > 5 and result.template == "deepseek-coder"
        assert not any(m in result.text for m in SPECIAL_MARKERS)
    finally:
        model.close()


def test_prompt_shrinks_to_fit_a_small_context(tiny_qwen: LoadedModel) -> None:
    engine = _fresh(tiny_qwen)
    huge = "".join(f"value_{i} = compute({i}, {i * 7}, 'label {i}')\n" for i in range(3000))
    result = engine.complete(CompletionRequest(prefix=huge, suffix="\n" + huge, max_tokens=16))
    assert result.prompt_tokens <= tiny_qwen.n_ctx - 16
    assert result.tokens_evaluated > 0


# ------------------------------------------------------------------ SmolLM2, prefix-only


def test_smollm2_completes_python_prefix_only(smol: LoadedModel) -> None:
    engine = _fresh(smol)
    assert engine.template.name == "prefix-only"
    result = engine.complete(
        CompletionRequest(prefix=PY_PREFIX + "def trim_", suffix=PY_SUFFIX, max_tokens=24)
    )
    assert result.text.strip()
    assert result.generated_tokens > 0
    assert not any(m in result.text for m in SPECIAL_MARKERS)


# An HTML list that SmolLM2 continues with a closing `</s>` under greedy decoding.
HTML_PREFIX = (
    "<h2>Groceries</h2>\n<ul>\n"
    "  <li><s>Milk</s> bought on Monday</li>\n"
    "  <li><s>Eggs</s> bought on Monday</li>\n"
    "  <li><s>Bread"
)


def test_html_strikethrough_in_a_completion_survives_smollm2(smol: LoadedModel) -> None:
    """`</s>` is ordinary text in SmolLM2's vocabulary: a completion is never cut there."""
    engine = _fresh(smol, response_cache=False)
    for prefix in (HTML_PREFIX, HTML_PREFIX.removesuffix("Bread")):
        result = engine.complete(
            CompletionRequest(prefix=prefix, suffix="\n</ul>\n", language="html", max_tokens=24)
        )
        assert "</s> bought on Monday</li>" in result.raw_text, result
        assert result.text == result.raw_text.strip()
        assert result.text.endswith("</s> bought on Monday</li>")


def test_response_cache_serves_typed_ahead_characters(smol: LoadedModel) -> None:
    engine = _fresh(smol)
    prefix = PY_PREFIX + "def trim_"
    first = engine.complete(CompletionRequest(prefix=prefix, suffix=PY_SUFFIX, max_tokens=24))
    assert len(first.text) >= 2, first
    again = engine.complete(CompletionRequest(prefix=prefix, suffix=PY_SUFFIX, max_tokens=24))
    assert again.from_cache and again.text == first.text and again.tokens_evaluated == 0
    typed = first.text[:2]
    hit = engine.complete(CompletionRequest(prefix=prefix + typed, suffix=PY_SUFFIX, max_tokens=24))
    assert hit.from_cache
    assert hit.stop_reason == "cache"
    assert hit.text == first.text[2:].rstrip()
    assert hit.generated_tokens == 0
    assert engine.totals.cache_hits == 2
    # typing something else misses the cache and runs the model (from the KV cache)
    other = "zz" if not first.text.startswith("zz") else "qq"
    miss = engine.complete(CompletionRequest(prefix=prefix + other, suffix=PY_SUFFIX, max_tokens=8))
    assert not miss.from_cache
    assert miss.tokens_cached > 500 and miss.tokens_evaluated < 10


def test_typing_through_a_multiline_completion_keeps_its_lines(smol: LoadedModel) -> None:
    """On a blank line the answer is a block; typing its first characters makes the cursor
    line a one-line context, yet the rest of the block stays what the editor shows."""
    engine = _fresh(smol)
    prefix = PY_PREFIX + "\n    def remove(self, sku):\n        "
    suffix = "\n" + PY_SUFFIX
    first = engine.complete(CompletionRequest(prefix=prefix, suffix=suffix, max_tokens=48))
    assert first.text.count("\n") >= 1, first  # SmolLM2 writes a block here
    typed = first.text[:3]
    hit = engine.complete(CompletionRequest(prefix=prefix + typed, suffix=suffix, max_tokens=48))
    assert hit.from_cache and hit.generated_tokens == 0, hit
    assert hit.text == first.text[3:], hit
    # a client that asked for one line gets one line, from the model
    one = engine.complete(
        CompletionRequest(prefix=prefix + typed, suffix=suffix, max_tokens=48, multiline=False)
    )
    assert "\n" not in one.text


def test_a_finished_line_chains_into_the_next_one(smol: LoadedModel) -> None:
    """At the end of a finished line (`@property`) a one-line answer is the model's newline:
    the line after it is shown instead of nothing, and the cache gives it again."""
    engine = _fresh(smol)
    cut = PY_PREFIX.rindex("    @property") + len("    @property")
    prefix, suffix = PY_PREFIX[:cut], "\n"
    first = engine.complete(CompletionRequest(prefix=prefix, suffix=suffix, max_tokens=32))
    assert first.text.startswith("\n") and first.text.count("\n") == 1, first
    assert first.text.strip().startswith("def "), first  # SmolLM2 writes the getter
    again = engine.complete(CompletionRequest(prefix=prefix, suffix=suffix, max_tokens=32))
    assert again.from_cache and again.text == first.text, again
    # a client that asked for one line gets no second line
    one = _fresh(smol).complete(
        CompletionRequest(prefix=prefix, suffix=suffix, max_tokens=32, multiline=False)
    )
    assert "\n" not in one.text, one


def test_response_cache_off_always_runs_the_model(smol: LoadedModel) -> None:
    engine = _fresh(smol, response_cache=False)
    request = CompletionRequest(prefix=PY_PREFIX + "def trim_", suffix=PY_SUFFIX, max_tokens=8)
    engine.complete(request)
    again = engine.complete(request)
    assert not again.from_cache and again.tokens_evaluated >= 1
    assert engine.totals.cache_hits == 0


def test_prefix_only_keystroke_reuses_the_kv_cache(smol: LoadedModel) -> None:
    engine = _fresh(smol, response_cache=False)
    a = engine.complete(CompletionRequest(prefix=PY_PREFIX + "def tr", max_tokens=4))
    b = engine.complete(CompletionRequest(prefix=PY_PREFIX + "def tri", max_tokens=4))
    assert a.tokens_evaluated == a.prompt_tokens
    assert b.tokens_evaluated <= 3
    assert b.tokens_cached >= a.prompt_tokens - 3


def test_cancel_mid_generation_raises_and_keeps_the_cache_usable(smol: LoadedModel) -> None:
    engine = _fresh(smol, response_cache=False)
    prompt_tokens = len(engine.vocab.tokenize(PY_PREFIX)) + 1
    token = CancelAfter(limit=8)  # past the prompt chunks: inside the token loop
    with pytest.raises(Cancelled):
        engine.complete(
            CompletionRequest(prefix=PY_PREFIX, max_tokens=64, multiline=True), cancel=token
        )
    assert token.checks >= 8
    held = len(smol.session.tokens)
    assert prompt_tokens <= held < prompt_tokens + 64  # generated a little, then stopped
    assert engine.totals.cancelled == 1
    after = engine.complete(CompletionRequest(prefix=PY_PREFIX, max_tokens=4))
    assert after.tokens_cached >= prompt_tokens - 2


def test_cancel_before_start(smol: LoadedModel) -> None:
    engine = _fresh(smol)
    token = CancelToken()
    token.cancel("user moved on")
    with pytest.raises(Cancelled, match="user moved on"):
        engine.complete(CompletionRequest(prefix="x = "), cancel=token)


def test_predict_time_budget_stops_generation(smol: LoadedModel) -> None:
    engine = _fresh(smol, response_cache=False)
    result = engine.complete(
        CompletionRequest(prefix=PY_PREFIX, max_tokens=64, multiline=True, t_max_predict_ms=1)
    )
    assert result.stop_reason == "time"
    assert result.generated_tokens <= 2


def test_prompt_time_budget_stops_and_the_next_request_continues(smol: LoadedModel) -> None:
    engine = _fresh(smol, response_cache=False)
    long_prefix = SOURCE[:6000]
    first = engine.complete(
        CompletionRequest(prefix=long_prefix, max_tokens=4, t_max_prompt_ms=1, small_window=False)
    )
    assert first.stop_reason == "time" and first.text == ""
    assert 0 < first.tokens_evaluated < first.prompt_tokens
    second = engine.complete(CompletionRequest(prefix=long_prefix, max_tokens=4))
    assert second.tokens_cached == first.tokens_evaluated
    assert second.tokens_evaluated == second.prompt_tokens - first.tokens_evaluated


def test_single_line_when_text_right_of_cursor(smol: LoadedModel) -> None:
    engine = _fresh(smol)
    prefix = "def area(radius):\n    return "
    result = engine.complete(CompletionRequest(prefix=prefix, suffix=" * radius\n", max_tokens=32))
    assert "\n" not in result.text
    assert result.stop_reason in {"eol", "stop", "length"}


def test_concurrent_requests_are_serialised_by_the_model_lock(smol: LoadedModel) -> None:
    engine = _fresh(smol, response_cache=False)
    results: list[object] = []

    def work(k: int) -> None:
        req = CompletionRequest(prefix=PY_PREFIX[-800:] + f"x{k} = ", max_tokens=6)
        results.append(engine.complete(req))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    assert engine.totals.requests == 3


def test_result_dict_uses_the_lsp_field_names(tiny_qwen: LoadedModel) -> None:
    engine = _fresh(tiny_qwen)
    d = engine.complete(CompletionRequest(prefix="a = 1\nb = ", max_tokens=4)).to_dict()
    assert {
        "text",
        "tokensEvaluated",
        "tokensCached",
        "fromCache",
        "elapsedMs",
        "stopReason",
    } <= set(d)


def test_response_cache_lru_and_type_ahead_unit() -> None:
    from hanlin.engine.completion.engine import _CacheEntry

    cache = ResponseCache(capacity=2)
    cache.put(cache.key("h", "def f(x):\n    re"), _CacheEntry("turn x + 1", "turn x + 1"))
    assert cache.lookup("h", "def f(x):\n    re") == ("turn x + 1", "")
    assert cache.lookup("h", "def f(x):\n    retu") == ("rn x + 1", "tu")
    assert cache.lookup("h", "def f(x):\n    rex") is None
    assert cache.lookup("other-header", "def f(x):\n    re") is None
    cache.put(cache.key("h", "a"), _CacheEntry("1", "1"))
    cache.put(cache.key("h", "b"), _CacheEntry("2", "2"))
    assert len(cache) == 2
    assert cache.lookup("h", "def f(x):\n    re") is None  # evicted (least recently used)
