"""Remove closing brackets and quotes the editor already put right of the cursor.

Editors auto-pair: typing `print(` shows `print(|)`. A completion `x)` would
then read `print(x))` once accepted. Tabby widens the replace range instead
(calculateReplaceRangeByBracketStack); cutting the duplicated closers from the
text itself also serves clients that get plain `textDocument/completion` items.
"""

from __future__ import annotations

from hanlin.engine.completion.filters.base import (
    CLOSERS,
    OPENERS,
    PAIR,
    QUOTES,
    FilterContext,
    text_right_of_cursor,
)

__all__ = ["drop_duplicate_closing"]


def _trailing_unmatched_closers(line: str) -> list[int]:
    """Indices of the closers at the end of `line` that close nothing opened in `line`."""
    stack: list[str] = []
    unmatched: set[int] = set()
    in_quote: str | None = None
    for i, ch in enumerate(line):
        if in_quote:
            if ch == in_quote:
                in_quote = None
        elif ch in QUOTES:
            in_quote = ch
        elif ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            if stack and stack[-1] == PAIR[ch]:
                stack.pop()
            else:
                unmatched.add(i)
    tail: list[int] = []
    j = len(line.rstrip()) - 1
    while j >= 0 and (line[j] in " \t" or j in unmatched):
        if j in unmatched:
            tail.append(j)
        j -= 1
    return tail[::-1]


def drop_duplicate_closing(text: str, ctx: FilterContext) -> str:
    """Cut the unmatched trailing closers that the text right of the cursor starts with.

    With `print(|)` on screen, `len(items))` becomes `len(items)`. An auto-paired
    closing quote is handled the same way.
    """
    right = "".join(text_right_of_cursor(ctx.suffix).split())
    if not right or right[0] not in CLOSERS + QUOTES:
        return text
    lines = text.split("\n")
    last = lines[-1]
    tail = _trailing_unmatched_closers(last)
    run = "".join(last[i] for i in tail)
    k = min(len(run), len(right))
    while k and run[len(run) - k :] != right[:k]:
        k -= 1
    if k:
        drop = set(tail[len(tail) - k :])
        lines[-1] = "".join(ch for i, ch in enumerate(last) if i not in drop).rstrip()
        return "\n".join(lines)
    body = last.rstrip()
    if right[0] in QUOTES and body.endswith(right[0]) and body.count(right[0]) % 2 == 1:
        lines[-1] = body[:-1]
        return "\n".join(lines)
    return text
