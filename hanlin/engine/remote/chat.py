"""Chat with a model on a remote server, with the local chat's behaviour and return values.

Why it mirrors engine/chat/stream.py: the window's worker and `hanlin chat` treat a
remote model exactly like a local one — `stream_remote_chat` takes the same messages,
sampling, thinking switch, stop strings and cancel token as `stream_chat`, streams the
same `StreamEvent`s and returns the same `ChatReply` — so the front ends only choose
which function to call.

The reasoning split: servers return thinking either separately
(`delta.reasoning_content` from llama-server, vLLM and `hanlin serve`;
`delta.reasoning` from newer vLLM and Ollama) or inline as `<think>…</think>` in the
content; the second goes through the same `ThinkSplitter` as local generation. The
thinking switch is sent as `chat_template_kwargs.enable_thinking` (what vLLM and
llama-server pass to Qwen3's template). Past thinking is never sent back.

Failures: before the first token they raise (unreachable, refused key, slow first
byte, bad JSON, unknown model — with the server's models in the hint). After it, the
partial answer is returned, never lost, with `stop_reason` "interrupted" and the
reason in `stats.error`; Stop returns it with "cancelled", like local generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hanlin.engine.chat.stream import ChatMessage, ChatReply, GenerationStats
from hanlin.engine.chat.thinking import StreamEvent, ThinkSplitter
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import Cancelled, HanlinError
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.remote.client import RemoteClient
from hanlin.engine.remote.endpoint import RemoteTarget
from hanlin.engine.remote.errors import RemoteError, RemoteHTTPError, RemoteProtocolError

__all__ = [
    "INTERRUPTED",
    "RemoteChatSession",
    "RemoteStats",
    "build_chat_body",
    "stream_remote_chat",
]

#: stop_reason of an answer cut off by the connection (kept, and shown as interrupted)
INTERRUPTED = "interrupted"
#: sampling keys sent to a remote server when set (names as vLLM and llama-server take them)
_SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p")


@dataclass
class RemoteStats(GenerationStats):
    """`GenerationStats` plus where the answer came from and why it ended early, if it did."""

    endpoint: str = ""
    #: what went wrong after the answer had started (the partial answer is kept)
    error: str | None = None
    error_hint: str | None = None


def build_chat_body(
    model: str,
    messages: Sequence[ChatMessage],
    *,
    sampling: Sampling | None = None,
    thinking: bool = True,
    max_tokens: int | None = None,
    stop: Sequence[str] = (),
    seed: int | None = None,
) -> dict[str, Any]:
    """The `/v1/chat/completions` body: only what the user set (the server knows its model's
    recommended sampling better than a guess from the model's name)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "stream_options": {"include_usage": True},
    }
    given = sampling.given() if sampling is not None else {}
    for key in _SAMPLING_KEYS:
        if given.get(key) is not None:
            body[key] = given[key]
    if given.get("repeat_penalty") is not None:
        body["repeat_penalty"] = given["repeat_penalty"]  # llama-server
        body["repetition_penalty"] = given["repeat_penalty"]  # vLLM
    limit = max_tokens or given.get("max_tokens")
    if limit:
        body["max_tokens"] = int(limit)
    if stop:
        body["stop"] = list(stop)
    if seed is not None:
        body["seed"] = seed
    if not thinking:
        body["chat_template_kwargs"] = {"enable_thinking": False}
    return body


def _text(value: Any, what: str, target: RemoteTarget) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RemoteProtocolError(
            f"{target.endpoint.label} sent a chunk whose {what} is not text", None
        )
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _unknown_model(exc: RemoteHTTPError, client: RemoteClient, target: RemoteTarget) -> HanlinError:
    """A 404/400 about the model: say which models the server has."""
    try:
        ids = [m.id for m in client.models()]
    except HanlinError:
        return exc
    if target.model in ids:
        return exc
    listed = ", ".join(f"`{i}`" for i in ids[:8]) or "none"
    return RemoteHTTPError(
        f"{target.endpoint.label} has no model {target.model!r} ({exc.message})",
        f"models there: {listed}",
        exc.status,
    )


