"""`HanlinLanguageServer`: the pygls server object that holds all the state.

Handlers (lsp_server/handlers/) stay thin: they translate LSP to calls on this
object. What lives here:

- the open documents (our own UTF-16-aware store, not pygls' workspace copy),
- the effective settings (`ServerConfig`) and the settings-file watcher,
- the `CompletionService` (model loading in the background, `$/progress`,
  `window/showMessage` on failure),
- one in-flight cancel token per document, so a newer request cancels the
  older one, even mid-generation,
- acceptance statistics (flushed to disk on a timer and on shutdown),
- a hardened read loop (lsp_server/transport.py) so malformed input never
  kills the server.

Stdout is the protocol channel: nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from hanlin import __version__
from hanlin.engine.completion.stats import AcceptanceRecorder
from hanlin.engine.core.cancel import CancelToken, Progress
from hanlin.engine.core.errors import HanlinError
from hanlin.lsp_server.client_log import ClientLogHandler
from hanlin.lsp_server.completion_service import CompletionService, LoadSpec
from hanlin.lsp_server.config import DEFAULTS, ServerConfig, SettingsFileWatcher
from hanlin.lsp_server.documents import DocumentStore
from hanlin.lsp_server.transport import read_messages

__all__ = ["HanlinLanguageServer", "ShownItem", "server_version"]

log = logging.getLogger(__name__)

#: how often the settings file is checked and statistics are flushed
POLL_INTERVAL_S = 2.0
#: how many offered items are remembered for acceptance reports
MAX_TRACKED_ITEMS = 512


def server_version() -> str:
    """The installed distribution's version (from its metadata, never hard-coded)."""
    return __version__


class HanlinProtocol(LanguageServerProtocol):
    """pygls' protocol minus its own document copies (we keep ours in `DocumentStore`)."""

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(
        self, params: types.DidOpenTextDocumentParams
    ) -> Generator[Any, Any, None]:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(
        self, params: types.DidCloseTextDocumentParams
    ) -> Generator[Any, Any, None]:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


@dataclass(slots=True)
class ShownItem:
    """An offered completion, remembered so an acceptance report can be counted.

    `uri`/`offset`/`before` say where it was offered (the last characters before the
    cursor then), so that a later request can tell whether the user typed through it;
    `shown` is set once it was counted as shown (by any of the rules, only once).
    """

    language: str
    text: str
    uri: str = ""
    offset: int = -1
    before: str = ""
    shown: bool = False


#: how many characters before the cursor identify where an item was offered
SHOWN_ANCHOR_CHARS = 64

#: what `hanlin/status` says in each state, and how to get out of it
NO_MODEL_MESSAGE = "No completion model configured"
NO_MODEL_HINT = (
    "set `model` in the editor's Hanlin settings (VS Code: `hanlin.model`) to a catalog id "
    "or a .gguf path, or choose one with `hanlin models use ID --for completion`"
)
TIME_BUDGET_HINT = (
    "raise `timeBudgetMs`, or use a smaller model; the prompt is evaluated in the background "
    "meanwhile, so the next request may answer"
)


