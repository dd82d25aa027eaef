"""Post-processing filters for raw completions: the registry and the pipeline.

A code model keeps writing past the point a user wants ghost text to end, and
sometimes repeats what is already on screen. Each rule is a small module of
its own in this package (after Tabby's agent, clients/tabby-agent/src/
codeCompletion/postprocess), registered here under a name so that the engine
(its `filters=` argument) and the tests can name it. A filter takes the
completion text and the context around the cursor (`FilterContext`) and returns
the text to keep ("" drops the completion). Filters never add text; they only cut.

The registry and `postprocess` live in this one module, and the old
engine/completion/postprocess.py is gone rather than kept as a thin pipeline
module: the pipeline is a loop over the registry, and two modules would give
one thing two import paths. This `__init__` defines the registry (it is not a
re-export), so the engine imports it directly; the filter modules import only
filters/base.py, never this package, so there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hanlin.engine.completion.filters.base import (
    Filter,
    FilterContext,
    text_right_of_cursor,
    wants_multiline,
)
from hanlin.engine.completion.filters.drop_duplicate_closing import drop_duplicate_closing
from hanlin.engine.completion.filters.drop_indent_token_space import drop_indent_token_space
from hanlin.engine.completion.filters.drop_suffix_repeat import drop_suffix_repeat
from hanlin.engine.completion.filters.limit_scope_by_indentation import (
    limit_scope_by_indentation,
)
from hanlin.engine.completion.filters.remove_repetitive_lines import remove_repetitive_lines
from hanlin.engine.completion.filters.single_line_if_text_right import single_line_if_text_right
from hanlin.engine.completion.filters.strip_special_tokens import strip_special_tokens
from hanlin.engine.completion.filters.trim_trailing_whitespace import trim_trailing_whitespace

__all__ = [
    "BLOCK_END_FILTERS",
    "DEFAULT_FILTERS",
    "FILTERS",
    "Filter",
    "FilterContext",
    "postprocess",
    "register_filter",
    "text_right_of_cursor",
    "wants_multiline",
]

#: every filter by name; `register_filter` adds more
FILTERS: dict[str, Filter] = {
    "strip_special_tokens": strip_special_tokens,
    "drop_indent_token_space": drop_indent_token_space,
    "single_line_if_text_right": single_line_if_text_right,
    "limit_scope_by_indentation": limit_scope_by_indentation,
    "remove_repetitive_lines": remove_repetitive_lines,
    "drop_suffix_repeat": drop_suffix_repeat,
    "drop_duplicate_closing": drop_duplicate_closing,
    "trim_trailing_whitespace": trim_trailing_whitespace,
}


def register_filter(name: str) -> Callable[[Filter], Filter]:
    """Decorator: add a filter to the registry under `name` (replacing one of that name)."""

    def deco(fn: Filter) -> Filter:
        FILTERS[name] = fn
        return fn

    return deco


#: the order the engine runs them in: cut at special tokens first (nothing after one is
#: the model's answer), then to the wanted lines and scope, then the duplicates of what is
#: on screen, and whitespace last (earlier cuts leave trailing blanks)
DEFAULT_FILTERS: tuple[str, ...] = (
    "strip_special_tokens",
    "drop_indent_token_space",
    "single_line_if_text_right",
    "limit_scope_by_indentation",
    "remove_repetitive_lines",
    "drop_suffix_repeat",
    "drop_duplicate_closing",
    "trim_trailing_whitespace",
)


#: the filters whose cut ends a multi-line answer while it is generated (the engine's
#: `_block_done`; the completion benchmark cuts its peer's answers with the same rule)
BLOCK_END_FILTERS: tuple[str, ...] = ("limit_scope_by_indentation", "remove_repetitive_lines")


def postprocess(text: str, ctx: FilterContext, names: Sequence[str] = DEFAULT_FILTERS) -> str:
    """Run the named filters in order; stop early once the completion is dropped."""
    for name in names:
        try:
            fn = FILTERS[name]
        except KeyError:
            raise KeyError(
                f"unknown post-processing filter {name!r}; known: {', '.join(FILTERS)}"
            ) from None
        text = fn(text, ctx)
        if not text:
            return ""
    return text
