"""Keep one line where the context does not call for more (Tabby's trimMultiLineInSingleLineMode).

With text right of the cursor, or a statement half written left of it, the
user is finishing one line: a block of ghost text there would be noise.
`wants_multiline` (filters/base.py) holds the rule, shared with the engine,
which stops generating at the first newline in the same cases. A completion the
user is typing through (`FilterContext.continues_block`) keeps all its lines: the
characters typed into its first line do not make its block any less wanted.
At the end of a finished line (`FilterContext.next_line`: code left of the cursor,
nothing right of it, and the model's answer starts with a newline) the one line kept is
the line after it, so accepting a line chains into the next instead of showing nothing.
"""

from __future__ import annotations

from hanlin.engine.completion.filters.base import FilterContext, wants_multiline

__all__ = ["single_line_if_text_right"]


def single_line_if_text_right(text: str, ctx: FilterContext) -> str:
    """Keep only the first line when multi-line is off or the context does not call for it."""
    if ctx.multiline and (ctx.continues_block or wants_multiline(ctx.prefix, ctx.suffix)):
        return text
    head, newline, rest = text.partition("\n")
    if ctx.next_line and newline and not head.strip():
        # the model ended the cursor's finished line: one line is the line after it
        following = rest.split("\n", 1)[0]
        return "\n" + following if following.strip() else ""
    return text.split("\n", 1)[0]