class HanlinLanguageServer(LanguageServer):
    """The language server; one instance per process."""

    def __init__(self, client_log: ClientLogHandler | None = None) -> None:
        super().__init__(
            "hanlin-lsp",
            server_version(),
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=HanlinProtocol,
        )
        self.documents = DocumentStore()
        #: initializationOptions as sent (the base that workspace/configuration overlays)
        self.init_options: Any = None
        self.client_config: ServerConfig = DEFAULTS
        self.settings_watcher: SettingsFileWatcher | None = None
        self.service = CompletionService()
        self.acceptance = AcceptanceRecorder()
        #: one generation at a time: the model is a single resource
        self.generation_executor = ThreadPoolExecutor(1, thread_name_prefix="hanlin-complete")
        self.inflight: dict[str, CancelToken] = {}
        self.shown: OrderedDict[str, ShownItem] = OrderedDict()
        self._shown_ids: OrderedDict[str, None] = OrderedDict()
        self._item_ids = itertools.count(1)
        self._session = f"{int(time.time() * 1000):x}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._progress_token: str | None = None
        self._progress_ids = itertools.count(1)
        #: CompletionResult.to_dict() of recent requests, for `hanlin/completionStats`
        self.recent_results: list[dict[str, Any]] = []
        #: the file that owned the last completion request (context ring bookkeeping)
        self.last_uri: str | None = None
        self.last_line: dict[str, int] = {}
        self.context_ring: Any = None
        self.repo_name: str | None = None
        #: the process exit status `exit` asked for
        self.exit_code = 0
        #: sends log records as window/logMessage once the client is connected (main.py)
        self.client_log = client_log
        #: the last item offered per document (for counting it as shown, see note_request)
        self.last_offer: dict[str, str] = {}
        #: the `reason` of the last `hanlin/status` (e.g. "time"); None when there is none
        self.status_reason: str | None = None

    # -- transport --------------------------------------------------------------
    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve over stdio with the hardened read loop."""
        self._stop_event = threading.Event()
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            asyncio.run(self._serve(reader))
        except BrokenPipeError:
            log.error("the client closed the connection")
        except SystemExit as exc:  # `exit`: 0 after `shutdown`, 1 without (LSP)
            self.exit_code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        """Serve one client over TCP (for debugging), with the hardened read loop."""
        self._stop_event = threading.Event()

        async def serve() -> None:
            done = asyncio.Event()

            async def on_connect(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter
            ) -> None:
                self.protocol.set_writer(writer)  # type: ignore[arg-type]
                try:
                    await self._serve(reader)
                finally:
                    done.set()

            server = await asyncio.start_server(on_connect, host, port)
            log.info("listening on %s:%d", host, port)
            async with server:
                await done.wait()

        try:
            asyncio.run(serve())
        except SystemExit as exc:
            self.exit_code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()

    async def _serve(self, reader: Any) -> None:
        self._loop = asyncio.get_running_loop()
        assert self._stop_event is not None
        await read_messages(self._stop_event, reader, self.protocol, self.report_server_error)

    def shutdown(self) -> None:
        self.disconnect_client_log()
        for token in list(self.inflight.values()):
            token.cancel("shutting down")
        self.flush_stats()
        self.service.close()
        self.generation_executor.shutdown(wait=False, cancel_futures=True)
        super().shutdown()

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Malformed input and handler bugs go to the log; a user-facing popup is
        # reserved for things the user can act on (see show_error).
        log.error("server error (%s): %s", getattr(source, "__name__", source), error)

    # -- helpers for handlers ---------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run a background coroutine, keeping a reference so it is not collected."""
        task = self.loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_task_failure)
        return task

    def call_in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the event loop thread (safe to call from any thread)."""
        if self._loop is None or self._loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop already closed at exit
            self._loop.call_soon_threadsafe(fn, *args)

    def show_error(self, error: HanlinError) -> None:
        """The one place HanlinErrors become `window/showMessage`."""
        log.error("%s", error)
        self.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=f"Hanlin: {error}")
        )

    # -- the client's log -----------------------------------------------------------
    def connect_client_log(self) -> None:
        """From now on, log records go to the client as `window/logMessage`."""
        if self.client_log is not None:
            self.client_log.connect(self._send_log_line)

    def disconnect_client_log(self) -> None:
        if self.client_log is not None:
            self.client_log.connect(None)

    def _send_log_line(self, kind: types.MessageType, text: str) -> None:
        params = types.LogMessageParams(type=kind, message=text)
        loop = self._loop
        if loop is None or loop.is_closed():
            raise RuntimeError("no event loop to send the log line from")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.window_log_message(params)
        else:  # a worker thread (model loading, generation): hand it to the loop
            self.call_in_loop(self.window_log_message, params)

    # -- hanlin/status ---------------------------------------------------------------
    def status_params(self, reason: str | None = None) -> dict[str, Any]:
        """What `hanlin/status` carries: the model's state, a sentence, what to do next.

        States: "idle" (no model configured), "loading", "ready", "failed". `reason`
        says why the last request got nothing although the model is ready ("time":
        it ran out of its budget); it is null once a request answers again.
        """
        service = self.service
        model = service.model_name or (service.wanted.model if service.wanted else None)
        state = service.state
        message: str | None
        hint: str | None = None
        if state == "idle":
            message, hint = NO_MODEL_MESSAGE, NO_MODEL_HINT
        elif state == "loading":
            message = f"Loading {model}" if model else "Loading the completion model"
        elif state == "failed":
            error = service.error
            message = error.message if error else "The completion model failed to load"
            hint = error.hint if error else None
        else:
            message = f"Ready: {model}"
        if reason == "time":
            budget = self.client_config.time_budget_ms
            message = f"The last completion ran out of its {budget} ms time budget"
            hint = TIME_BUDGET_HINT
        return {
            "state": state,
            "model": model,
            "template": service.template_name,
            "backend": service.backend,
            "gpuFallback": service.gpu_fallback,
            "message": message,
            "hint": hint,
            "reason": reason,
        }

    def notify_status(self, reason: str | None = None) -> None:
        """`hanlin/status`: lets editor extensions show a status bar item."""
        self.status_reason = reason
        self.protocol.notify("hanlin/status", self.status_params(reason))

    def note_result(
        self,
        stop_reason: str | None,
        text: str,
        prompt_tokens: int | None,
        *,
        logged: bool = False,
    ) -> None:
        """After each request: say so when the time budget left it empty; clear it after.

        One log line for it: none here when the completion service logged the engine's
        budget note already (`logged`).
        """
        if not text and stop_reason == "time":
            if not logged:
                log.info(
                    "no completion: the request ran out of its %d ms budget (prompt %s tokens)",
                    self.client_config.time_budget_ms,
                    prompt_tokens if prompt_tokens is not None else "?",
                )
            self.notify_status("time")
        elif text and self.status_reason is not None:
            self.notify_status()

    # -- shown items -----------------------------------------------------------------
    def remember_item(
        self, language: str, text: str, *, uri: str = "", offset: int = -1, before: str = ""
    ) -> str:
        item_id = f"{self._session}-{next(self._item_ids)}"
        self.shown[item_id] = ShownItem(
            language=language, text=text, uri=uri, offset=offset, before=before
        )
        while len(self.shown) > MAX_TRACKED_ITEMS:
            self.shown.popitem(last=False)
        if uri:
            self.last_offer[uri] = item_id
        return item_id

    def count_shown(self, item: ShownItem, item_id: str | None = None) -> None:
        """Count an item as shown, once, whichever rule noticed it first.

        Ids are remembered, so an item reported again after it was accepted (and
        forgotten), or one this process did not offer, is not counted twice; an item
        without any id is counted each time it is reported.
        """
        if item.shown:
            return
        if isinstance(item_id, str):
            if item_id in self._shown_ids:
                return
            self._shown_ids[item_id] = None
            while len(self._shown_ids) > MAX_TRACKED_ITEMS:
                self._shown_ids.popitem(last=False)
        item.shown = True
        self.acceptance.shown(item.language)

    def note_request(self, uri: str, text: str, offset: int) -> None:
        """A new request for `uri` at `offset`: was the item offered last shown?

        Clients that send no `didShowCompletion` (VS Code) still ask again on the
        next keystroke. The last item offered for the document counts as shown when
        the cursor is still where it was offered, or the user has typed (part of)
        it since: the text between the two positions is a start of the item, and
        the characters before the first position are still the same. Anything else
        (typed something different, moved away, edited before it) is not counted.
        """
        item_id = self.last_offer.get(uri)
        item = self.shown.get(item_id) if item_id else None
        if item is None or item.shown or item.offset < 0:
            return
        start = item.offset
        if offset < start or offset - start > len(item.text):
            return
        if text[max(0, start - len(item.before)) : start] != item.before:
            return
        if item.text.startswith(text[start:offset]):
            self.count_shown(item, item_id)

    def flush_stats(self) -> None:
        try:
            self.acceptance.flush()
        except Exception:
            log.exception("could not write completion statistics")

    # -- settings and model ---------------------------------------------------------
    @property
    def config(self) -> ServerConfig:
        return self.client_config

    def effective_spec(self) -> LoadSpec | None:
        """The model to load now: the client's setting, else the desktop app's choice."""
        cfg = self.client_config
        watcher = self.settings_watcher
        if cfg.endpoint:  # a remote server: `model` is its model (empty: the server's first)
            return LoadSpec(
                model=cfg.model or "", response_cache=cfg.response_cache, endpoint=cfg.endpoint
            )
        model = cfg.model or (watcher.completion_model if watcher else None)
        if not model:
            return None
        threads = cfg.threads or (watcher.threads if watcher else None)
        return LoadSpec(
            model=model,
            kv_reuse=cfg.kv_reuse,
            response_cache=cfg.response_cache,
            context_length=cfg.context_length,
            threads=threads,
            reuse_chunk=max(0, cfg.cache_reuse),
            drafts=cfg.drafts,
            persist_kv=cfg.persist_kv,
        )

    def apply_settings(self) -> None:
        """(Re)load the model if the effective choice changed; report progress."""
        spec = self.effective_spec()
        self.service.idle_work = self.client_config.idle_work
        if spec is None and self.service.wanted is None:
            if self.service.state == "idle":
                log.info("%s: %s", NO_MODEL_MESSAGE, NO_MODEL_HINT)
                self.notify_status()
            return
        started = self.service.start_loading(
            spec,
            on_progress=lambda p: self.call_in_loop(self._on_load_progress, p),
            on_done=lambda err: self.call_in_loop(self._on_load_done, err),
        )
        if not started:
            return
        self.notify_status()
        if spec is not None:
            log.info("loading completion model %s", spec.model)
            self.spawn(self._begin_progress(spec.model))

    def _client_supports_progress(self) -> bool:
        caps = self.client_capabilities
        return bool(caps and caps.window and caps.window.work_done_progress)

    async def _begin_progress(self, model: str) -> None:
        if not self._client_supports_progress():
            return
        token = f"hanlin-load-{next(self._progress_ids)}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception as exc:
            log.info("client refused a progress token: %s", exc)
            return
        if self.service.state != "loading":
            # finished before the client answered: still close the bar it opened
            self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title="Hanlin"))
            self.work_done_progress.end(
                token, types.WorkDoneProgressEnd(message=self.service.state)
            )
            return
        self._progress_token = token
        self.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title="Hanlin", message=f"Loading {model}", percentage=0, cancellable=False
            ),
        )

    def _on_load_progress(self, progress: Progress) -> None:
        token = self._progress_token
        if token is None:
            return
        fraction = progress.fraction
        self.work_done_progress.report(
            token,
            types.WorkDoneProgressReport(
                message=progress.detail or progress.stage,
                percentage=int(fraction * 100) if fraction is not None else None,
            ),
        )

    def _on_load_done(self, error: HanlinError | None) -> None:
        token, self._progress_token = self._progress_token, None
        if token is not None:
            message = f"Ready: {self.service.model_name}" if error is None else "Failed"
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
        self.notify_status()
        if error is not None:
            self.show_error(error)
        else:
            log.info(
                "completion model ready: %s (template %s, %s)",
                self.service.model_name,
                self.service.template_name,
                self.service.backend,
            )
            self._warm_after_load()
            if fallback := self.service.gpu_fallback:
                # never silently slower: say why the GPU is not used
                self.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Warning, message=f"Hanlin: {fallback}"
                    )
                )

    def _warm_after_load(self) -> None:
        """A model that became ready while a file was open: read that file's prompt now."""
        from hanlin.lsp_server.handlers.context import warm_document

        opened = self.documents.all()
        uri = self.last_uri or (opened[-1].uri if opened else None)
        if uri is not None:
            warm_document(self, uri)

    async def poll_settings_forever(self) -> None:
        """Follow the desktop app's settings file and flush statistics, on a timer."""
        while not (self._stop_event and self._stop_event.is_set()):
            await asyncio.sleep(POLL_INTERVAL_S)
            watcher = self.settings_watcher
            if watcher is not None and watcher.poll() and not self.client_config.model:
                log.info(
                    "settings file changed: completion model is now %s", watcher.completion_model
                )
                self.apply_settings()
            if self.acceptance.has_pending:
                await self.loop.run_in_executor(None, self.flush_stats)

    async def run_blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking completion call on the generation thread and await it."""
        return await self.loop.run_in_executor(
            self.generation_executor, functools.partial(fn, *args, **kwargs)
        )


def _log_task_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
