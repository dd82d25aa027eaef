"""Cut a completion where the model starts looping over the line(s) just written.

Small models under greedy decoding fall into loops (`y = 2` four times, two
`Println` calls over and over). Tabby's removeRepetitiveLines counts near-equal
neighbours; here a repeat of a group of one to three lines — counting the
lines just above the cursor — ends the completion at the group's first copy.
The engine also runs this filter on the lines so far, to stop generating.
"""

from __future__ import annotations

from hanlin.engine.completion.filters.base import FilterContext

__all__ = ["remove_repetitive_lines"]


def _find_repetition(lines: list[str], history: list[str]) -> int | None:
    """Index of the first line that starts a repeat of the 1-3 lines just before it."""
    seq = history + lines
    base = len(history)
    for i in range(base, len(seq)):
        if not seq[i].strip():
            continue
        for period in (1, 2, 3):
            if i - period < 0 or i + period > len(seq):
                continue
            window = seq[i : i + period]
            if window == seq[i - period : i] and any(s.strip() for s in window):
                # Only count it when the repeated group lies (at least partly) in the completion.
                return max(i, base)
    return None


def remove_repetitive_lines(text: str, ctx: FilterContext) -> str:
    """Keep the text before the first repeated line group ("" if it starts with one)."""
    lines = text.split("\n")
    prefix_lines = ctx.prefix.split("\n")
    # The cursor line joins the first completion line; only complete prefix lines count as history.
    history = prefix_lines[-4:-1] if len(prefix_lines) > 1 else []
    first = prefix_lines[-1] + lines[0]
    idx = _find_repetition([first, *lines[1:]], history)
    if idx is None:
        return text
    cut = idx - len(history)
    if cut <= 0:
        return ""
    return "\n".join(lines[:cut])
