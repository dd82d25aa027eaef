"""One loaded llama.cpp model: load it safely, and hold it for chat and completion.

Why a module of its own: loading is where most things go wrong for users (a
half-downloaded file, a format llama.cpp does not know, a GPU that runs out of
memory), and the rules for it must hold the same in the desktop app, the
command line and the language server:

- the GGUF header is checked first (engine/gguf_info.py), so a non-GGUF or
  truncated file fails with a message naming the file, before llama.cpp sees it;
- llama.cpp's own refusal (e.g. an unknown architecture) is reported with the
  reason it logged, as a `ModelLoadError`; the process survives;
- threads = physical cores; weights are mmapped (so the desktop app and the
  editor's language server share one copy in the page cache);
- all layers are offloaded when llama.cpp was built with a GPU backend; if that
  load fails, it is retried on the CPU and `LoadedModel.gpu_fallback` says why,
  so the front end can tell the user (GPT4All users hate silent fallbacks);
- the load reports llama.cpp's own progress (`Progress(stage="load", done,
  total=1.0)`, at most once per percent) and a cancel during it stops llama.cpp
  at its next step (its progress callback answers False): `Cancelled`, and
  nothing half-loaded stays in memory;
- llama.cpp's log never reaches stdout (engine/llama_log.py), and no global
  (`sys.stderr`, file descriptors) is swapped while loading.

`ModelHost` keeps one model per process behind a lock and closes the old model
explicitly when another is loaded.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanlin.engine.core import paths
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken, Progress, ProgressCallback
from hanlin.engine.core.errors import Cancelled, ModelFileError, ModelLoadError
from hanlin.engine.models.families import FamilyBehavior, family_for, guess_family
from hanlin.engine.models.fit import default_n_ctx
from hanlin.engine.models.gguf_info import GGUFInfo
from hanlin.engine.runtime.hardware import HardwareInfo, detect_hardware
from hanlin.engine.runtime.llama_log import (
    clear_recent_log,
    ensure_llama_logs_routed,
    recent_llama_log,
)
from hanlin.engine.store.shards import read_model_info

if TYPE_CHECKING:
    import llama_cpp

    from hanlin.engine.runtime.session import LlamaSession

__all__ = ["LoadOptions", "LoadedModel", "ModelHost", "load_model"]


@dataclass
class LoadOptions:
    #: context window in tokens; None = the training context, capped (models.fit.default_n_ctx)
    n_ctx: int | None = None
    #: -1 = all layers on the GPU (when there is one), 0 = CPU only
    n_gpu_layers: int = -1
    #: None = physical cores
    threads: int | None = None
    n_batch: int = 512
    use_mmap: bool = True
    #: flash attention (llama.cpp picks it automatically where supported; so do we:
    #: on, with a retry without it if the context cannot be created)
    flash_attn: bool = True


@dataclass(eq=False)
class LoadedModel:
    """A model in memory with its llama.cpp context. Use under `lock`; `close()` when done."""

    path: Path
    model_id: str
    family: str
    n_ctx: int
    #: "cuda" / "metal" / "vulkan" / "cpu": where the layers actually are
    backend: str
    #: why the GPU load failed and the model runs on the CPU instead (None: no fallback)
    gpu_fallback: str | None
    info: GGUFInfo
    #: llama-cpp-python's object; its `model`/`ctx` handles are used by `session`
    llama: llama_cpp.Llama
    threads: int
    n_gpu_layers: int
    load_seconds: float
    session: LlamaSession
    options: LoadOptions = field(default_factory=LoadOptions)
    #: engine/chat/window.py's memory of where recent conversations' windows start, each
    #: tied to its conversation by a digest of its messages (prefix stability)
    chat_window: tuple[tuple[int, int, bytes], ...] = ()
    lock: threading.RLock = field(default_factory=threading.RLock)
    closed: bool = False

    @property
    def behavior(self) -> FamilyBehavior:
        return family_for(self.family)

    @property
    def model_handle(self) -> Any:
        """`llama_model *` for the llama.cpp C API."""
        return self.llama.model

    @property
    def ctx(self) -> Any:
        """`llama_context *` (its KV cache is owned by `session`)."""
        return self.llama.ctx

    @property
    def vocab(self) -> Any:
        """`llama_vocab *`."""
        return self.session.vocab

    @property
    def chat_template(self) -> str | None:
        return self.info.chat_template

    def close(self) -> None:
        """Free the context and weights now (not at garbage collection). Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.llama.close()

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _LoadFailure(Exception):
    """Internal: llama.cpp returned no model or no context."""