def stream_remote_chat(
    target: RemoteTarget,
    messages: list[ChatMessage],
    *,
    sampling: Sampling | None = None,
    thinking: bool = True,
    max_tokens: int | None = None,
    cancel: CancelToken | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
    stop: Sequence[str] = (),
    seed: int | None = None,
    client: RemoteClient | None = None,
) -> ChatReply:
    """Stream the next assistant message from `target` (see the module docstring).

    Blocking: call it from a worker thread. Cancelling aborts the HTTP request.
    """
    cancel = cancel or NEVER_CANCELLED
    client = client or RemoteClient(target.endpoint)
    emit = on_event or (lambda _e: None)
    started = time.perf_counter()
    body = build_chat_body(
        target.model,
        messages,
        sampling=sampling,
        thinking=thinking,
        max_tokens=max_tokens,
        stop=stop,
        seed=seed,
    )
    stats = RemoteStats(
        sampling={k: body[k] for k in (*_SAMPLING_KEYS, "max_tokens") if k in body},
        endpoint=target.endpoint.name,
    )
    splitter = ThinkSplitter()
    reasoning: list[str] = []
    pieces = 0
    t_first = t_last = 0.0
    finish: str | None = None
    usage: dict[str, Any] = {}
    timings: dict[str, Any] = {}

    def receive(kind: str, text: str) -> None:
        nonlocal pieces, t_first, t_last
        if not text:
            return
        t_last = time.perf_counter()
        if not pieces:
            t_first = t_last
        pieces += 1
        if kind == "thinking":
            if not reasoning and not splitter.thinking_parts:
                text = text.lstrip()
                if not text:
                    return
            reasoning.append(text)
            emit(StreamEvent("thinking", text))
        else:
            for event in splitter.feed(text):
                emit(event)

    try:
        for chunk in client.chat(body, cancel):
            choices = chunk.get("choices")
            if isinstance(choices, list) and choices:
                choice = choices[0] if isinstance(choices[0], dict) else {}
                delta = choice.get("delta")
                if not isinstance(delta, dict):  # a server that answered without streaming
                    delta = choice.get("message") if isinstance(choice.get("message"), dict) else {}
                receive(
                    "thinking",
                    _text(
                        delta.get("reasoning_content") or delta.get("reasoning"),
                        "reasoning",
                        target,
                    ),
                )
                receive("answer", _text(delta.get("content"), "content", target))
                if isinstance(choice.get("finish_reason"), str):
                    finish = choice["finish_reason"]
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            if isinstance(chunk.get("timings"), dict):
                timings = chunk["timings"]
        if finish is None:
            raise RemoteError(
                f"The answer from {target.endpoint.label} ended before the server finished it",
                "check the server's log; try again",
            )
        stats.stop_reason = "length" if finish == "length" else "stop"
    except Cancelled:
        stats.stop_reason = "cancelled"
    except RemoteHTTPError as exc:
        if pieces:
            _mark_interrupted(stats, exc)
        elif exc.status in (400, 404) and "model" in exc.message.lower():
            raise _unknown_model(exc, client, target) from None
        else:
            raise
    except RemoteError as exc:
        if not pieces:
            raise
        _mark_interrupted(stats, exc)
    for event in splitter.finish():
        emit(event)

    thinking_text = "".join(reasoning).strip()
    inline = splitter.thinking
    if inline:
        thinking_text = f"{thinking_text}\n\n{inline}".strip() if thinking_text else inline
    now = time.perf_counter()
    stats.total_s = now - started
    stats.ttft_s = (t_first - started) if pieces else 0.0
    completion_tokens = _number(usage.get("completion_tokens"))
    stats.generated_tokens = int(completion_tokens) if completion_tokens is not None else pieces
    stats.prompt_tokens = int(_number(usage.get("prompt_tokens")) or 0)
    details = usage.get("prompt_tokens_details")
    cached = _number(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is None:
        cached = _number(timings.get("cache_n"))
    stats.cached_tokens = int(cached or 0)
    prompt_ms = _number(timings.get("prompt_ms"))
    stats.prompt_s = prompt_ms / 1000 if prompt_ms is not None else 0.0
    speed = _number(timings.get("predicted_per_second"))
    if speed is None and pieces > 1 and t_last > t_first:
        speed = (stats.generated_tokens - 1) / (t_last - t_first)
    stats.tokens_per_s = speed or 0.0
    return ChatReply(splitter.answer, thinking_text or None, stats)


def _mark_interrupted(stats: RemoteStats, exc: HanlinError) -> None:
    stats.stop_reason = INTERRUPTED
    stats.error = exc.message
    stats.error_hint = exc.hint


@dataclass
class RemoteChatSession:
    """A conversation with a remote model; the same surface as `engine.chat.stream.ChatSession`.

    The server keeps no state between requests: each turn sends the whole history (no
    thinking). A partial answer (stopped, or cut off by the connection) joins the history.
    """

    target: RemoteTarget
    system: str | None = None
    sampling: Sampling | None = None
    thinking: bool = True
    max_tokens: int | None = None
    history: list[ChatMessage] = field(default_factory=list)
    last_stats: RemoteStats | None = None
    client: RemoteClient | None = None

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = RemoteClient(self.target.endpoint)

    def messages(self) -> list[ChatMessage]:
        head = [ChatMessage("system", self.system)] if self.system else []
        return head + [ChatMessage(m.role, m.content) for m in self.history]

    def send(
        self,
        text: str,
        *,
        cancel: CancelToken | None = None,
        on_event: Callable[[StreamEvent], None] | None = None,
        max_tokens: int | None = None,
    ) -> ChatReply:
        user = ChatMessage("user", text)
        reply = stream_remote_chat(
            self.target,
            [*self.messages(), user],
            sampling=self.sampling,
            thinking=self.thinking,
            max_tokens=max_tokens or self.max_tokens,
            cancel=cancel,
            on_event=on_event,
            client=self.client,
        )
        self.history.append(user)
        self.history.append(ChatMessage("assistant", reply.content, reply.thinking))
        self.last_stats = reply.stats  # type: ignore[assignment]
        return reply

    def clear(self) -> None:
        self.history.clear()
