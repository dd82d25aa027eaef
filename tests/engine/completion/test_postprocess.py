"""The filter registry and pipeline, and the rules the golden fixtures cannot state as cases.

Per-filter cases in Python, TypeScript, Rust, Go and HTML/Markdown are data under
fixtures/ (test_filter_fixtures.py runs them).
"""

from __future__ import annotations

import importlib

import pytest

from hanlin.engine.completion.filters import (
    DEFAULT_FILTERS,
    FILTERS,
    FilterContext,
    postprocess,
    register_filter,
    wants_multiline,
)


def test_registry_holds_every_default_filter_each_in_its_own_module() -> None:
    assert set(DEFAULT_FILTERS) <= set(FILTERS)
    assert len(DEFAULT_FILTERS) == 8
    for name in DEFAULT_FILTERS:
        assert FILTERS[name].__module__ == f"hanlin.engine.completion.filters.{name}"
    with pytest.raises(KeyError, match="unknown post-processing filter"):
        postprocess("x", FilterContext(prefix=""), names=["no_such_filter"])


def test_the_package_surface_exports_the_pipeline() -> None:
    completion = importlib.import_module("hanlin.engine.completion")
    assert completion.postprocess is postprocess
    assert completion.FilterContext is FilterContext


def test_a_registered_filter_runs_in_order_and_a_dropped_completion_stops_the_chain() -> None:
    calls: list[str] = []

    @register_filter("test_upper_then_log")
    def upper(text: str, ctx: FilterContext) -> str:
        calls.append(text)
        return text.upper()

    try:
        ctx = FilterContext(prefix="name = ", suffix="\n")
        assert postprocess("'ada'  ", ctx, ["trim_trailing_whitespace", "test_upper_then_log"]) == (
            "'ADA'"
        )
        assert calls == ["'ada'"]
        # whitespace only: dropped by the first filter, the second never runs
        assert postprocess("   ", ctx, ["trim_trailing_whitespace", "test_upper_then_log"]) == ""
        assert calls == ["'ada'"]
    finally:
        del FILTERS["test_upper_then_log"]


# ----------------------------------------------------------------- strip_special_tokens


def strip(text: str, *special: str) -> str:
    return FILTERS["strip_special_tokens"](text, FilterContext(prefix="", special_texts=special))


def test_strip_special_tokens_cuts_only_at_the_given_vocabulary_texts() -> None:
    assert strip("a = 1[CUSTOM_END]b", "[CUSTOM_END]") == "a = 1"
    # no vocabulary texts, nothing special: not even texts that look like markers
    code = "x = '<|endoftext|>' if eos else '</s>'"
    assert strip(code) == code


def test_strip_special_tokens_cuts_at_the_earliest_of_several() -> None:
    text = "return total<|im_end|>\n<|endoftext|>"
    assert strip(text, "<|endoftext|>", "<|im_end|>") == "return total"


def test_a_blank_special_text_never_cuts_a_completion_to_nothing() -> None:
    assert strip("let x = 1;", "", " ", "\n") == "let x = 1;"


# ----------------------------------------------------------------- wants_multiline


@pytest.mark.parametrize(
    ("prefix", "suffix", "expected"),
    [
        ("def total(items):\n    ", "\n", True),  # a fresh line: a block may follow
        ("def total(items):", "\n", True),  # after a block opener
        ("if (ready) {", "\n}", True),
        ("    return [it", "\n", False),  # finishing a statement: one line
        ("    value = compute(", ")\n", True),  # an open call with only its closer right
        ("    x = ", " + 1\n", False),  # real text right of the cursor
        ("\tfmt.Println(", '")\n', True),
        ("fn main() {\n    let v = vec![", "];\n}\n", True),
        ("<ul>\n  ", "\n</ul>\n", True),
        ('<a href="', '">Docs</a>\n', False),
    ],
)
def test_wants_multiline_only_where_the_context_calls_for_it(
    prefix: str, suffix: str, expected: bool
) -> None:
    assert wants_multiline(prefix, suffix) is expected


def test_a_block_typed_through_keeps_its_lines() -> None:
    """Typed into its first line, a shown block stays a block; a fresh one-line context
    still gets one line."""
    text = "ck = self.stock.pop(sku)\n        return stock"
    prefix = "class Shelf:\n    def remove(self, sku):\n        sto"
    one_line = FilterContext(prefix=prefix, suffix="\n", multiline=False)
    assert postprocess(text, one_line) == "ck = self.stock.pop(sku)"
    through = FilterContext(prefix=prefix, suffix="\n", multiline=True, continues_block=True)
    assert postprocess(text, through) == text


def test_a_finished_line_gets_the_line_after_it() -> None:
    """At the end of a finished line the model's newline is not the whole answer: with
    `next_line` the one line kept is the next one; without it, nothing (as before)."""
    prefix = "class Shelf:\n    def remove(self, sku):\n        stock = self.stock.pop(sku)"
    text = "\n        return stock\n\n    def add(self, sku):"
    plain = FilterContext(prefix=prefix, suffix="\n", multiline=False)
    assert postprocess(text, plain) == ""
    chained = FilterContext(prefix=prefix, suffix="\n", multiline=False, next_line=True)
    assert postprocess(text, chained) == "\n        return stock"
    # a next line that leaves the block, or repeats the line already below, is dropped
    assert postprocess("\nprint(stock)", chained) == ""
    below = FilterContext(
        prefix=prefix, suffix="\n        return stock\n", multiline=False, next_line=True
    )
    assert postprocess(text, below) == ""