def _reason_from_log(default: str) -> str:
    """The most specific thing llama.cpp said about the failure."""
    lines = recent_llama_log(40)
    for marker in ("error loading model:", "unknown model architecture", "failed to", "error"):
        for line in reversed(lines):
            if marker in line.lower():
                text = line.strip()
                if "error loading model:" in text:
                    text = text.split("error loading model:", 1)[1].strip()
                elif ": " in text and text.split(": ", 1)[0].startswith(
                    ("llama_", "ggml_", "load")
                ):
                    text = text.split(": ", 1)[1].strip()
                return text
    return default


class _LoadWatch:
    """Called by llama.cpp between tensors while it loads: reports progress, says go on or stop."""

    def __init__(self, cancel: CancelToken, report: ProgressCallback, detail: str) -> None:
        self.cancel = cancel
        self.report = report
        self.detail = detail
        self.last_percent = 0  # the load's 0% was reported before llama.cpp started

    def __call__(self, fraction: float) -> bool:
        if self.cancel.cancelled:
            return False
        percent = int(fraction * 100)
        if percent > self.last_percent:  # one report per percent, not one per tensor
            self.last_percent = percent
            self.report(
                Progress(stage="load", done=min(fraction, 1.0), total=1.0, detail=self.detail)
            )
        return not self.cancel.cancelled


@functools.cache
def _observed_llama_class() -> type[llama_cpp.Llama]:
    """`llama_cpp.Llama` with the hooks its constructor lacks (the class is built once)."""
    import llama_cpp

    class ObservedLlama(llama_cpp.Llama):
        """A `Llama` whose load reports progress, can be stopped, and prints nothing itself.

        - llama.cpp's progress callback is a field of `llama_model_params`, a struct
          the constructor builds and uses inside itself (llama-cpp-python 0.3.x takes
          no argument for it: abetlen/llama-cpp-python#2340). The `model_params`
          property puts the callback into that struct as the constructor stores it.
        - `verbose` means two things to llama-cpp-python: "do not point file
          descriptors 1 and 2 at /dev/null while the weights load" (we need that: it
          would swallow the language server's protocol and every other thread's
          output) and "print a metadata dump and chat-format notes to sys.stderr"
          (we do not want that in the CLI or the LSP log; llama.cpp's own log, routed
          by llama_log.py, has the same facts). It reads True until the weights are
          loaded, False from then on.
        - an exception in the watch (a failing progress callback, Ctrl-C arriving
          while llama.cpp is in it) cannot cross into C: it stops the load, and is
          raised once llama.cpp has unwound, instead of its "Failed to load model".
        - a constructor that fails after the weights loaded (creating the context)
          frees them at once, not whenever the garbage collector gets to it.
        - the GGUF's chat templates never reach llama-cpp-python, which compiles each
          one in the constructor, unbounded and holding the GIL (Jinja folds constant
          expressions while compiling: `{{ 10 ** 10000000 }}` took 14 s, larger ones
          minutes). Hanlin reads the template from the header itself (`info`) and
          renders it sandboxed and time-bounded (engine/chat/template.py).
        """

        def __init__(self, *args: Any, watch: Callable[[float], bool], **kwargs: Any) -> None:
            self._watch: Callable[[float], bool] | None = watch
            self._watch_error: BaseException | None = None
            # kept for the object's lifetime: llama.cpp holds the pointer in its params
            self._progress_c = llama_cpp.llama_progress_callback(self._on_progress)
            try:
                super().__init__(*args, **kwargs, verbose=True)
            except BaseException:
                self.close()
                if self._watch_error is not None:
                    raise self._watch_error from None
                raise
            finally:
                self._watch = None

        def _on_progress(self, fraction: float, _user_data: Any) -> bool:
            try:
                watch = self._watch
                return True if watch is None else bool(watch(fraction))
            except BaseException as exc:
                self._watch_error = exc
                return False

        @property  # type: ignore[override]
        def model_params(self) -> Any:
            return self.__dict__["model_params"]

        @model_params.setter
        def model_params(self, params: Any) -> None:
            params.progress_callback = self._progress_c
            params.progress_callback_user_data = None
            self.__dict__["model_params"] = params

        @property
        def metadata(self) -> dict[str, str]:
            return self.__dict__["metadata"]

        @metadata.setter
        def metadata(self, values: dict[str, str]) -> None:
            self.__dict__["metadata"] = {
                k: v for k, v in values.items() if not k.startswith("tokenizer.chat_template")
            }

        @property  # type: ignore[override]
        def verbose(self) -> bool:
            return "_model" not in self.__dict__

        @verbose.setter
        def verbose(self, _value: bool) -> None:
            pass  # see the class docstring: derived from the load's stage, not set

        def close(self) -> None:
            if "_stack" in self.__dict__:
                super().close()

    return ObservedLlama


