"""Chat on the real SmolLM2 through real llama.cpp: streaming, cancel, stops, KV reuse, overflow."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanlin.engine.chat.stream import ChatMessage, ChatSession, StreamEvent, stream_chat
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import GenerationError
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model

pytestmark = pytest.mark.slow

#: One thread: the test machine's cores are shared, and llama.cpp's threads spin-wait on each
#: other, so two threads on a busy 2-core machine run far slower than one.
THREADS = 1
GREEDY = Sampling(temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0, max_tokens=48)


@pytest.fixture(scope="module")
def model(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedModel]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HANLIN_HOME", str(tmp_path_factory.mktemp("chat_home")))
        loaded = load_model(smollm2_path, options=LoadOptions(n_ctx=2048, threads=THREADS))
    yield loaded
    loaded.close()


def ask(text: str, system: str | None = "You are a helpful assistant.") -> list[ChatMessage]:
    head = [ChatMessage("system", system)] if system else []
    return [*head, ChatMessage("user", text)]


def test_stream_chat_streams_the_answer(model: LoadedModel) -> None:
    events: list[StreamEvent] = []
    reply = stream_chat(
        model, ask("What is the capital of France?"), sampling=GREEDY, on_event=events.append
    )
    assert reply.content
    assert len(events) > 3 and all(e.kind == "answer" for e in events)
    assert "".join(e.text for e in events).strip() == reply.content
    assert reply.thinking is None
    st = reply.stats
    assert st.prompt_tokens > 10 and 0 < st.generated_tokens <= 48
    assert st.ttft_s > 0 and st.total_s >= st.ttft_s and st.tokens_per_s > 0
    assert st.stop_reason in ("stop", "length")
    assert "<|im_end|>" not in reply.content and "<|im_start|>" not in reply.content


def test_max_tokens_stops_with_length(model: LoadedModel) -> None:
    reply = stream_chat(
        model, ask("Write a long story about a dragon."), sampling=GREEDY, max_tokens=5
    )
    assert reply.stats.generated_tokens == 5 and reply.stats.stop_reason == "length"


def test_greedy_is_deterministic_and_the_repeat_reuses_the_cache(model: LoadedModel) -> None:
    first = stream_chat(model, ask("Name three colors."), sampling=GREEDY)
    model.session.reset()
    second = stream_chat(model, ask("Name three colors."), sampling=GREEDY)
    assert second.stats.cached_tokens == 0
    third = stream_chat(model, ask("Name three colors."), sampling=GREEDY)
    assert first.content == second.content == third.content
    # Same prompt again: everything but the last prompt token comes from the KV cache.
    assert third.stats.cached_tokens == third.stats.prompt_tokens - 1
    assert third.stats.evaluated_tokens == 1


def test_cancel_mid_stream_returns_the_partial_reply(model: LoadedModel) -> None:
    cancel = CancelToken()
    events: list[StreamEvent] = []

    def on_event(event: StreamEvent) -> None:
        events.append(event)
        if len(events) == 3:
            cancel.cancel("user pressed stop")

    reply = stream_chat(
        model,
        ask("Write a long story about a dragon."),
        sampling=GREEDY,
        max_tokens=200,
        cancel=cancel,
        on_event=on_event,
    )
    assert reply.stats.stop_reason == "cancelled"
    assert len(events) == 3 and reply.content == "".join(e.text for e in events).strip()
    assert reply.stats.generated_tokens < 10
    # The model is still usable, and the conversation prefix is still cached.
    after = stream_chat(
        model, ask("Write a long story about a dragon."), sampling=GREEDY, max_tokens=4
    )
    assert after.stats.stop_reason == "length"
    assert after.stats.cached_tokens == after.stats.prompt_tokens - 1


def test_cancel_before_start(model: LoadedModel) -> None:
    cancel = CancelToken()
    cancel.cancel()
    reply = stream_chat(model, ask("Hello"), sampling=GREEDY, cancel=cancel)
    assert reply.stats.stop_reason == "cancelled" and reply.content == ""
    assert reply.stats.generated_tokens == 0


def test_stop_strings_cut_the_answer(model: LoadedModel) -> None:
    full = stream_chat(model, ask("Name three colors."), sampling=GREEDY).content
    words = full.split()
    assert len(words) >= 3
    stop_word = words[2]
    cut = stream_chat(model, ask("Name three colors."), sampling=GREEDY, stop=[stop_word])
    assert cut.stats.stop_reason == "stop"
    assert stop_word not in cut.content
    assert full.startswith(cut.content)
    assert cut.stats.generated_tokens < len(words) + 20


def test_multi_turn_evaluates_only_the_new_suffix(model: LoadedModel) -> None:
    model.session.reset()
    chat = ChatSession(model, system="You are a helpful assistant.", sampling=GREEDY, max_tokens=24)
    questions = ["Hi!", "What is 2+2?", "Name a fruit.", "Name a city.", "Thanks, bye."]
    previous = None
    for question in questions:
        reply = chat.send(question)
        st = reply.stats
        assert reply.content or st.generated_tokens
        if previous is None:
            assert st.cached_tokens == 0 and st.evaluated_tokens == st.prompt_tokens
        else:
            # The whole previous prompt came from the KV cache ...
            assert st.cached_tokens >= previous.prompt_tokens
            # ... so only the previous reply's tail and the new user turn were evaluated.
            assert st.evaluated_tokens <= st.prompt_tokens - previous.prompt_tokens
            assert st.evaluated_tokens < 40
        assert st.dropped_messages == 0
        previous = st
    assert len(chat.history) == 2 * len(questions)
    assert [m.role for m in chat.messages()][:2] == ["system", "user"]


def test_context_overflow_drops_oldest_turns_and_keeps_the_system_prompt(
    smollm2_path: Path,
) -> None:
    system = "You are a pirate. Always answer like a pirate."
    with load_model(smollm2_path, options=LoadOptions(n_ctx=256, threads=THREADS)) as small:
        chat = ChatSession(small, system=system, sampling=GREEDY, max_tokens=16)
        dropped_total = 0
        for i in range(8):
            reply = chat.send(
                f"Question number {i}: tell me something about the sea and ships, "
                "the wind, the waves and the stars that guide sailors at night."
            )
            assert reply.stats.stop_reason in ("stop", "length")
            assert reply.stats.prompt_tokens + reply.stats.generated_tokens <= 256
            dropped_total += reply.stats.dropped_messages
        assert dropped_total > 0 and chat.window_start == dropped_total
        sent = chat.messages()
        assert sent[0] == ChatMessage("system", system)
        assert sent[1].role == "user"  # whole turns are dropped
        assert "Question number 7" in sent[-2].content
        assert len(chat.history) == 16  # the transcript keeps everything


def test_callers_passing_the_whole_history_keep_a_stable_window(smollm2_path: Path) -> None:
    """Like the desktop app: the full history each turn; after a drop the prefix is reused."""
    with load_model(smollm2_path, options=LoadOptions(n_ctx=256, threads=THREADS)) as small:
        history: list[ChatMessage] = [ChatMessage("system", "You are terse.")]
        stats = []
        for i in range(9):
            history.append(ChatMessage("user", f"Fact {i} about the ocean, please, in a sentence."))
            reply = stream_chat(small, history, sampling=GREEDY, max_tokens=16)
            history.append(ChatMessage("assistant", reply.content))
            stats.append(reply.stats)
        drops = [st.dropped_messages for st in stats]
        assert drops[0] == 0 and max(drops) > 0
        # Once turns were dropped, later turns start from the same (or a later) message ...
        assert drops == sorted(drops)
        # ... and a turn that did not have to drop more re-used the cached prefix.
        steady = [
            st
            for prev, st in itertools.pairwise(stats)
            if st.dropped_messages and st.dropped_messages == prev.dropped_messages
        ]
        assert steady and all(st.cached_tokens > st.prompt_tokens // 2 for st in steady)


def test_message_longer_than_the_context_is_a_clear_error(smollm2_path: Path) -> None:
    with load_model(smollm2_path, options=LoadOptions(n_ctx=128, threads=THREADS)) as small:
        with pytest.raises(GenerationError, match=f"too long.*context window is {small.n_ctx}"):
            stream_chat(small, ask("word " * 400), sampling=GREEDY)
        # still usable afterwards
        assert stream_chat(small, ask("Hi"), sampling=GREEDY, max_tokens=3).stats.generated_tokens


def test_default_sampling_is_random_but_valid(model: LoadedModel) -> None:
    reply = stream_chat(model, ask("Say hello."), max_tokens=8)
    assert reply.stats.generated_tokens > 0 and reply.stats.stop_reason in ("stop", "length")
