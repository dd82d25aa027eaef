"""Chat with a loaded model: streaming, stop strings, KV reuse, the multi-turn session.

Why this is not `Llama.create_chat_completion`: Hanlin needs (1) decode speed
within a few percent of llama.cpp itself, so generation runs through the
low-level API in engine/runtime/session.py (sampler chain in C, no per-token
numpy); (2) follow-up turns that re-use the KV cache of the conversation, so
prompts are rendered prefix-stable and only the new suffix is evaluated; (3)
reasoning (`<think>…</think>`) streamed separately from the answer and never
fed back into history; (4) a cancel token checked between tokens that returns
the partial reply instead of raising; (5) history that overflows the context
window losing its oldest turns (never the system prompt) instead of failing.

The parts live next to this module: the prompt from the GGUF's own chat template,
rendered in a sandbox with a time limit and tokenized so that message text never
becomes a control token (template.py); the reasoning split (thinking.py); the
overflow window, remembered per conversation (window.py); and which sampling a
reply uses (sampling.py: the user's setting > the catalog entry > the family's
recommendation > defaults). Decoding drafts tokens where that pays (prompt lookup, and a
draft model when the user chose one: engine/runtime/speculative.py), which changes how fast
a reply comes, never what it says; the stats say how many drafted tokens were accepted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from hanlin.engine.chat.sampling import resolve_sampling
from hanlin.engine.chat.template import ChatPrompter
from hanlin.engine.chat.thinking import StreamEvent, ThinkSplitter, prompt_opens_thinking
from hanlin.engine.chat.window import fit_history
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import Cancelled, GenerationError
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.runtime.loader import LoadedModel
from hanlin.engine.runtime.session import PieceDecoder, StopMatcher, build_sampler
from hanlin.engine.runtime.speculative import speculator_for

if TYPE_CHECKING:
    from hanlin.engine.runtime.kv_state_store import KVStateStore

__all__ = [
    "ChatMessage",
    "ChatReply",
    "ChatSession",
    "GenerationStats",
    "StreamEvent",
    "stream_chat",
]

Role = Literal["system", "user", "assistant"]


@dataclass
class ChatMessage:
    role: Role
    content: str
    #: the model's reasoning for an assistant turn: for display only, never sent back
    thinking: str | None = None


@dataclass
class GenerationStats:
    #: tokens in the rendered prompt
    prompt_tokens: int = 0
    #: of those, tokens reused from the KV cache (not evaluated again)
    cached_tokens: int = 0
    #: tokens sampled (thinking + answer, without the end-of-turn token)
    generated_tokens: int = 0
    #: seconds from the call to the first sampled token (template + prompt evaluation + 1 sample)
    ttft_s: float = 0.0
    total_s: float = 0.0
    #: decode speed: tokens after the first / seconds after the first (comparable to llama-bench tg)
    tokens_per_s: float = 0.0
    stop_reason: str = "stop"  # "stop" | "length" | "cancelled"
    #: oldest history messages left out because the conversation no longer fit the context
    dropped_messages: int = 0
    #: the context window (tokens), and how much of it the conversation fills after this
    #: reply (prompt + generated): the window's meter, the CLI's overflow notice
    n_ctx: int = 0
    context_used: int = 0
    #: prompt evaluation alone (seconds) and its speed
    prompt_s: float = 0.0
    #: of `cached_tokens`, tokens whose KV state was read back from disk (a conversation
    #: reopened after a restart: engine/runtime/kv_state_store.py) and the seconds it took
    restored_tokens: int = 0
    restore_s: float = 0.0
    #: the sampling the reply used (temperature, top_p, top_k, min_p, repeat_penalty, max_tokens)
    sampling: dict[str, float] = field(default_factory=dict)
    #: speculative decoding (engine/runtime/speculative.py): what drafted ("prompt lookup",
    #: "draft model …"; None: off), tokens drafted, of those accepted, accepted / drafted
    #: (None: nothing was drafted), and the main model's llama_decode calls while generating
    speculative: str | None = None
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    acceptance_rate: float | None = None
    decode_calls: int = 0

    @property
    def evaluated_tokens(self) -> int:
        """Prompt tokens that ran through llama_decode this turn (the new suffix)."""
        return self.prompt_tokens - self.cached_tokens


@dataclass
class ChatReply:
    content: str
    thinking: str | None
    stats: GenerationStats


# ---------------------------------------------------------------- streaming


def stream_chat(
    model: LoadedModel,
    messages: list[ChatMessage],
    *,
    sampling: Sampling | None = None,
    thinking: bool = True,
    max_tokens: int | None = None,
    cancel: CancelToken | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
    stop: Sequence[str] = (),
    seed: int | None = None,
    speculative: bool | None = None,
    draft: LoadedModel | None = None,
    kv_store: KVStateStore | None = None,
) -> ChatReply:
    """Generate the assistant's next message, streaming it through `on_event`.

    `sampling` holds what the user and the catalog entry say (the user's `Sampling`
    `.over()` the entry's); the family's recommendation and defaults fill in the rest
    (engine/chat/sampling.py). `max_tokens` beats all of them. Thinking in `messages`
    is ignored. Cancelling returns the partial reply with stop_reason "cancelled".
    A broken or hostile chat template raises ChatTemplateError within a few seconds.
    `speculative` is the per-model setting (None: prompt-lookup drafting where it pays,
    False: off) and `draft` a loaded draft model (engine/runtime/draft_model.py); the reply
    is the same either way, only faster. `kv_store`: when the context holds little of this
    prompt, a saved state with a longer common prefix is loaded first (a conversation
    reopened after a restart), so only the rest is evaluated. Blocking: call it from a
    worker thread.
    """
    cancel = cancel or NEVER_CANCELLED
    started = time.perf_counter()
    behavior = model.behavior
    used = resolve_sampling(sampling, behavior, thinking)
    limit = max_tokens or used.max_tokens or 1
    clean = [ChatMessage(m.role, m.content) for m in messages]
    stats = GenerationStats(sampling={**used.given(), "max_tokens": limit})
    with model.lock:
        if model.closed:
            raise GenerationError("The model was closed", "load it again")
        session = model.session
        prompter = ChatPrompter(model, behavior, thinking)
        reserve = min(limit, max(16, model.n_ctx // 4))
        window = fit_history(prompter, clean, model.n_ctx, reserve, model.chat_window)
        model.chat_window = window.hints
        tokens = window.tokens
        stats.prompt_tokens = len(tokens)
        stats.dropped_messages = window.dropped
        stats.n_ctx = model.n_ctx
        stats.context_used = len(tokens)
        splitter = ThinkSplitter(in_thinking=prompt_opens_thinking(window.text))
        if kv_store is not None:
            restored = kv_store.restore(model, tokens)
            if restored is not None:
                stats.restored_tokens = restored.matched_tokens
                stats.restore_s = restored.seconds
        try:
            evaluated = session.evaluate(tokens, cancel=cancel)
        except Cancelled:
            stats.stop_reason = "cancelled"
            stats.total_s = time.perf_counter() - started
            return ChatReply("", None, stats)
        stats.cached_tokens = evaluated.cached_tokens
        stats.prompt_s = evaluated.seconds

        params = {k: v for k, v in used.given().items() if k != "max_tokens"}
        decoder = PieceDecoder()
        matcher = StopMatcher(tuple(behavior.stop_strings) + tuple(stop))
        emit = on_event or (lambda _e: None)
        n = 0
        t_first = t_last = 0.0
        speculator = speculator_for(model, enabled=speculative, draft=draft)
        calls_before = session.decode_calls
        with build_sampler(session.vocab, seed=seed, **params) as sampler:
            room = max(1, model.n_ctx - len(tokens))
            for token in session.generate(
                sampler, max_tokens=min(limit, room), cancel=cancel, speculator=speculator
            ):
                t_last = time.perf_counter()
                if n == 0:
                    t_first = t_last
                n += 1
                text, stopped = matcher.feed(decoder.feed(session.token_bytes(token)))
                for event in splitter.feed(text):
                    emit(event)
                if stopped:
                    break
            stop_reason = "stop" if matcher.stopped else session.last_stop_reason
            if cancel.cancelled:
                stop_reason = "cancelled"
        if not matcher.stopped:
            tail, _ = matcher.feed(decoder.flush())
            for event in splitter.feed(tail + matcher.flush()):
                emit(event)
        for event in splitter.finish():
            emit(event)
        stats.decode_calls = session.decode_calls - calls_before
        if speculator is not None:
            spec = speculator.last
            stats.speculative = speculator.label
            stats.drafted_tokens = spec.drafted
            stats.accepted_tokens = spec.accepted
            stats.acceptance_rate = spec.acceptance_rate

    stats.generated_tokens = n
    stats.context_used = stats.prompt_tokens + n
    stats.ttft_s = (t_first - started) if n else 0.0
    stats.total_s = time.perf_counter() - started
    stats.tokens_per_s = (n - 1) / (t_last - t_first) if n > 1 and t_last > t_first else 0.0
    stats.stop_reason = stop_reason
    return ChatReply(splitter.answer, splitter.thinking, stats)


# ---------------------------------------------------------------- multi-turn


@dataclass
class ChatSession:
    """A conversation with one model: history, thinking switch, overflow handling.

    `history` is the whole transcript (with each reply's thinking, for display);
    what is sent to the model is the system prompt plus the window of history
    that still fits. Once old turns are dropped they stay dropped, so later turns
    remain prefix-stable and keep re-using the KV cache.
    """

    model: LoadedModel
    system: str | None = None
    #: the user's values over the catalog entry's (None: the family's and defaults)
    sampling: Sampling | None = None
    thinking: bool = True
    max_tokens: int | None = None
    history: list[ChatMessage] = field(default_factory=list)
    #: index in `history` of the first message still sent to the model
    window_start: int = 0
    last_stats: GenerationStats | None = None
    #: speculative decoding: the per-model setting (None: where it pays) and a draft model
    speculative: bool | None = None
    draft: LoadedModel | None = None

    def messages(self) -> list[ChatMessage]:
        """What the model sees: system prompt + the history window (no thinking)."""
        head = [ChatMessage("system", self.system)] if self.system else []
        return head + [ChatMessage(m.role, m.content) for m in self.history[self.window_start :]]

    def send(
        self,
        text: str,
        *,
        cancel: CancelToken | None = None,
        on_event: Callable[[StreamEvent], None] | None = None,
        max_tokens: int | None = None,
    ) -> ChatReply:
        """Ask `text`; the reply (even a cancelled partial one) joins the history."""
        user = ChatMessage("user", text)
        reply = stream_chat(
            self.model,
            [*self.messages(), user],
            sampling=self.sampling,
            thinking=self.thinking,
            max_tokens=max_tokens or self.max_tokens,
            cancel=cancel,
            on_event=on_event,
            speculative=self.speculative,
            draft=self.draft,
        )
        self.window_start += reply.stats.dropped_messages
        self.history.append(user)
        self.history.append(ChatMessage("assistant", reply.content, reply.thinking))
        self.last_stats = reply.stats
        return reply

    def clear(self) -> None:
        self.history.clear()
        self.window_start = 0
