"""Generating one answer: load the model if needed, stream the reply into the history.

Why a Qt-free module: this is the function the `TaskRunner` runs on its pool. It
owns the slow, blocking part of a chat turn — loading a GGUF through llama.cpp,
streaming tokens, saving the answer as it grows — and reports snapshots of the
text so far through `on_progress` (the runner coalesces them; the GUI repaints on
its own timer). The answer is saved through `hanlin.engine.chat.history.StreamingMessage`,
so a killed app loses at most the last few tokens.

Heavy imports (`hanlin.engine.runtime`, `hanlin.engine.chat`, and through them `llama_cpp`)
happen inside the worker, never at app start-up.

A request for a model on a remote server (`request.remote`) skips the load and streams
from `hanlin.engine.remote.chat.stream_remote_chat`, which takes the same arguments and
reports the same events; an answer the connection cut off is saved as it stood,
marked not complete (the window shows it as interrupted).

Long chats reopen instantly: `stream_chat` gets the saved KV states
(`hanlin.engine.runtime.kv_state_store`), so an answer in a conversation whose state was
saved evaluates only its new tokens; `save_kv_state` writes the loaded model's state (the
controller calls it on a conversation switch and on quit, and `load_for` before another
model replaces the loaded one).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanlin.engine.chat.history import StreamingMessage
from hanlin.engine.core.cancel import CancelToken, Progress

#: the most often a streaming answer is reported to the window (seconds); the final text
#: always arrives with the outcome
REPORT_INTERVAL_S = 0.03

if TYPE_CHECKING:
    from hanlin.engine.models.catalog import Sampling
    from hanlin.engine.runtime.kv_state_store import SaveResult
    from hanlin.engine.runtime.loader import LoadedModel, ModelHost

log = logging.getLogger(__name__)


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
    #: a model on a remote server (engine/remote/endpoint.RemoteTarget); None: load the file
    remote: Any = None
    #: speculative decoding: the per-model `speculative` setting (None: where it pays) and
    #: `draft_model` (a catalog id or GGUF path loaded beside the model; None: none)
    speculative: bool | None = None
    draft_model: str | None = None


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
        #: the draft model of speculative decoding, kept loaded between answers
        self._draft_host: ModelHost | None = None

    def draft_host(self) -> ModelHost:
        with self._lock:
            if self._draft_host is None:
                from hanlin.engine.runtime.loader import ModelHost

                self._draft_host = ModelHost()
            return self._draft_host

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
            if self._draft_host is not None:
                self._draft_host.close()
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
    current = host.current
    if (
        current is not None
        and not current.closed
        and current.path != Path(request.model_path).expanduser()
    ):
        # another model replaces this one: its conversation's cache goes to disk first (not
        # when only its settings change: a state is keyed by them and would not be used)
        save_kv_state(host)
    return host.get().get(
        request.model_path,
        model_id=request.model_id,
        family=request.family,
        options=options,
        cancel=cancel,
        on_progress=on_load_progress,
    )


def load_draft_for(
    request: GenerationRequest, host: LazyModelHost, model: LoadedModel, cancel: CancelToken
) -> tuple[LoadedModel | None, tuple[str, str | None] | None]:
    """The request's draft model, loaded beside `model` (kept between answers), or None; and
    why it could not be used ((message, hint): the answer goes on without it), or None."""
    if request.speculative is False or not request.draft_model:
        host.draft_host().close()  # nobody drafts now: free its memory
        return None, None
    from hanlin.engine.runtime.draft_model import DraftModelError, load_draft_model

    try:
        draft = load_draft_model(model, request.draft_model, host=host.draft_host(), cancel=cancel)
    except DraftModelError as exc:
        host.draft_host().close()
        return None, (exc.message, exc.hint)
    return draft, None


def save_kv_state(host: LazyModelHost) -> SaveResult | None:
    """Write the loaded model's KV cache to the saved states (blocking: a worker's job).

    None when no model is loaded, the cache holds too little to be worth it, saving is
    off (`kv_cache_mb = 0`: the states saved before are deleted) or the disk refused
    (logged: a cache is never worth an error).
    """
    model = host.current
    if model is None or model.closed:
        return None
    from hanlin.engine.core.errors import HanlinError
    from hanlin.engine.runtime.kv_state_store import KVStateStore

    try:
        store = KVStateStore.from_settings()
        if store is None:  # turned off: the disk the earlier states took is given back
            KVStateStore().clear()
            return None
        return store.save(model)
    except (HanlinError, OSError) as exc:
        log.warning("the conversation's KV cache was not saved: %s", exc)
        return None


def _kv_store() -> Any:
    from hanlin.engine.core.errors import HanlinError
    from hanlin.engine.runtime.kv_state_store import KVStateStore

    try:
        return KVStateStore.from_settings()
    except HanlinError:  # a broken settings file: the default store
        return KVStateStore()


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
    on_progress(StreamSnapshot(mid, "connecting" if request.remote is not None else "loading"))
    draft: LoadedModel | None = None
    draft_problem: tuple[str, str | None] | None = None
    if request.remote is not None:
        status = ModelStatus(
            model_id=request.model_id,
            backend=f"{request.remote.endpoint.name} (remote)",
            gpu_fallback=None,
            n_ctx=0,
            load_seconds=None,
        )
    else:
        model = load_for(
            request, host, cancel, lambda p: on_progress(StreamSnapshot(mid, "loading", load=p))
        )
        status = model_status(model)
        draft, draft_problem = load_draft_for(request, host, model, cancel)

    answer: list[str] = []
    thought: list[str] = []
    think_start: float | None = None
    think_end: float | None = None

    def thinking_seconds() -> float | None:
        if think_start is None:
            return None
        return (think_end or time.monotonic()) - think_start

    reported: list[Any] = [0.0, ""]  # when the window was last told, and in which phase

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
        # the window shows at most ~30 updates a second: waking the GUI thread (and taking
        # the GIL) for every token would only slow the decoding down
        if phase != reported[1] or now - reported[0] >= REPORT_INTERVAL_S:
            reported[:] = [now, phase]
            on_progress(StreamSnapshot(mid, phase, content, thinking, thinking_seconds()))

    messages = [ChatMessage(role=role, content=content) for role, content in request.turns]
    try:
        if request.remote is not None:
            from hanlin.engine.remote.chat import stream_remote_chat

            reply = stream_remote_chat(
                request.remote,
                messages,
                sampling=request.sampling,
                thinking=request.thinking,
                max_tokens=request.max_tokens,
                cancel=cancel,
                on_event=on_event,
            )
        else:
            reply = stream_chat(
                model,
                messages,
                sampling=request.sampling,
                thinking=request.thinking,
                max_tokens=request.max_tokens,
                cancel=cancel,
                on_event=on_event,
                kv_store=_kv_store(),
                speculative=request.speculative,
                draft=draft,
            )
    except BaseException:
        writer.finish("".join(answer), "".join(thought) or None, thinking_s=thinking_seconds())
        raise
    stats = dataclasses.asdict(reply.stats) if dataclasses.is_dataclass(reply.stats) else {}
    stats["model_id"] = request.model_id
    stats["backend"] = status.backend
    if draft_problem is not None:  # the controller warns; the answer is there all the same
        stats["draft_problem"], stats["draft_problem_hint"] = draft_problem
    thinking_text = reply.thinking or "".join(thought) or None
    writer.finish(reply.content, thinking_text, thinking_s=thinking_seconds(), stats=stats)
    if stats.get("stop_reason") == "interrupted":  # cut off by the connection: not complete
        writer.history.update_message(mid, complete=False)
    return GenerationOutcome(
        message_id=mid,
        content=reply.content,
        thinking=thinking_text,
        thinking_s=thinking_seconds(),
        stats=stats,
        model=status,
    )
