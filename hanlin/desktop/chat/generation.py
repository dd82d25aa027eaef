"""Generating one answer: load the model if needed, stream the reply into the history.

Why a Qt-free module: this is the function the `TaskRunner` runs on its pool. It
owns the slow, blocking part of a chat turn — loading a GGUF through llama.cpp,
streaming tokens, saving the answer as it grows — and reports snapshots of the
text so far through `on_progress` (the runner coalesces them; the GUI repaints on
its own timer). The answer is saved through `hanlin.engine.chat.history.StreamingMessage`,
so a killed app loses at most the last few tokens.

Heavy imports (`hanlin.engine.runtime`, `hanlin.engine.chat`, and through them `llama_cpp`)
happen inside the worker, never at app start-up.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanlin.engine.chat.history import StreamingMessage
from hanlin.engine.core.cancel import CancelToken, Progress

if TYPE_CHECKING:
    from hanlin.engine.models.catalog import Sampling
    from hanlin.engine.runtime.loader import LoadedModel, ModelHost


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything a worker needs, decided on the GUI thread before it starts."""

    conversation_id: int
    model_id: str
    model_path: Path
    family: str | None
    #: (role, content) pairs: system prompt first, no thinking
    turns: list[tuple[str, str]]
    thinking: bool
    #: the user's per-model settings over the catalog entry's; None values are filled in by
    #: the family's recommendation for the reply's mode, then defaults (engine/chat/sampling.py)
    sampling: Sampling | None
    max_tokens: int | None
    n_ctx: int | None
    n_gpu_layers: int


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """The answer so far (what `on_progress` receives while streaming)."""

    message_id: int
    #: "loading" (the model), "thinking", "answering"
    phase: str
    content: str = ""
    thinking: str = ""
    thinking_s: float | None = None
    load: Progress | None = None


@dataclass(frozen=True, slots=True)
class ModelStatus:
    model_id: str
    backend: str
    gpu_fallback: str | None
    n_ctx: int
    load_seconds: float | None


@dataclass(frozen=True, slots=True)
class GenerationOutcome:
    message_id: int
    content: str
    thinking: str | None
    thinking_s: float | None
    #: GenerationStats as a dict: ttft_s, tokens_per_s, generated_tokens, stop_reason...
    stats: dict[str, Any]
    model: ModelStatus

    @property
    def stopped(self) -> bool:
        return self.stats.get("stop_reason") == "cancelled"


class LazyModelHost:
    """The process's `ModelHost`, created on first use on a worker thread.

    Importing `hanlin.engine.runtime.loader` pulls in llama.cpp; doing it here keeps start-up light.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._host: ModelHost | None = None

    def get(self) -> ModelHost:
        with self._lock:
            if self._host is None:
                from hanlin.engine.runtime.loader import ModelHost

                self._host = ModelHost()
            return self._host

    @property
    def current(self) -> LoadedModel | None:
        return self._host.current if self._host is not None else None

    def close(self) -> None:
        with self._lock:
            if self._host is not None:
                self._host.close()


def model_status(model: LoadedModel) -> ModelStatus:
    return ModelStatus(
        model_id=model.model_id,
        backend=model.backend,
        gpu_fallback=model.gpu_fallback,
        n_ctx=model.n_ctx,
        load_seconds=getattr(model, "load_seconds", None),
    )


def load_for(
    request: GenerationRequest,
    host: LazyModelHost,
    cancel: CancelToken,
    on_load_progress: Callable[[Progress], None] | None = None,
) -> LoadedModel:
    from hanlin.engine.runtime.loader import LoadOptions

    options = LoadOptions(n_ctx=request.n_ctx, n_gpu_layers=request.n_gpu_layers)
    return host.get().get(
        request.model_path,
        model_id=request.model_id,
        family=request.family,
        options=options,
        cancel=cancel,
        on_progress=on_load_progress,
    )


def run_generation(
    request: GenerationRequest,
    writer: StreamingMessage,
    host: LazyModelHost,
    cancel: CancelToken,
    on_progress: Callable[[StreamSnapshot], None],
) -> GenerationOutcome:
    """Load (if needed) and stream one answer into `writer`; returns the final reply.

    Stopping (the cancel token) returns the partial answer, saved and marked complete
    with stop_reason "cancelled". Errors propagate (the GUI shows them) after the text
    received so far was saved.
    """
    from hanlin.engine.chat.stream import ChatMessage, StreamEvent, stream_chat

    mid = writer.message_id
    on_progress(StreamSnapshot(mid, "loading"))
    model = load_for(
        request, host, cancel, lambda p: on_progress(StreamSnapshot(mid, "loading", load=p))
    )
    status = model_status(model)

    answer: list[str] = []
    thought: list[str] = []
    think_start: float | None = None
    think_end: float | None = None

    def thinking_seconds() -> float | None:
        if think_start is None:
            return None
        return (think_end or time.monotonic()) - think_start

    def on_event(event: StreamEvent) -> None:
        nonlocal think_start, think_end
        now = time.monotonic()
        if event.kind == "thinking":
            if think_start is None:
                think_start = now
            thought.append(event.text)
            phase = "thinking"
        else:
            if think_start is not None and think_end is None:
                think_end = now
            answer.append(event.text)
            phase = "answering"
        content, thinking = "".join(answer), "".join(thought)
        writer.update(content, thinking or None)
        on_progress(StreamSnapshot(mid, phase, content, thinking, thinking_seconds()))

    messages = [ChatMessage(role=role, content=content) for role, content in request.turns]
    try:
        reply = stream_chat(
            model,
            messages,
            sampling=request.sampling,
            thinking=request.thinking,
            max_tokens=request.max_tokens,
            cancel=cancel,
            on_event=on_event,
        )
    except BaseException:
        writer.finish("".join(answer), "".join(thought) or None, thinking_s=thinking_seconds())
        raise
    stats = dataclasses.asdict(reply.stats) if dataclasses.is_dataclass(reply.stats) else {}
    stats["model_id"] = request.model_id
    stats["backend"] = status.backend
    thinking_text = reply.thinking or "".join(thought) or None
    writer.finish(reply.content, thinking_text, thinking_s=thinking_seconds(), stats=stats)
    return GenerationOutcome(
        message_id=mid,
        content=reply.content,
        thinking=thinking_text,
        thinking_s=thinking_seconds(),
        stats=stats,
        model=status,
    )
