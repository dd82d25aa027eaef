"""Chat with a loaded model: template, streaming, reasoning split, stop strings, KV reuse.

Why this is not `Llama.create_chat_completion`: Hanlin needs (1) decode speed
within a few percent of llama.cpp itself, so generation runs through the
low-level API in engine/llama_session.py (sampler chain in C, no per-token
numpy); (2) follow-up turns that re-use the KV cache of the conversation, so
prompts are rendered prefix-stable and only the new suffix is evaluated; (3)
reasoning (`<think>…</think>`) streamed separately from the answer and never
fed back into history; (4) a cancel token checked between tokens that returns
the partial reply instead of raising; (5) history that overflows the context
window losing its oldest turns (never the system prompt) instead of failing.

The prompt comes from the GGUF's own `tokenizer.chat_template` (Jinja2, in a
sandbox), with the family's thinking switch (Qwen3's `enable_thinking`, or its
`/no_think` soft switch for templates without it); models without a template
get ChatML.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import Cancelled, GenerationError
from hanlin.engine.models.families import THINK_CLOSE, THINK_OPEN, FamilyBehavior
from hanlin.engine.runtime.loader import LoadedModel
from hanlin.engine.runtime.session import PieceDecoder, StopMatcher, build_sampler

__all__ = [
    "ChatMessage",
    "ChatReply",
    "ChatSession",
    "GenerationStats",
    "StreamEvent",
    "ThinkSplitter",
    "render_chat_prompt",
    "stream_chat",
]

Role = Literal["system", "user", "assistant"]

#: used when neither the caller nor the catalog says how long a reply may be
DEFAULT_MAX_TOKENS = 2048
#: sampling when neither the caller nor the family recommends anything
_BASE_SAMPLING: dict[str, float] = {
    "temperature": 0.7,
    "top_k": 40,
    "top_p": 0.95,
    "min_p": 0.05,
    "repeat_penalty": 1.0,
}

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


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
    #: prompt evaluation alone (seconds) and its speed
    prompt_s: float = 0.0

    @property
    def evaluated_tokens(self) -> int:
        """Prompt tokens that ran through llama_decode this turn (the new suffix)."""
        return self.prompt_tokens - self.cached_tokens


@dataclass
class ChatReply:
    content: str
    thinking: str | None
    stats: GenerationStats


@dataclass(frozen=True)
class StreamEvent:
    kind: Literal["answer", "thinking"]
    text: str


# ---------------------------------------------------------------- reasoning split


class ThinkSplitter:
    """Splits streamed text into thinking and answer, with tags that may arrive in pieces.

    A reasoning block is recognised only at the start of the reply (leading
    whitespace aside) or when the prompt already opened it (`in_thinking=True`,
    DeepSeek-R1 templates end with `<think>\\n`), so an answer that talks about
    `<think>` tags is left alone.
    """

    def __init__(
        self, in_thinking: bool = False, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE
    ):
        self.open_tag, self.close_tag = open_tag, close_tag
        self._state = "thinking" if in_thinking else "start"
        self._buf = ""
        self._thinking_started = False
        self._answer_started = False
        self.saw_thinking = in_thinking
        self.thinking_parts: list[str] = []
        self.answer_parts: list[str] = []

    @property
    def in_thinking(self) -> bool:
        return self._state == "thinking"

    def _emit(self, kind: Literal["answer", "thinking"], text: str, out: list[StreamEvent]) -> None:
        if kind == "thinking":
            if not self._thinking_started:
                text = text.lstrip()
            if not text:
                return
            self._thinking_started = True
            self.thinking_parts.append(text)
        else:
            if not self._answer_started:
                text = text.lstrip()
            if not text:
                return
            self._answer_started = True
            self.answer_parts.append(text)
        out.append(StreamEvent(kind, text))

    @staticmethod
    def _held(buf: str, tag: str) -> int:
        """Length of the longest tail of `buf` that is a proper prefix of `tag`."""
        for n in range(min(len(tag) - 1, len(buf)), 0, -1):
            if tag.startswith(buf[-n:]):
                return n
        return 0

    def feed(self, text: str) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self._buf += text
        while self._buf:
            if self._state == "start":
                stripped = self._buf.lstrip()
                if not stripped:
                    break
                if stripped.startswith(self.open_tag):
                    self._buf = stripped[len(self.open_tag) :]
                    self._state = "thinking"
                    self.saw_thinking = True
                    continue
                if self.open_tag.startswith(stripped):
                    break  # could still become the opening tag
                self._state = "answer"
            elif self._state == "thinking":
                i = self._buf.find(self.close_tag)
                if i >= 0:
                    self._emit("thinking", self._buf[:i], out)
                    self._buf = self._buf[i + len(self.close_tag) :]
                    self._state = "answer"
                    continue
                hold = self._held(self._buf, self.close_tag)
                self._emit("thinking", self._buf[: len(self._buf) - hold], out)
                self._buf = self._buf[len(self._buf) - hold :]
                break
            else:
                self._emit("answer", self._buf, out)
                self._buf = ""
        return out

    def finish(self) -> list[StreamEvent]:
        """Flush what is held back at the end of the stream."""
        out: list[StreamEvent] = []
        if self._buf:
            self._emit("thinking" if self._state == "thinking" else "answer", self._buf, out)
            self._buf = ""
        return out

    @property
    def thinking(self) -> str | None:
        text = "".join(self.thinking_parts).strip()
        return text if (text or self.saw_thinking) else None

    @property
    def answer(self) -> str:
        return "".join(self.answer_parts).strip()


def prompt_opens_thinking(prompt: str) -> bool:
    """True when the rendered prompt ends inside an open reasoning block."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


