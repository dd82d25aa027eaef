"""Strip trailing spaces and blank lines: ghost text that ends in whitespace misleads.

(Tabby's trimSpace.) A completion of nothing but whitespace is dropped: there
is nothing to show.
"""

from __future__ import annotations

from hanlin.engine.completion.filters.base import FilterContext

__all__ = ["trim_trailing_whitespace"]


def trim_trailing_whitespace(text: str, ctx: FilterContext) -> str:
    """Strip trailing spaces on every line and trailing blank lines; whitespace-only becomes ""."""
    lines = [line.rstrip() for line in text.split("\n")]
    out = "\n".join(lines).rstrip("\n")
    return out if out.strip() else ""
