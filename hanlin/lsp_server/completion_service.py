"""The model behind the language server: load it in the background, run completions.

The event loop never blocks here: `start_loading()` runs the load on its own
thread, and `complete()` is a plain blocking call that the handlers run on a
single-thread executor (one model, one generation at a time; a queued request
whose token was flipped meanwhile returns at once).

States: "idle" (no model configured), "loading", "ready", "failed". Requests
that arrive in any state but "ready" get no completion, immediately.

All model knowledge lives in the engine: `hanlin.engine.store.model_store` resolves a catalog id
or a GGUF path, `hanlin.engine.runtime.loader` loads it (one model per process, behind a
lock), `hanlin.engine.completion.engine.CompletionEngine` builds FIM prompts, reuses the KV
cache and the response cache, and post-processes.

A remote model (an `endpoint` setting, or a `NAME/MODEL` reference to a `[[remote]]`
server) is "loaded" by reaching the server and choosing its route (`/infill` or
`/v1/completions`); `hanlin.engine.remote.completion.RemoteCompleter` then stands in for
the engine, with the same `complete()`, and a cancel aborts its HTTP request.

Idle work (engine/completion/idle.py) runs on its own thread while the user reads or
types: `warm(request)` evaluates a prompt (the handlers call it when a file is opened
or focused and after a cursor jump); after every non-empty answer the service prefetches
the completion seen once it is accepted, then warms the full prompt after it (a prefetch
after a small-window answer comes from that window, engine.py); after an empty
small-window answer it warms the full prompt. Every real request interrupts idle work
first, so it never waits more than one short prompt chunk — except the request a running
prefetch computes (the one after accepting the shown completion: same cache key). When
that prefetch's prompt will be evaluated in time, the request waits for it, at most
`JOIN_SHARE` of its time budget (by then the prefetch stops generating and its text so
far is the answer), instead of cancelling work most of the way to its answer; the rest
of the budget is left for computing it, should that fail. A request the response cache
answers needs no model and interrupts nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hanlin.engine.completion.idle import IdleWorker
from hanlin.engine.core.cancel import CancelToken, Progress
from hanlin.engine.core.errors import Cancelled, HanlinError, ModelLoadError

if TYPE_CHECKING:
    from hanlin.engine.completion.engine import (
        CompletionEngine,
        CompletionRequest,
        CompletionResult,
    )
    from hanlin.engine.remote.completion import RemoteCompleter
    from hanlin.engine.runtime.loader import LoadedModel, ModelHost

__all__ = ["CompletionService", "LoadSpec", "ServiceState"]

log = logging.getLogger(__name__)

ServiceState = str  # "idle" | "loading" | "ready" | "failed"

#: share of a request's time budget it may wait for a running prefetch of exactly it (which
#: then answers with what it has); the rest is left for computing the answer otherwise
JOIN_SHARE = 0.5
#: the full prompt behind a small-window answer is evaluated once typing pauses this long:
#: evaluating it swaps the window's KV cells out, and between keystrokes of a burst (~150
#: ms apart) it would only get ~50 tokens done while the next keystroke had to read its
#: window again (~150 tokens, ~0.4 s on SmolLM2, 2 cores) instead of the few new ones
WARM_AFTER_PAUSE_S = 0.4


def _after_pause(task: Callable[[CancelToken], object]) -> Callable[[CancelToken], object]:
    """`task`, run only if no request cancels it within `WARM_AFTER_PAUSE_S`."""

    def run(token: CancelToken) -> object:
        if token.wait(WARM_AFTER_PAUSE_S):
            return None
        return task(token)

    return run


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What to load and how; equal specs mean "nothing to do"."""

    model: str
    kv_reuse: bool = True
    response_cache: bool = True
    context_length: int | None = None
    threads: int | None = None
    #: a remote server (a `[[remote]]` name or a URL); `model` is then the model on it
    endpoint: str | None = None
    #: shortest cached run shifted-KV reuse moves (`cacheReuse`; 0 = prefix reuse only)
    reuse_chunk: int = 256
    #: prompt-lookup drafts while generating (`drafts`)
    drafts: bool = True
    #: save the context's KV state to disk in idle time, load it after a restart
    #: (`persistKv`; the store's size is settings.toml's `kv_cache_mb`, 0 = off)
    persist_kv: bool = True


@dataclass(slots=True)
class _Loaded:
    spec: LoadSpec
    model: LoadedModel
    engine: CompletionEngine