def _construct_llama(
    path: Path,
    *,
    n_gpu_layers: int,
    n_ctx: int,
    threads: int,
    options: LoadOptions,
    flash_attn: bool,
    watch: _LoadWatch,
) -> llama_cpp.Llama:
    """Create the llama-cpp-python object, watched by `watch`; `Cancelled` if it stopped it."""
    try:
        return _observed_llama_class()(
            model_path=str(path),
            n_gpu_layers=n_gpu_layers,
            n_ctx=n_ctx,
            n_batch=min(options.n_batch, n_ctx),
            n_ubatch=min(options.n_batch, n_ctx),
            n_threads=threads,
            n_threads_batch=threads,
            use_mmap=options.use_mmap,
            flash_attn=flash_attn,
            watch=watch,
        )
    except ValueError as exc:  # llama-cpp-python's "Failed to load model from file" and friends
        if watch.cancel.cancelled:
            raise Cancelled(watch.cancel.reason or "Loading the model was cancelled.") from None
        raise _LoadFailure(str(exc)) from exc


def _create(
    path: Path,
    *,
    n_gpu_layers: int,
    n_ctx: int,
    threads: int,
    options: LoadOptions,
    watch: _LoadWatch,
) -> Any:
    try:
        return _construct_llama(
            path,
            n_gpu_layers=n_gpu_layers,
            n_ctx=n_ctx,
            threads=threads,
            options=options,
            flash_attn=options.flash_attn,
            watch=watch,
        )
    except _LoadFailure:
        if not options.flash_attn:
            raise
        # Some model/backend pairs cannot run flash attention; llama.cpp's "auto" would skip it.
        return _construct_llama(
            path,
            n_gpu_layers=n_gpu_layers,
            n_ctx=n_ctx,
            threads=threads,
            options=options,
            flash_attn=False,
            watch=watch,
        )


def _default_threads(hw: HardwareInfo) -> int:
    from hanlin.engine.core.settings import load_settings

    configured = load_settings().settings.threads
    return configured if configured > 0 else max(1, hw.physical_cores)


