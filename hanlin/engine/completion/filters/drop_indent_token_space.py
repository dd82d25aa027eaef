"""Drop the one space a word token brings along when the cursor sits after indentation.

BPE vocabularies spell most words with their leading space (`" return"`). When
the text left of the cursor is nothing but indentation, the prompt ends in
that indentation and the model often continues with such a token, so an
accepted block's first line got one space too many (`"    " + " return x"`).
The editor already shows the indentation: a single space in front of the
first line's first word is the token's, not the user's, and is cut. Deeper
indentation the model asks for (two or more spaces, a tab) is kept.
"""

from __future__ import annotations

from hanlin.engine.completion.filters.base import FilterContext, current_line_before

__all__ = ["drop_indent_token_space"]


def drop_indent_token_space(text: str, ctx: FilterContext) -> str:
    """Cut one leading space of the first line when the cursor's line is indentation only."""
    before = current_line_before(ctx.prefix)
    if not before or before.strip():
        return text
    if len(text) >= 2 and text[0] == " " and not text[1].isspace():
        return text[1:]
    return text