class CompletionService:
    """Owns the loaded model and its CompletionEngine for one server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._host: ModelHost | None = None
        self._loaded: _Loaded | None = None
        self._load_token: CancelToken | None = None
        self._load_spec: LoadSpec | None = None
        self._generation = 0
        self.state: ServiceState = "idle"
        self.error: HanlinError | None = None
        #: warm-ups and prefetches between requests (`idle_work=False` turns them off)
        self.idle = IdleWorker()
        self.idle_work = True

    # -- state ----------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state == "ready" and self._loaded is not None

    @property
    def model_name(self) -> str | None:
        loaded = self._loaded
        if loaded is None:
            return None
        return loaded.model.model_id or Path(loaded.model.path).name

    @property
    def template_name(self) -> str | None:
        loaded = self._loaded
        return loaded.engine.template.name if loaded is not None else None

    @property
    def gpu_fallback(self) -> str | None:
        """Why the model runs on the CPU although a GPU was wanted (None if it did not)."""
        loaded = self._loaded
        return getattr(loaded.model, "gpu_fallback", None) if loaded is not None else None

    @property
    def backend(self) -> str | None:
        loaded = self._loaded
        return getattr(loaded.model, "backend", None) if loaded is not None else None

    @property
    def wanted(self) -> LoadSpec | None:
        return self._load_spec

    # -- loading --------------------------------------------------------------
    def start_loading(
        self,
        spec: LoadSpec | None,
        *,
        on_progress: Callable[[Progress], None],
        on_done: Callable[[HanlinError | None], None],
    ) -> bool:
        """Load `spec` on a background thread (None unloads). False if already loaded/loading.

        `on_progress` and `on_done` are called on the loading thread; the
        caller marshals them to its event loop.
        """
        with self._lock:
            if spec == self._load_spec and self.state in ("loading", "ready"):
                return False
            if self._load_token is not None:
                self._load_token.cancel("a different model was chosen")
            self._generation += 1
            generation = self._generation
            self._load_spec = spec
            token = CancelToken()
            self._load_token = token
            if spec is None:
                self.state, self.error = "idle", None
                self._unload()
                return True
            self.state, self.error = "loading", None
        thread = threading.Thread(
            target=self._load,
            args=(spec, token, generation, on_progress, on_done),
            name="hanlin-model-load",
            daemon=True,
        )
        thread.start()
        return True

    def _load(
        self,
        spec: LoadSpec,
        token: CancelToken,
        generation: int,
        on_progress: Callable[[Progress], None],
        on_done: Callable[[HanlinError | None], None],
    ) -> None:
        error: HanlinError | None = None
        try:
            loaded = self._load_blocking(spec, token, on_progress)
        except Cancelled:
            return
        except HanlinError as exc:
            error = exc
        except Exception as exc:
            log.exception("model load failed")
            error = ModelLoadError(
                f"Could not load the completion model {spec.model}: {exc}",
                "check the log file, or choose another model in the `hanlin.model` setting",
            )
        with self._lock:
            if generation != self._generation:  # superseded while loading
                return
            if error is None:
                self._loaded = loaded
                self.state = "ready"
            else:
                self._loaded = None
                self.state, self.error = "failed", error
        on_done(error)

    def _load_blocking(
        self, spec: LoadSpec, token: CancelToken, on_progress: Callable[[Progress], None]
    ) -> _Loaded:
        from hanlin.engine.completion.engine import CompletionEngine
        from hanlin.engine.runtime.loader import LoadOptions, ModelHost
        from hanlin.engine.store.model_store import ModelStore

        on_progress(Progress(stage="resolve", detail=spec.model or spec.endpoint or ""))
        remote = self._open_remote(spec, token)
        if remote is not None:
            with self._lock:
                self._loaded = None
                if self._host is not None:  # a local model loaded before is not needed now
                    self._host.close()
            return _Loaded(spec=spec, model=remote.info, engine=remote)  # type: ignore[arg-type]
        installed = ModelStore().resolve(spec.model)
        token.raise_if_cancelled()
        options = LoadOptions(n_ctx=spec.context_length, threads=spec.threads)
        with self._lock:
            if self._host is None:
                self._host = ModelHost()
            host = self._host
            # drop the engine of the previous model before the host closes it
            self._loaded = None
        model = host.get(
            installed.path,
            model_id=installed.id,
            family=installed.family,
            options=options,
            cancel=token,
            on_progress=on_progress,
        )
        token.raise_if_cancelled()
        kv_store = None
        if spec.persist_kv:
            from hanlin.engine.runtime.kv_state_store import KVStateStore

            kv_store = KVStateStore.from_settings()
        engine = CompletionEngine(
            model,
            kv_reuse=spec.kv_reuse,
            response_cache=spec.response_cache,
            reuse_chunk=spec.reuse_chunk,
            drafts=spec.drafts,
            kv_store=kv_store,
        )
        return _Loaded(spec=spec, model=model, engine=engine)

    @staticmethod
    def _open_remote(spec: LoadSpec, token: CancelToken) -> RemoteCompleter | None:
        """The remote completer for `spec`, or None when it names a local model."""
        if not spec.endpoint and "/" not in spec.model:
            return None
        from hanlin.engine.remote.completion import open_remote_completer

        return open_remote_completer(
            spec.model or None,
            spec.endpoint,
            cancel=token,
            response_cache=spec.response_cache,
        )

    def _unload(self) -> None:
        self.idle.interrupt("the model is unloaded")
        self._loaded = None
        if self._host is not None:
            self._host.close()

    def engine_totals(self) -> dict[str, object]:
        """The engine's running totals (requests, cache hits, tokens), {} when none."""
        loaded = self._loaded
        return asdict(loaded.engine.totals) if loaded is not None else {}

    # -- completing -----------------------------------------------------------
    def complete(self, request: CompletionRequest, cancel: CancelToken) -> CompletionResult | None:
        """Blocking: run one completion. None when no model is ready or it was cancelled."""
        loaded = self._loaded
        if loaded is None or cancel.cancelled:
            return None
        engine = loaded.engine
        cached = getattr(engine, "cached", None)
        result = cached(request) if cached is not None else None
        if result is None:
            waited_ms = self._interrupt_idle(engine, request, cancel)
            if cancel.cancelled:
                return None
            run = request
            if waited_ms > 0:
                # what the wait took comes out of the request's budget
                left = max(request.time_budget_ms - waited_ms, request.time_budget_ms * 0.25)
                run = replace(request, time_budget_ms=int(left))
            try:
                result = engine.complete(run, cancel=cancel)
            except Cancelled:
                return None
            result.waited_ms = waited_ms
        if result.budget_note:
            log.info("completion budget: %s", result.budget_note)
        if self.idle_work:
            self._after_answer(engine, request, result)
        return result

    def _interrupt_idle(
        self, engine: object, request: CompletionRequest, cancel: CancelToken
    ) -> float:
        """Stop idle work for a real request; the milliseconds it waited for a running
        prefetch of exactly this request (0.0 when none ran)."""
        key_of = getattr(engine, "request_key", None)
        key = key_of(request) if key_of is not None else None
        if key is None or self.idle.running_key != key:
            self.idle.interrupt()
            return 0.0
        started = time.perf_counter()
        self.idle.interrupt(
            unless=key, wait_s=request.time_budget_ms * JOIN_SHARE / 1000, cancel=cancel
        )
        return (time.perf_counter() - started) * 1000

    def _after_answer(
        self, engine: object, request: CompletionRequest, result: CompletionResult
    ) -> None:
        """Idle work after an answer: prefetch what accepting it shows, then warm the full
        prompt after it; or, for an empty small-window answer, warm the prompt."""
        prefetch = getattr(engine, "prefetch", None)
        warm = getattr(engine, "warm", None)
        if result.text and prefetch is not None:
            text = result.text
            after_accept = getattr(engine, "after_accept", None)
            key_of = getattr(engine, "request_key", None)
            after = after_accept(request, text) if after_accept is not None else None
            then: list[tuple[str, Callable[[CancelToken], object]]] = []
            if after is not None and warm is not None:
                # then the full prompt after it (a prefetch from the window leaves it cold;
                # after a full-prompt prefetch this costs a token), once the user pauses
                then.append(("warm-after", _after_pause(lambda token: warm(after, cancel=token))))
            # a prefetch for the same request already running goes on (submit says False)
            self.idle.submit(
                "prefetch",
                lambda token: prefetch(request, text, cancel=token),
                key=key_of(after) if key_of is not None and after is not None else None,
                then=then,
            )
        elif result.small_window and warm is not None:
            self.idle.submit("warm", _after_pause(lambda token: warm(request, cancel=token)))

    def warm(self, request: CompletionRequest) -> bool:
        """Evaluate `request`'s prompt in idle time (a file opened or focused, a cursor jump).

        Returns at once; False when no local model is ready or idle work is off. A real
        request cancels it; what it evaluated stays in the KV cache.
        """
        loaded = self._loaded
        if loaded is None or not self.idle_work or not hasattr(loaded.engine, "warm"):
            return False
        engine = loaded.engine
        self.idle.submit("warm", lambda token: engine.warm(request, cancel=token))
        return True

    def close(self) -> None:
        with self._lock:
            if self._load_token is not None:
                self._load_token.cancel("shutting down")
            self._generation += 1
            self.state = "idle"
            self._unload()
        self.idle.close()
