"""Keep one line where the context does not call for more (Tabby's trimMultiLineInSingleLineMode).

With text right of the cursor, or a statement half written left of it, the
user is finishing one line: a block of ghost text there would be noise.
`wants_multiline` (filters/base.py) holds the rule, shared with the engine,
which stops generating at the first newline in the same cases. A completion the
user is typing through (`FilterContext.continues_block`) keeps all its lines: the
characters typed into its first line do not make its block any less wanted.
"""

from __future__ import annotations

from hanlin.engine.completion.filters.base import FilterContext, wants_multiline

__all__ = ["single_line_if_text_right"]


def single_line_if_text_right(text: str, ctx: FilterContext) -> str:
    """Keep only the first line when multi-line is off or the context does not call for it."""
    if ctx.multiline and (ctx.continues_block or wants_multiline(ctx.prefix, ctx.suffix)):
        return text
    return text.split("\n", 1)[0]
