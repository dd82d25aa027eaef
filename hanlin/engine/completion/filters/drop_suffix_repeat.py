"""Drop what the document already has right after the cursor.

llama.vscode discards a suggestion equal to the next lines; Tabby's
removeDuplicateSuffixLines trims completion lines that the document already
has after the cursor. A FIM model that has seen the suffix often writes it
again; accepting that would duplicate code.
"""

from __future__ import annotations

from hanlin.engine.completion.filters.base import FilterContext, text_right_of_cursor

__all__ = ["drop_suffix_repeat"]


def drop_suffix_repeat(text: str, ctx: FilterContext) -> str:
    """Drop a completion that is the text after the cursor; else cut where it rejoins it."""
    stripped = text.strip()
    if not stripped:
        return text
    after = ctx.suffix.lstrip()
    if after.startswith(stripped):
        return ""
    # The lines below the cursor line (the rest of the cursor line is handled further down).
    suffix_lines = [s.strip() for s in ctx.suffix.split("\n")[1:] if s.strip()]
    lines = text.split("\n")
    first_suffix = suffix_lines[0] if suffix_lines else None
    for k in range(1, len(lines)):
        line = lines[k].strip()
        if line and line == first_suffix and len(line) > 1:
            return "\n".join(lines[:k]).rstrip("\n")
    # Single line whose tail is exactly what is right of the cursor (e.g. `x):` before `):`).
    right = text_right_of_cursor(ctx.suffix).strip()
    if right and len(lines) == 1 and len(right) > 1 and text.rstrip().endswith(right):
        return text.rstrip()[: -len(right)]
    return text
