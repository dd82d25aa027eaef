"""Reuse cached KV chunks that moved: what llama-server's `--cache-reuse N` does.

Why: a completion prompt changes in the middle, not only at the end. When a
context-ring chunk is evicted, or the prefix window's first line moves down, or a
line above the cursor is deleted, every token after that point moves to an earlier
position; plain prefix reuse would evaluate all of them again (thousands of tokens
on a real file). Their keys and values are still in the KV cache: llama.cpp can drop
the removed cells (`llama_memory_seq_rm`) and move the following ones to their new
positions (`llama_memory_seq_add`, which re-rotates the cached keys), as
`tools/server/server-context.cpp` does.

The algorithm is llama-server's: after the common prefix, walk the cached tokens; a
run of at least `min_chunk` tokens that equals the prompt at the current position is
shifted into place, anything else in the cache is skipped (and removed at the end).
llama.cpp requires each sequence's positions to stay consecutive (a new token may only
go after the last cached position), so text *inserted* mid-prompt cannot be filled in
behind shifted chunks: only what follows the common run is kept, the rest is evaluated
after it — the same limit llama-server has. The shifted cells carry keys computed with
the old text before them, which is the approximation `--cache-reuse` accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp

__all__ = ["DEFAULT_MIN_CHUNK", "ShiftPlan", "apply_shift", "plan_shift"]

#: the shortest run of cached tokens worth shifting (llama.vscode runs `--cache-reuse 256`)
DEFAULT_MIN_CHUNK = 256


@dataclass(frozen=True, slots=True)
class ShiftPlan:
    """How the cache becomes a prefix of the new prompt.

    `prefix`: tokens kept in place; `moves`: (cache start, prompt start, length) runs to
    shift; `kept`: the prompt tokens the cache holds afterwards (prefix + moved runs).
    """

    prefix: int
    moves: tuple[tuple[int, int, int], ...]
    kept: int

    @property
    def shifted(self) -> int:
        return sum(n for _, _, n in self.moves)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_shift(cached: Sequence[int], prompt: Sequence[int], min_chunk: int) -> ShiftPlan:
    """The reuse plan for `prompt` given the `cached` tokens (nothing is changed here)."""
    prefix = _common_prefix(cached, prompt)
    if min_chunk <= 0 or prefix >= len(prompt):
        return ShiftPlan(prefix, (), prefix)
    head_c, head_p = prefix, prefix
    moves: list[tuple[int, int, int]] = []
    while head_c < len(cached) and head_p < len(prompt):
        n = 0
        while (
            head_c + n < len(cached)
            and head_p + n < len(prompt)
            and cached[head_c + n] == prompt[head_p + n]
        ):
            n += 1
        if n >= min_chunk:
            moves.append((head_c, head_p, n))
            head_c += n
            head_p += n
        else:
            head_c += 1
    return ShiftPlan(prefix, tuple(moves), head_p)


def apply_shift(session: object, prompt: Sequence[int], min_chunk: int) -> ShiftPlan:
    """Bring `session`'s KV cache to the longest reusable start of `prompt`.

    `session` is a runtime `LlamaSession` (its `tokens`, `ctx`, `truncate`). Afterwards
    `session.tokens == prompt[:plan.kept]`. Falls back to prefix reuse when the memory
    cannot shift (recurrent models, or a context without position shifts).
    """
    cached: list[int] = session.tokens  # type: ignore[attr-defined]
    plan = plan_shift(cached, prompt, min_chunk)
    if not plan.moves:
        session.truncate(plan.prefix)  # type: ignore[attr-defined]
        return ShiftPlan(plan.prefix, (), min(plan.prefix, len(session.tokens)))  # type: ignore[attr-defined]
    mem = llama_cpp.llama_get_memory(session.ctx)  # type: ignore[attr-defined]
    if not llama_cpp.llama_memory_can_shift(mem):
        kept = session.truncate(plan.prefix)  # type: ignore[attr-defined]
        return ShiftPlan(kept, (), kept)
    for head_c, head_p, n in plan.moves:
        # cells between the last kept position and this run are stale: drop them, then move
        # the run down so that it starts right after what is kept (positions are current)
        if not llama_cpp.llama_memory_seq_rm(mem, 0, head_p, head_c):
            session.reset()  # type: ignore[attr-defined]
            return ShiftPlan(0, (), 0)
        llama_cpp.llama_memory_seq_add(mem, 0, head_c, head_c + n, head_p - head_c)
    new_tokens = list(prompt[: plan.kept])
    llama_cpp.llama_memory_seq_rm(mem, 0, plan.kept, -1)
    session.tokens = new_tokens  # type: ignore[attr-defined]
    return plan
