"""The overflow window on the real SmolLM2: it belongs to one conversation, never another.

Callers such as the desktop app pass the whole history every turn; once a conversation
outgrew the context, the engine remembers where its window starts so later turns stay
prefix-stable. These tests run two conversations through the same loaded model (a
256-token context) and check that one's window never cuts turns from the other, and that
switching back continues the first one's window where it was; and that the reply says
what it left out and how full the context is, in the words both front ends use, with a
larger context offered only where the fit verdict allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.chat.stream import ChatMessage, ChatSession, stream_chat
from hanlin.engine.chat.window import context_meter, overflow_notice, suggest_larger_context
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.runtime.hardware import HardwareInfo
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


# ---------------------------------------------------------------- saying so


def test_the_reply_reports_what_was_left_out_and_how_full_the_context_is(
    small: LoadedModel,
) -> None:
    """The stats both front ends show: messages dropped, the context and how much is used."""
    a, start = _overflow(small)
    reply = stream_chat(small, a[:-1], sampling=GREEDY, max_tokens=16)
    st = reply.stats
    assert st.dropped_messages >= start > 0
    assert st.n_ctx == small.n_ctx == 256
    assert st.context_used == st.prompt_tokens + st.generated_tokens <= st.n_ctx
    # the multi-turn session (the terminal chat) counts what it no longer sends
    session = ChatSession(small, system=SYSTEM.content, sampling=GREEDY, max_tokens=16)
    while not session.window_start:
        last = session.send("Another fact about the ocean, please, in a sentence.")
        assert last.stats.n_ctx == 256 and last.stats.context_used <= 256
        assert len(session.history) < 40, "the session never outgrew the context"
    assert session.window_start % 2 == 0  # whole turns: the window starts with a user message


def test_overflow_wording_is_one_sentence_for_both_front_ends() -> None:
    assert overflow_notice(4, 256) == (
        "The conversation no longer fits the model's 256-token context: "
        "the 4 oldest messages are not seen by the model."
    )
    assert "the oldest message is not seen" in overflow_notice(1, 8192)
    assert "8,192-token" in overflow_notice(1, 8192)
    assert context_meter(1234, 8192) == "1,234 / 8,192 tokens"


def _hardware(ram_gib: float) -> HardwareInfo:
    gib = 1024**3
    return HardwareInfo(
        cpu_name="test CPU",
        physical_cores=2,
        logical_cores=2,
        ram_total=int(ram_gib * gib),
        ram_available=int(ram_gib * gib * 0.8),
        backend="cpu",
        gpu_offload_supported=False,
        gpu_name=None,
        vram_total=None,
        vram_free=None,
        build_info="",
    )


def test_a_larger_context_is_offered_only_where_the_fit_verdict_allows(smollm2_path: Path) -> None:
    roomy = suggest_larger_context(smollm2_path, 256, _hardware(16))
    assert roomy is not None and roomy.n_ctx == 512
    assert roomy.verdict.level == "fits" and not roomy.tight
    assert "KV cache at 512 tokens" in roomy.verdict.reason
    # capped at what the model was trained for (SmolLM2: 8192), and nothing past it
    capped = suggest_larger_context(smollm2_path, 6144, _hardware(16))
    assert capped is not None and capped.n_ctx == 8192
    assert suggest_larger_context(smollm2_path, 8192, _hardware(16)) is None
    # a machine without the memory for it gets no offer
    assert suggest_larger_context(smollm2_path, 256, _hardware(0.25)) is None