# ---------------------------------------------------------------- templates


def _raise_exception(message: str) -> None:
    raise GenerationError(f"The model's chat template refused the conversation: {message}")


@functools.lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise GenerationError(
            f"The model's chat template is not valid Jinja2: {exc}",
            "re-download the model or import a GGUF with a working template",
        ) from exc


def render_chat_prompt(
    template: str | None,
    messages: Sequence[ChatMessage],
    *,
    bos_token: str = "",
    eos_token: str = "",
    variables: Mapping[str, object] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text for `messages` from a GGUF chat template (ChatML when None)."""
    from jinja2 import TemplateError

    compiled = _compile(template or CHATML_TEMPLATE)
    try:
        return compiled.render(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
            tools=None,
            **(variables or {}),
        )
    except TemplateError as exc:
        raise GenerationError(f"The model's chat template failed: {exc}") from exc


class _Prompter:
    """Renders and tokenizes a conversation for one model."""

    def __init__(self, model: LoadedModel, behavior: FamilyBehavior, thinking: bool) -> None:
        self.model = model
        self.session = model.session
        self.template = model.chat_template
        self.variables = behavior.template_variables(thinking)
        self.soft_switch = behavior.soft_switch_suffix(thinking, self.template)
        s = self.session
        self.bos_text = s.detokenize([s.bos]) if s.bos >= 0 else ""
        eos = model.llama.token_eos()
        self.eos_text = s.detokenize([eos]) if eos >= 0 else ""

    def render(self, messages: Sequence[ChatMessage]) -> str:
        if self.soft_switch:
            last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
            if last_user is not None:
                messages = list(messages)
                m = messages[last_user]
                messages[last_user] = replace(m, content=m.content + self.soft_switch)
        return render_chat_prompt(
            self.template,
            messages,
            bos_token=self.bos_text,
            eos_token=self.eos_text,
            variables=self.variables,
        )

    def tokens(self, text: str) -> list[int]:
        s = self.session
        ids = s.tokenize(text, add_special=False, parse_special=True)
        if s.add_bos and s.bos >= 0 and (not ids or ids[0] != s.bos):
            ids.insert(0, s.bos)
        return ids


#: when old turns must go, free this share of the context as well, so that the next
#: turns fit without dropping (and re-evaluating the whole prompt) again
_DROP_HEADROOM = 0.25


def _window_key(message: ChatMessage) -> tuple[str, int]:
    return (message.role, hash(message.content))


def _fit_history(
    prompter: _Prompter,
    messages: Sequence[ChatMessage],
    n_ctx: int,
    reserve: int,
    hint: tuple[int, tuple[str, int]] | None = None,
) -> tuple[list[int], str, int]:
    """Render, dropping the oldest non-system messages until prompt + reserve fits n_ctx.

    Returns (tokens, prompt text, number of messages dropped). Keeps the system
    message(s) and always the last message; drops whole turns so the window
    starts with a user message. `hint` is where the previous call's window
    started (index, key of that message): starting there keeps the prompt
    prefix-stable for callers that pass the whole history every turn. When
    more must go, it drops until a quarter of the context is free again.
    """
    system = [m for m in messages if m.role == "system"]
    rest = [m for m in messages if m.role != "system"]
    if not rest:
        raise GenerationError("There is no message to answer")

    def render(k: int) -> tuple[list[int], str]:
        text = prompter.render(system + rest[k:])
        return prompter.tokens(text), text

    start = 0
    if hint is not None:
        index, key = hint
        if 0 < index < len(rest) and _window_key(rest[index]) == key:
            start = index
    tokens, text = render(start)
    if len(tokens) + reserve <= n_ctx:
        return tokens, text, start

    target = n_ctx - int(n_ctx * _DROP_HEADROOM)
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
            return tokens, text, dropped
    if first_fit is not None:
        return first_fit
    if len(tokens) < n_ctx:  # fits, with less room to answer than asked for
        return tokens, text, dropped
    raise GenerationError(
        f"The message is too long: {len(tokens)} tokens with the system prompt, "
        f"but the context window is {n_ctx} tokens",
        "shorten it, or load the model with a larger context (`--ctx`, or n_ctx in settings)",
    )


def _sampling_params(sampling: Any, behavior: FamilyBehavior, thinking: bool) -> dict[str, Any]:
    params: dict[str, Any] = dict(_BASE_SAMPLING)
    params.update(behavior.recommended_sampling(thinking))
    if sampling is not None:
        for key in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty"):
            value = getattr(sampling, key, None)
            if value is not None:
                params[key] = value
    return params


# ---------------------------------------------------------------- streaming


def stream_chat(
    model: LoadedModel,
    messages: list[ChatMessage],
    *,
    sampling: Any | None = None,
    thinking: bool = True,
    max_tokens: int | None = None,
    cancel: CancelToken | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
    stop: Sequence[str] = (),
    seed: int | None = None,
) -> ChatReply:
    """Generate the assistant's next message, streaming it through `on_event`.

    `sampling` is a catalog `Sampling` (or anything with temperature/top_p/
    top_k/min_p/repeat_penalty/max_tokens attributes; None = family defaults).
    Thinking in `messages` is ignored. Cancelling returns the partial reply with
    stop_reason "cancelled". Blocking: call it from a worker thread.
    """
    cancel = cancel or NEVER_CANCELLED
    started = time.perf_counter()
    behavior = model.behavior
    limit = max_tokens or getattr(sampling, "max_tokens", None) or DEFAULT_MAX_TOKENS
    clean = [ChatMessage(m.role, m.content) for m in messages]
    stats = GenerationStats()
    with model.lock:
        if model.closed:
            raise GenerationError("The model was closed", "load it again")
        session = model.session
        prompter = _Prompter(model, behavior, thinking)
        reserve = min(limit, max(16, model.n_ctx // 4))
        tokens, prompt_text, dropped = _fit_history(
            prompter, clean, model.n_ctx, reserve, model.chat_window
        )
        rest = [m for m in clean if m.role != "system"]
        model.chat_window = (dropped, _window_key(rest[dropped])) if dropped else None
        stats.prompt_tokens = len(tokens)
        stats.dropped_messages = dropped
        splitter = ThinkSplitter(in_thinking=prompt_opens_thinking(prompt_text))
        try:
            evaluated = session.evaluate(tokens, cancel=cancel)
        except Cancelled:
            stats.stop_reason = "cancelled"
            stats.total_s = time.perf_counter() - started
            return ChatReply("", None, stats)
        stats.cached_tokens = evaluated.cached_tokens
        stats.prompt_s = evaluated.seconds

        params = _sampling_params(sampling, behavior, thinking)
        decoder = PieceDecoder()
        matcher = StopMatcher(tuple(behavior.stop_strings) + tuple(stop))
        emit = on_event or (lambda _e: None)
        n = 0
        t_first = t_last = 0.0
        with build_sampler(session.vocab, seed=seed, **params) as sampler:
            room = max(1, model.n_ctx - len(tokens))
            for token in session.generate(sampler, max_tokens=min(limit, room), cancel=cancel):
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

    stats.generated_tokens = n
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
    sampling: Any | None = None
    thinking: bool = True
    max_tokens: int | None = None
    history: list[ChatMessage] = field(default_factory=list)
    #: index in `history` of the first message still sent to the model
    window_start: int = 0
    last_stats: GenerationStats | None = None

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
        )
        self.window_start += reply.stats.dropped_messages
        self.history.append(user)
        self.history.append(ChatMessage("assistant", reply.content, reply.thinking))
        self.last_stats = reply.stats
        return reply

    def clear(self) -> None:
        self.history.clear()
        self.window_start = 0
