"""The overflow window: which part of a long conversation is sent to the model.

When a conversation outgrows the context, the oldest turns are left out (never the
system prompt), whole turns at a time, until a quarter of the context is free again so
the next turns fit without dropping (and re-evaluating) once more.

Callers such as the desktop app pass the whole history every turn. To keep their
prompts prefix-stable (the KV cache then serves everything but the new turn), the
window must start where it started last time instead of being fitted anew from the
first turn. That memory lives on the loaded model (`LoadedModel.chat_window`), which
every conversation shares, so each remembered start is tied to the conversation it was
computed for: it carries a digest of the whole message list of that call, and is used
again only by a call whose messages *continue* that list (the same messages first, in
order: the same conversation a turn later, or the same turn regenerated). Another
conversation, even one with the same message at the same index or the same first turns,
never matches; an edited conversation is fitted anew. A few such windows are kept
(`MAX_WINDOWS`), so switching between long conversations keeps each one's window.

Never silently: the reply's statistics say how many messages were left out and how much
of the context the conversation fills (`GenerationStats.dropped_messages`, `n_ctx`,
`context_used`), both front ends word it with `overflow_notice` and `context_meter`, and
`suggest_larger_context` proposes a context length that the fit verdict says this machine
can hold (engine/models/fit.py), capped at what the model was trained for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hanlin.engine.core.errors import GenerationError

if TYPE_CHECKING:
    from pathlib import Path

    from hanlin.engine.models.fit import FitVerdict
    from hanlin.engine.runtime.hardware import HardwareInfo

__all__ = [
    "MAX_WINDOWS",
    "ContextSuggestion",
    "Window",
    "WindowHint",
    "context_meter",
    "fit_history",
    "overflow_notice",
    "suggest_larger_context",
]

#: when old turns must go, free this share of the context as well, so that the next
#: turns fit without dropping (and re-evaluating the whole prompt) again
DROP_HEADROOM = 0.25
#: remembered windows per loaded model (one per recently used long conversation)
MAX_WINDOWS = 8

#: (index of the window's first message among the non-system ones,
#:  number of non-system messages the digest covers, digest of those messages)
WindowHint = tuple[int, int, bytes]


class _Message(Protocol):
    role: str
    content: str


class _Prompter(Protocol):
    def prompt(self, messages: Sequence[_Message]) -> tuple[list[int], str]: ...


@dataclass(frozen=True)
class Window:
    tokens: list[int]
    #: the rendered prompt
    text: str
    #: oldest non-system messages left out
    dropped: int
    #: what the model should remember for the next call (newest first)
    hints: tuple[WindowHint, ...]


def _prefix_digests(messages: Sequence[_Message], lengths: set[int]) -> dict[int, bytes]:
    """sha256 of messages[:n] for each n in `lengths` (one pass)."""
    h = hashlib.sha256()
    out: dict[int, bytes] = {}
    if 0 in lengths:
        out[0] = h.digest()
    for i, m in enumerate(messages, start=1):
        content = m.content.encode("utf-8", "surrogatepass")
        h.update(f"{m.role}\0{len(content)}\0".encode())
        h.update(content)
        if i in lengths:
            out[i] = h.copy().digest()
    return out


def fit_history(
    prompter: _Prompter,
    messages: Sequence[_Message],
    n_ctx: int,
    reserve: int,
    hints: Sequence[WindowHint] = (),
) -> Window:
    """Render, dropping the oldest non-system messages until prompt + reserve fits n_ctx.

    Keeps the system message(s) and always the last message; drops whole turns so the
    window starts with a user message. `hints` are the windows remembered from earlier
    calls; one whose conversation this call continues says where to start.
    """
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    if not rest:
        raise GenerationError("There is no message to answer")

    digests = _prefix_digests(rest, {n for _, n, _ in hints if n <= len(rest)} | {len(rest)})
    mine = [h for h in hints if digests.get(h[1]) == h[2]]
    others = tuple(h for h in hints if h not in mine)
    start = 0
    if mine:
        index = max(mine, key=lambda h: h[1])[0]  # the latest state of this conversation
        if 0 < index < len(rest):
            start = index

    def remember(dropped: int) -> tuple[WindowHint, ...]:
        if not dropped:
            return others
        return ((dropped, len(rest), digests[len(rest)]), *others)[:MAX_WINDOWS]

    def render(k: int) -> tuple[list[int], str]:
        return prompter.prompt(system + rest[k:])

    tokens, text = render(start)
    if len(tokens) + reserve <= n_ctx:
        return Window(tokens, text, start, remember(start))

    target = n_ctx - int(n_ctx * DROP_HEADROOM)
    first_fit: tuple[list[int], str, int] | None = None
    dropped = start
    while dropped < len(rest) - 1:
        dropped += 1
        while dropped < len(rest) - 1 and rest[dropped].role != "user":
            dropped += 1
        tokens, text = render(dropped)
        if len(tokens) + reserve <= n_ctx and first_fit is None:
            first_fit = (tokens, text, dropped)
        if len(tokens) + reserve <= target:
            return Window(tokens, text, dropped, remember(dropped))
    if first_fit is not None:
        tokens, text, dropped = first_fit
        return Window(tokens, text, dropped, remember(dropped))
    if len(tokens) < n_ctx:  # fits, with less room to answer than asked for
        return Window(tokens, text, dropped, remember(dropped))
    raise GenerationError(
        f"The message is too long: {len(tokens)} tokens with the system prompt, "
        f"but the context window is {n_ctx} tokens",
        "shorten it, or load the model with a larger context (`--ctx`, or n_ctx in settings)",
    )


# ---------------------------------------------------------------- saying so


def overflow_notice(dropped: int, n_ctx: int) -> str:
    """One sentence for "the oldest messages are no longer sent to the model"."""
    what = "message is" if dropped == 1 else "messages are"
    size = f"{n_ctx:,}-token " if n_ctx else ""
    return (
        f"The conversation no longer fits the model's {size}context: "
        f"the {'oldest' if dropped == 1 else f'{dropped:,} oldest'} {what} not seen by the model."
    )


def context_meter(used: int, n_ctx: int) -> str:
    """`N / M tokens`: how much of the context the conversation fills."""
    return f"{used:,} / {n_ctx:,} tokens"


@dataclass(frozen=True)
class ContextSuggestion:
    """A larger context the model can be loaded with on this machine."""

    n_ctx: int
    verdict: FitVerdict

    @property
    def tight(self) -> bool:
        return self.verdict.level == "tight"


def suggest_larger_context(
    path: Path, current: int, hw: HardwareInfo | None = None
) -> ContextSuggestion | None:
    """Twice the context (at most what the model was trained for), if it fits this machine.

    None when the model cannot go larger, or when the fit verdict (weights + KV cache at
    the larger context against free memory) says it would not fit. Reads the GGUF header
    and, without `hw`, detects the hardware: call it off the GUI thread.
    """
    from hanlin.engine.models.fit import fit_for_file
    from hanlin.engine.models.gguf_info import read_gguf_info

    info = read_gguf_info(path)
    trained = info.context_length or 0
    target = min(trained, current * 2) if trained else current * 2
    if target <= current:
        return None
    if hw is None:
        from hanlin.engine.runtime.hardware import detect_hardware

        hw = detect_hardware(refresh=True)
    verdict = fit_for_file(info, path.stat().st_size, hw, target)
    if verdict.level == "wont_fit":
        return None
    return ContextSuggestion(target, verdict)