def load_model(
    path: Path | str,
    *,
    model_id: str | None = None,
    family: str | None = None,
    options: LoadOptions | None = None,
    cancel: CancelToken | None = None,
    on_progress: ProgressCallback | None = None,
) -> LoadedModel:
    """Load a GGUF for chat or completion.

    Raises ModelFileError (missing, not GGUF, truncated) or ModelLoadError
    (llama.cpp refused it), both naming the file and the reason; `Cancelled`
    if `cancel` fires before the model is ready (during llama.cpp's load too:
    it stops at its next tensor). `on_progress` receives "inspect", then
    "load" with done/total = llama.cpp's fraction of 1.0, then "ready".
    """
    from hanlin.engine.runtime.session import LlamaSession

    cancel = cancel or NEVER_CANCELLED
    options = options or LoadOptions()
    path = Path(path).expanduser()
    report = on_progress or (lambda _p: None)
    started = time.perf_counter()

    report(Progress(stage="inspect", detail=str(path)))
    if not path.exists():
        raise ModelFileError(
            f"{path} does not exist", "check the path, or run `hanlin models list`"
        )
    info = read_model_info(path)  # a split model: every shard present and whole, else named
    cancel.raise_if_cancelled()

    hw = detect_hardware()
    fam = family or guess_family(info.architecture, info.name, path)
    threads = options.threads or _default_threads(hw)
    n_ctx = options.n_ctx or default_n_ctx(info.context_length)
    if info.context_length and n_ctx > info.context_length:
        n_ctx = info.context_length
    want_gpu = options.n_gpu_layers != 0 and hw.gpu_offload_supported

    ensure_llama_logs_routed()
    attempts: list[tuple[str, int]] = []
    if want_gpu:
        attempts.append((hw.backend, options.n_gpu_layers))
    attempts.append(("cpu", 0))

    gpu_fallback: str | None = None
    llama = None
    backend = "cpu"
    layers = 0
    for kind, layers in attempts:
        cancel.raise_if_cancelled()
        detail = f"{path.name} ({'GPU: ' + kind if layers else 'CPU'})"
        report(Progress(stage="load", done=0.0, total=1.0, detail=detail))
        clear_recent_log()
        try:
            llama = _create(
                path,
                n_gpu_layers=layers,
                n_ctx=n_ctx,
                threads=threads,
                options=options,
                watch=_LoadWatch(cancel, report, detail),
            )
            backend = kind
            break
        except _LoadFailure as exc:
            reason = _reason_from_log(str(exc))
            if layers != 0:
                gpu_fallback = (
                    f"loading on the GPU ({kind}) failed: {reason}; running on the CPU instead"
                )
                continue
            raise _load_error(path, info, reason) from None
    assert llama is not None

    if cancel.cancelled:
        llama.close()
        cancel.raise_if_cancelled()
    session = LlamaSession(
        llama.model, llama.ctx, llama._model.vocab, n_ctx=llama.n_ctx(), n_batch=llama.n_batch
    )
    model = LoadedModel(
        path=path,
        model_id=model_id or path.stem,
        family=fam,
        n_ctx=llama.n_ctx(),
        backend=backend,
        gpu_fallback=gpu_fallback,
        info=info,
        llama=llama,
        threads=threads,
        n_gpu_layers=layers,
        load_seconds=time.perf_counter() - started,
        session=session,
        options=options,
    )
    report(Progress(stage="ready", done=1, total=1, detail=path.name))
    return model


def _load_error(path: Path, info: GGUFInfo, reason: str) -> ModelLoadError:
    if "unknown model architecture" in reason or "unknown architecture" in reason:
        return ModelLoadError(
            f"llama.cpp cannot load {path}: its architecture '{info.architecture}' "
            f"is not supported by this llama.cpp build ({reason})",
            "update llama-cpp-python, or choose a model from `hanlin models list`",
        )
    return ModelLoadError(
        f"llama.cpp could not load {path}: {reason}",
        f"the file may be damaged or need more memory; see {paths.log_dir() / 'llama.log'}",
    )


class ModelHost:
    """One loaded model per process, behind a lock; loading another closes the old one first."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.current: LoadedModel | None = None

    def get(
        self,
        path: Path | str,
        *,
        model_id: str | None = None,
        family: str | None = None,
        options: LoadOptions | None = None,
        cancel: CancelToken | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> LoadedModel:
        """The model for `path` with these options, loading it (closing the old one) if needed."""
        path = Path(path).expanduser()
        options = options or LoadOptions()
        with self._lock:
            cur = self.current
            if (
                cur is not None
                and not cur.closed
                and cur.path == path
                and cur.options == options
                and (family is None or cur.family == family)
            ):
                return cur
            if cur is not None:
                with cur.lock:  # wait for a running generation to finish
                    cur.close()
                self.current = None
            model = load_model(
                path,
                model_id=model_id,
                family=family,
                options=options,
                cancel=cancel,
                on_progress=on_progress,
            )
            self.current = model
            return model

    def close(self) -> None:
        with self._lock:
            if self.current is not None:
                with self.current.lock:
                    self.current.close()
                self.current = None
