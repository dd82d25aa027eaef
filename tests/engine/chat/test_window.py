"""The overflow window on the real SmolLM2: it belongs to one conversation, never another.

Callers such as the desktop app pass the whole history every turn; once a conversation
outgrew the context, the engine remembers where its window starts so later turns stay
prefix-stable. These tests run two conversations through the same loaded model (a
256-token context) and check that one's window never cuts turns from the other, and that
switching back continues the first one's window where it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.chat.stream import ChatMessage, stream_chat
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model

pytestmark = pytest.mark.slow

GREEDY = Sampling(temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0)
SYSTEM = ChatMessage("system", "You are terse.")


@pytest.fixture
def small(smollm2_path: Path) -> Iterator[LoadedModel]:
    with load_model(smollm2_path, options=LoadOptions(n_ctx=256, threads=1)) as loaded:
        yield loaded


def _overflow(model: LoadedModel) -> tuple[list[ChatMessage], int]:
    """Conversation A, grown turn by turn until it drops turns; returns it and its window start."""
    history = [SYSTEM]
    for i in range(12):
        history.append(ChatMessage("user", f"Fact {i} about the ocean, please, in a sentence."))
        reply = stream_chat(model, history, sampling=GREEDY, max_tokens=16)
        history.append(ChatMessage("assistant", reply.content))
        if reply.stats.dropped_messages:
            return history, reply.stats.dropped_messages
    raise AssertionError("conversation A never outgrew the context")


def test_another_conversation_that_fits_keeps_all_its_turns(small: LoadedModel) -> None:
    a, start = _overflow(small)
    rest_a = [m for m in a if m.role != "system"]
    window_head = rest_a[start]
    assert window_head.role == "user"
    # Conversation B is short, and has A's window-start message at the same index.
    rest_b: list[ChatMessage] = []
    while len(rest_b) < start:
        rest_b += [ChatMessage("user", "yes"), ChatMessage("assistant", "ok")]
    rest_b = [*rest_b[:start], window_head]
    reply = stream_chat(small, [SYSTEM, *rest_b], sampling=GREEDY, max_tokens=4)
    assert reply.stats.dropped_messages == 0  # B fits: none of its turns may go
    assert reply.stats.prompt_tokens + 4 <= small.n_ctx


def test_a_conversation_keeps_its_window_after_another_one_ran(small: LoadedModel) -> None:
    a, start = _overflow(small)
    other = [SYSTEM, ChatMessage("user", "yes")]
    assert stream_chat(small, other, sampling=GREEDY, max_tokens=4).stats.dropped_messages == 0
    # Back to A: it continues from the window it had, instead of fitting anew from turn 0.
    a.append(ChatMessage("user", "One more fact, please."))
    reply = stream_chat(small, a, sampling=GREEDY, max_tokens=16)
    assert reply.stats.dropped_messages == start
    # and the turn after that re-uses the KV cache of this window
    a += [ChatMessage("assistant", reply.content), ChatMessage("user", "Thanks.")]
    again = stream_chat(small, a, sampling=GREEDY, max_tokens=4)
    assert again.stats.dropped_messages >= start
    if again.stats.dropped_messages == start:
        assert again.stats.cached_tokens >= reply.stats.prompt_tokens


def test_an_edited_conversation_is_fitted_anew(small: LoadedModel) -> None:
    a, start = _overflow(small)
    # The same conversation, edited at its second user message: a different history now,
    # short enough to fit whole, so nothing may be dropped.
    edited = [SYSTEM, a[1], a[2], ChatMessage("user", "Short question?")]
    reply = stream_chat(small, edited, sampling=GREEDY, max_tokens=4)
    assert start > 0 and reply.stats.dropped_messages == 0
