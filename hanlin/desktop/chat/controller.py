"""The chat's state and actions: which conversation is open, and everything done to it.

Why a controller apart from the widgets: every action (send, stop, regenerate,
edit, switch model, thinking on/off, system prompt, export, delete) is a few lines
of bookkeeping across three things that must agree — the history database, the
two list models the views show, and the one generation running on the
`TaskRunner`. Keeping that here lets the view stay a thin layer over the models,
and lets tests drive the real thing without clicking.

Streaming: the worker reports snapshots (coalesced by the runner); the controller
keeps only the newest and pushes it into the message model on a timer at the
display's rate (`stream_interval_ms`, 33 ms; stretched when an update takes longer), so
a fast model never floods the GUI with repaints.
Stop takes effect at once in the window; the worker stops at its next token and
its partial answer is saved. A stopped or replaced answer's task still reports back
when it ends (its outcome is never dropped as stale): an answer that never got a token
is then removed from the history, so sending again while the previous answer is still
loading leaves no empty message behind. Only the newest answer moves the status line.

Sampling: the request carries the user's per-model settings over the catalog entry's
values; the engine adds the family's recommendation for the reply's mode below both
(engine/chat/sampling.py).

Remote models: the models of the `[[remote]]` servers are listed on the runner
(`scan_remotes_async`, never on the GUI thread) and join the installed ones in the
picker as `NAME/MODEL`; their answers stream through the same worker. An answer cut
off by a lost connection stays in the history, marked interrupted, with a warning.

Long chats reopen instantly: leaving a conversation (opening another, quitting) saves the
loaded model's KV cache on the runner (`save_kv_state_async`); the next answer waits for
that save, and restores a saved state of its own conversation if one matches its prompt
(engine/runtime/kv_state_store.py), so it evaluates only its new tokens.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from hanlin.desktop.chat.generation import (
    GenerationOutcome,
    GenerationRequest,
    LazyModelHost,
    ModelStatus,
    StreamSnapshot,
    run_generation,
    save_kv_state,
)
from hanlin.desktop.chat.item_models import ChatRow, ConversationListModel, MessageListModel
from hanlin.desktop.tasks import TaskHandle, TaskRunner
from hanlin.engine.chat.attachments import Attachment
from hanlin.engine.chat.history import Conversation, History
from hanlin.engine.core.atomic import write_text_atomic
from hanlin.engine.core.errors import HanlinError, ModelNotInstalledError
from hanlin.engine.core.settings import ModelSettings, load_settings, update_settings
from hanlin.engine.models.families import family_for

log = logging.getLogger(__name__)


#: how long an answer waits for the KV cache save before it (seconds; a save takes < 1 s)
_KV_SAVE_WAIT_S = 60.0


#: the most of a core the GUI thread may spend on showing an answer as it streams
GUI_CPU_SHARE = 0.05


class StoreLike(Protocol):
    def installed(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """An installed model the chat can use."""

    id: str
    name: str
    family: str | None
    path: Path
    #: the user can turn thinking on/off for this model (Qwen3)
    thinking_switch: bool
    #: the model emits reasoning blocks at all
    reasoning: bool
    entry: Any = None  # CatalogEntry | None
    #: the model on a remote server (engine/remote/endpoint.RemoteTarget); None: a local file
    remote: Any = None

    @property
    def context_length(self) -> int | None:
        return getattr(self.entry, "context_length", None)

    @property
    def is_remote(self) -> bool:
        return self.remote is not None


@dataclass(frozen=True, slots=True)
class ChatStatus:
    """What the status line shows."""

    model_id: str | None = None
    backend: str | None = None
    gpu_fallback: str | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    #: speculative decoding: the share of drafted tokens the model accepted (None: no drafts)
    acceptance_rate: float | None = None
    #: "idle", "loading", "thinking", "answering", "stopped"
    phase: str = "idle"
    #: while loading: how far llama.cpp got with the weights (0..1); None = not known yet
    load_fraction: float | None = None


class ChatController(QObject):
    conversationOpened = Signal(int)  # id, -1 when none is open
    conversationSettingsChanged = Signal()  # model / thinking / system prompt
    generatingChanged = Signal(bool)
    statusChanged = Signal(object)  # ChatStatus
    errorRaised = Signal(object)  # an exception (hanlin.desktop.errors describes it)
    warningRaised = Signal(str, str)  # message, hint
    modelsChanged = Signal()
    answerFinished = Signal(object)  # GenerationOutcome

    def __init__(
        self,
        history: History,
        runner: TaskRunner,
        store: StoreLike,
        *,
        host: LazyModelHost | None = None,
        stream_interval_ms: int = 33,
        scan_on_demand: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.history = history
        self.runner = runner
        self.store = store
        self.host = host or LazyModelHost()
        self.conversations = ConversationListModel(history, self)
        self.messages = MessageListModel(self)
        self.current_id: int | None = None
        self.status = ChatStatus()
        self._models: list[ModelChoice] | None = None
        self._scan: TaskHandle[list[ModelChoice]] | None = None
        #: models of the `[[remote]]` servers (None: not listed yet) and why some are missing
        self._remote_models: list[ModelChoice] | None = None
        self.remote_problems: list[str] = []
        #: False: never read the store on the GUI thread; wait for scan_models_async()
        self._scan_on_demand = scan_on_demand
        self._pending: dict[str, Any] = {}  # per-conversation choices made before one exists
        self._handle: TaskHandle[GenerationOutcome] | None = None
        #: set when the newest save of the loaded model's KV cache is done (None: none ran)
        self._kv_saved: threading.Event | None = None
        self._streaming_id: int | None = None
        #: the answer message of the newest generation started (stopped ones included)
        self._latest_id: int | None = None
        self._snapshot: StreamSnapshot | None = None
        self._timer = QTimer(self)
        self._base_interval = stream_interval_ms
        self._timer.setInterval(stream_interval_ms)
        self._timer.timeout.connect(self._flush_snapshot)
        # the sidebar's order changes after a send / an answer; refreshing it on the next
        # loop iteration splits that work from the send itself (shorter GUI stalls)
        self._list_timer = QTimer(self)
        self._list_timer.setSingleShot(True)
        self._list_timer.setInterval(0)
        self._list_timer.timeout.connect(self.conversations.refresh)

    # -- models -----------------------------------------------------------------------

    def available_models(self) -> list[ModelChoice]:
        """Installed models with the chat role (imports count: they may chat).

        Empty while a `scan_models_async()` is under way (the picker says so).
        """
        if self._models is None:
            if self._scan is not None or not self._scan_on_demand:
                return []
            self._models = self._scan_models()
        return self._models + (self._remote_models or [])

    @property
    def models_ready(self) -> bool:
        return self._models is not None

    def scan_models_async(self) -> None:
        """Read the installed models on the runner (start-up: the store's imports and
        manifest read stay off the GUI thread); `modelsChanged` fires when done."""

        def done(models: list[ModelChoice]) -> None:
            self._scan = None
            self._models = models
            self.modelsChanged.emit()
            self.conversationSettingsChanged.emit()

        def failed(exc: BaseException) -> None:
            self._scan = None
            self._models = []
            self.modelsChanged.emit()
            self.errorRaised.emit(exc)

        self._scan = self.runner.submit(
            lambda _cancel, _progress: self._scan_models(),
            on_done=done,
            on_error=failed,
            key="scan-models",
        )
        self.scan_remotes_async()

    @property
    def remotes_ready(self) -> bool:
        """The `[[remote]]` servers were asked for their models (tests, the picker)."""
        return self._remote_models is not None

    def scan_remotes_async(self) -> None:
        """Ask every `[[remote]]` server for its models, on the runner (a dead server takes
        seconds to give up); `modelsChanged` fires with the result. Servers that fail are
        left out of the picker and named in `remote_problems`."""
        from hanlin.desktop.chat.remote_models import remote_choices

        def done(result: tuple[list[ModelChoice], list[str]]) -> None:
            self._remote_models, self.remote_problems = result
            self.modelsChanged.emit()
            self.conversationSettingsChanged.emit()

        def failed(exc: BaseException) -> None:
            self._remote_models, self.remote_problems = [], [str(exc)]
            self.modelsChanged.emit()

        self.runner.submit(
            lambda _cancel, _progress: remote_choices(),
            on_done=done,
            on_error=failed,
            key="scan-remotes",
        )

    def _scan_models(self) -> list[ModelChoice]:
        choices = []
        for m in self.store.installed():
            entry = getattr(m, "catalog_entry", None)
            if entry is not None and "chat" not in getattr(entry, "roles", ("chat",)):
                continue
            family = getattr(m, "family", None) or getattr(entry, "family", None)
            behavior = family_for(family)
            choices.append(
                ModelChoice(
                    id=m.id,
                    name=getattr(entry, "name", None) or m.id,
                    family=family,
                    path=Path(m.path),
                    thinking_switch=behavior.thinking_switch,
                    reasoning=behavior.reasoning,
                    entry=entry,
                )
            )
        return choices

    def reload_models(self) -> None:
        """The installed set changed (Models page): rescan and tell the picker."""
        self._models = None
        self._scan = None
        self._models = self._scan_models()
        self.modelsChanged.emit()
        self.conversationSettingsChanged.emit()

    def preload_model(self) -> None:
        """Load the open conversation's model with its current settings now, on the runner
        (its context length was just raised), so the next answer does not wait for it."""
        from hanlin.desktop.chat.generation import load_for, model_status

        model, conv = self.current_model(), self.current_conversation()
        if model is None or conv is None or model.is_remote:
            return
        request, host = self._request(model, conv), self.host
        self.runner.submit(
            lambda cancel, _progress: model_status(load_for(request, host, cancel)),
            on_done=self._show_model_status,
            on_error=self.errorRaised.emit,
            key="preload-model",
        )

    def model_choice(self, model_id: str | None) -> ModelChoice | None:
        found = next((m for m in self.available_models() if m.id == model_id), None)
        if found is None and model_id and "/" in model_id and self._models is not None:
            # a conversation's remote model whose server did not list it (down, or not
            # asked yet): keep it, so the answer goes there and says what is wrong
            from hanlin.desktop.chat.remote_models import choice_for_ref

            found = choice_for_ref(model_id)
        return found

    def default_model(self) -> ModelChoice | None:
        preferred = load_settings().settings.chat_model
        return self.model_choice(preferred) or next(iter(self.available_models()), None)

    def current_model(self) -> ModelChoice | None:
        """The model the open conversation uses (its own choice, else the default)."""
        conv = self.current_conversation()
        wanted = conv.model_id if conv else self._pending.get("model_id")
        return self.model_choice(wanted) or self.default_model()

    # -- conversations ----------------------------------------------------------------

    def current_conversation(self) -> Conversation | None:
        if self.current_id is None:
            return None
        try:
            return self.history.get(self.current_id)
        except HanlinError:
            return None

    def conversation_thinking(self) -> bool:
        conv = self.current_conversation()
        return conv.thinking if conv else bool(self._pending.get("thinking", True))

    def conversation_system_prompt(self) -> str:
        conv = self.current_conversation()
        return conv.system_prompt if conv else str(self._pending.get("system_prompt", ""))

    def open_conversation(self, conversation_id: int | None) -> None:
        if self.current_id is not None and conversation_id != self.current_id:
            self.save_kv_state_async()  # leaving a conversation: its cache goes to disk
        if conversation_id is None:
            self.current_id = None
            self.messages.set_rows([])
            self.conversationOpened.emit(-1)
            self.conversationSettingsChanged.emit()
            return
        conv = self.history.get(conversation_id)
        self.current_id = conv.id
        self._pending.clear()
        rows = [ChatRow.from_stored(m) for m in self.history.messages(conv.id)]
        if self._streaming_id is not None:
            rows = [replace(r, streaming=True) if r.id == self._streaming_id else r for r in rows]
        self.messages.set_rows(rows)
        self.conversationOpened.emit(conv.id)
        self.conversationSettingsChanged.emit()

    def new_conversation(self) -> int:
        """Open a fresh conversation (re-using the open one if it is still empty)."""
        conv = self.current_conversation()
        if conv is not None and not self.history.messages(conv.id):
            self.open_conversation(conv.id)
            return conv.id
        model = self.current_model()
        # a new conversation keeps the model but starts with thinking on and no system prompt
        conv = self.history.create(model_id=model.id if model else None)
        self.conversations.refresh()
        self.open_conversation(conv.id)
        return conv.id

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self.history.rename(conversation_id, title)
        self.conversations.refresh()

    def delete_conversation(self, conversation_id: int) -> None:
        if conversation_id == self.current_id and self.is_generating():
            self.stop()
        self.history.delete(conversation_id)
        self.conversations.refresh()
        if conversation_id == self.current_id:
            remaining = self.history.list()
            self.open_conversation(remaining[0].id if remaining else None)

    def search(self, text: str) -> None:
        self.conversations.set_filter(text)

    def set_model(self, model_id: str) -> None:
        """Use this model for the open conversation (and as the default for new ones)."""
        if self.model_choice(model_id) is None:
            raise ModelNotInstalledError(
                f"The model {model_id!r} is not installed.",
                "download or import it on the Models page",
            )
        if self.current_id is not None:
            self.history.update(self.current_id, model_id=model_id)
        else:
            self._pending["model_id"] = model_id
        loaded = load_settings()
        if loaded.problem is None and loaded.settings.chat_model != model_id:
            update_settings(chat_model=model_id)  # merges under the settings lock
        self.conversationSettingsChanged.emit()

    def set_thinking(self, on: bool) -> None:
        if self.current_id is not None:
            self.history.update(self.current_id, thinking=on)
        else:
            self._pending["thinking"] = on
        self.conversationSettingsChanged.emit()

    def set_system_prompt(self, text: str) -> None:
        if self.current_id is not None:
            self.history.update(self.current_id, system_prompt=text)
        else:
            self._pending["system_prompt"] = text
        self.conversationSettingsChanged.emit()

    # -- export -----------------------------------------------------------------------

    def export(self, path: Path, fmt: str | None = None) -> Path:
        """Write the open conversation to `path` as Markdown (.md) or JSON (.json)."""
        if self.current_id is None:
            raise HanlinError("There is no conversation to export.", "open or start one first")
        fmt = fmt or ("json" if path.suffix.lower() == ".json" else "markdown")
        if fmt == "json":
            text = json.dumps(
                self.history.export_json(self.current_id), indent=2, ensure_ascii=False
            )
        else:
            text = self.history.export_markdown(self.current_id)
        try:
            write_text_atomic(path, text + ("\n" if fmt == "json" else ""))
        except OSError as exc:
            raise HanlinError(f"Could not write {path}: {exc}", "choose another folder") from exc
        return path

    # -- generation -------------------------------------------------------------------

    def is_generating(self) -> bool:
        return self._streaming_id is not None

    def send(self, text: str, attachments: Sequence[Attachment] = ()) -> bool:
        """Send a user message (with files: composer_attach.py) and start the answer.

        False if nothing was sent."""
        text = text.strip()
        if not text and not attachments:
            return False
        if self.is_generating():
            self.stop()
        try:
            model = self._require_model()
            if self.current_id is None:
                self._create_from_pending(model)
            assert self.current_id is not None
            msg = self.history.append(self.current_id, "user", text, attachments=attachments)
        except HanlinError as exc:
            self.errorRaised.emit(exc)
            return False
        self.messages.append(ChatRow.from_stored(msg))
        self._start_generation()
        self._refresh_list_soon()
        return True

    def stop(self) -> None:
        """Stop the answer now: the window stops at once, the worker at its next token."""
        if self._handle is not None:
            self._handle.cancel("Stopped by the user.")
        if self._streaming_id is not None:
            self._flush_snapshot()
            self.messages.update(self._streaming_id, streaming=False)
            self._streaming_id = None
            self._timer.stop()
            self._set_status(phase="stopped")
            self.generatingChanged.emit(False)

    def regenerate(self) -> bool:
        """Answer the last user message again (drops the last answer)."""
        if self.current_id is None:
            return False
        self.stop()
        rows = self.messages.rows()
        if not rows:
            return False
        last_user = max((i for i, r in enumerate(rows) if r.role == "user"), default=-1)
        if last_user < 0:
            return False
        if last_user + 1 < len(rows):
            self.history.truncate_after(self.current_id, rows[last_user].id)
            self.messages.remove_from(last_user + 1)
        return self._start_generation()

    def edit(self, message_id: int, new_text: str) -> bool:
        """Replace a user message and continue the conversation from there."""
        new_text = new_text.strip()
        if self.current_id is None or not new_text:
            return False
        row = self.messages.row_of(message_id)
        if row < 0 or self.messages.row(row).role != "user":
            return False
        self.stop()
        files = self.messages.row(row).attachments  # an edit keeps the message's files
        self.history.truncate_after(self.current_id, message_id, inclusive=True)
        self.messages.remove_from(row)
        msg = self.history.append(self.current_id, "user", new_text, attachments=files)
        self.messages.append(ChatRow.from_stored(msg))
        return self._start_generation()

    def _require_model(self) -> ModelChoice:
        model = self.current_model()
        if model is None:
            raise ModelNotInstalledError(
                "No chat model is installed.",
                "open the Models page (Ctrl+2) to download one, or import a GGUF file",
            )
        return model

    def _create_from_pending(self, model: ModelChoice) -> None:
        conv = self.history.create(
            model_id=model.id,
            system_prompt=str(self._pending.get("system_prompt", "")),
            thinking=bool(self._pending.get("thinking", True)),
        )
        self._pending.clear()
        self.current_id = conv.id
        self.messages.set_rows([])
        self.conversations.refresh()
        self.conversationOpened.emit(conv.id)

    def _request(self, model: ModelChoice, conv: Conversation) -> GenerationRequest:
        from hanlin.engine.chat.sampling import user_sampling

        overrides: ModelSettings = load_settings().settings.model(model.id)
        if model.is_remote:  # the server knows its model: send only what the user set
            sampling = user_sampling(overrides.to_dict())
            return GenerationRequest(
                conversation_id=conv.id,
                model_id=model.id,
                model_path=model.path,
                family=model.family,
                turns=self.history.model_turns(conv.id),
                thinking=conv.thinking if model.thinking_switch else True,
                sampling=sampling,
                max_tokens=sampling.max_tokens,
                n_ctx=None,
                n_gpu_layers=0,
                remote=model.remote,
            )
        # what the user set, over what the catalog entry says; the family fills in the rest
        sampling = user_sampling(overrides.to_dict()).over(getattr(model.entry, "sampling", None))
        return GenerationRequest(
            conversation_id=conv.id,
            model_id=model.id,
            model_path=model.path,
            family=model.family,
            turns=self.history.model_turns(conv.id),
            thinking=conv.thinking if model.thinking_switch else True,
            sampling=sampling,
            max_tokens=sampling.max_tokens,
            n_ctx=overrides.n_ctx,  # None: the runtime picks what fits
            n_gpu_layers=-1 if overrides.n_gpu_layers is None else overrides.n_gpu_layers,
            speculative=overrides.speculative,
            draft_model=overrides.draft_model,
        )

    def _start_generation(self) -> bool:
        conv = self.current_conversation()
        if conv is None:
            return False
        try:
            model = self._require_model()
            if conv.model_id != model.id:
                conv = self.history.update(conv.id, model_id=model.id)
            request = self._request(model, conv)
            writer = self.history.stream_assistant(conv.id, model_id=model.id)
        except HanlinError as exc:
            self.errorRaised.emit(exc)
            return False
        row = ChatRow(
            id=writer.message_id,
            role="assistant",
            content="",
            complete=False,
            streaming=True,
            model_id=model.id,
        )
        self.messages.append(row)
        self._streaming_id = self._latest_id = writer.message_id
        self._snapshot = None
        host = self.host
        saving = self._kv_saved

        def work(cancel, on_progress):
            if saving is not None:  # the cache being saved must not be replaced before it is
                saving.wait(_KV_SAVE_WAIT_S)
            return run_generation(request, writer, host, cancel, on_progress)

        # no `key`: a newer answer must not make this one's outcome stale, or an answer
        # stopped before its first token would stay in the history, empty
        self._handle = self.runner.submit(
            work,
            on_done=self._on_done,
            on_error=lambda exc, mid=writer.message_id: self._on_error(mid, exc),
            on_cancelled=lambda mid=writer.message_id: self._on_cancelled(mid),
            on_progress=self._on_progress,
        )
        self._set_status(
            model_id=model.id,
            phase="loading",
            load_fraction=None,
            ttft_s=None,
            tokens_per_s=None,
            acceptance_rate=None,
        )
        self._timer.start(self._base_interval)
        self.generatingChanged.emit(True)
        return True

    def _on_progress(self, snapshot: StreamSnapshot) -> None:
        if snapshot.message_id == self._streaming_id:
            self._snapshot = snapshot

    def _flush_snapshot(self) -> None:
        snap, self._snapshot = self._snapshot, None
        if snap is None or snap.message_id != self._streaming_id:
            return
        if snap.phase != "loading":
            self.messages.update(
                snap.message_id,
                content=snap.content,
                thinking=snap.thinking or None,
                thinking_s=snap.thinking_s,
            )
            # at most the display's rate (~30 Hz), and all the GUI thread's work since the
            # last update (this one, the repaint it caused, the progress it received) under
            # GUI_CPU_SHARE of a core: the GUI thread shares the cores llama.cpp decodes on
            now, cpu = time.perf_counter(), time.thread_time()
            mark, self._frame_mark = getattr(self, "_frame_mark", None), (now, cpu)
            if mark is not None and now - mark[0] < 1.0:
                busy_ms = (cpu - mark[1]) * 1000
                interval = int(min(500, max(self._base_interval, busy_ms / GUI_CPU_SHARE)))
                if interval != self._timer.interval():
                    self._timer.setInterval(interval)
        load = snap.load if snap.phase == "loading" else None
        fraction = load.fraction if load is not None and load.stage == "load" else None
        if snap.phase != self.status.phase or fraction != self.status.load_fraction:
            self._set_status(phase=snap.phase, load_fraction=fraction)

    def _on_done(self, outcome: GenerationOutcome) -> None:
        was_streaming = self._streaming_id == outcome.message_id
        latest = self._latest_id == outcome.message_id
        if outcome.stats.get("stop_reason") == "interrupted":
            self._on_interrupted(outcome, was_streaming, latest)
            return
        if outcome.stopped and not outcome.content and not outcome.thinking:
            # stopped before the first token: no empty answer is kept
            self._drop_if_empty(outcome.message_id)
            if latest:
                self._show_model_status(outcome.model)
                self._set_status(phase="stopped")
            self._finish_stream(was_streaming, latest)
            self.answerFinished.emit(outcome)
            return
        self.messages.update(
            outcome.message_id,
            content=outcome.content,
            thinking=outcome.thinking,
            thinking_s=outcome.thinking_s,
            stats=outcome.stats,
            complete=True,
            streaming=False,
        )
        if latest:
            self._show_model_status(outcome.model)
            self._set_status(
                ttft_s=outcome.stats.get("ttft_s"),
                tokens_per_s=outcome.stats.get("tokens_per_s"),
                acceptance_rate=outcome.stats.get("acceptance_rate"),
                phase="stopped" if outcome.stopped else "idle",
            )
            if outcome.stats.get("draft_problem"):  # answered without the draft model
                self.warningRaised.emit(
                    f"{outcome.stats['draft_problem']}. The answer was written without it.",
                    outcome.stats.get("draft_problem_hint") or "",
                )
        self._finish_stream(was_streaming, latest)
        self.answerFinished.emit(outcome)

    def _on_interrupted(
        self, outcome: GenerationOutcome, was_streaming: bool, latest: bool
    ) -> None:
        """The connection to a remote server broke mid-answer: keep the partial answer,
        marked interrupted (not complete), and say what happened."""
        self.messages.update(
            outcome.message_id,
            content=outcome.content,
            thinking=outcome.thinking,
            thinking_s=outcome.thinking_s,
            stats=outcome.stats,
            complete=False,
            streaming=False,
        )
        if latest:
            self._show_model_status(outcome.model)
            self._set_status(phase="idle")
            self.warningRaised.emit(
                f"{outcome.stats.get('error') or 'The answer was cut off.'} "
                "The partial answer is kept.",
                outcome.stats.get("error_hint") or "Regenerate to try again",
            )
        self._finish_stream(was_streaming, latest)
        self.answerFinished.emit(outcome)

    def _on_error(self, message_id: int, exc: BaseException) -> None:
        was_streaming = self._streaming_id == message_id
        latest = self._latest_id == message_id
        self._drop_if_empty(message_id)
        if latest:
            self._set_status(phase="idle")
        self._finish_stream(was_streaming, latest)
        if latest:  # a replaced answer's failure is not news: the newer one reports its own
            self.errorRaised.emit(exc)

    def _on_cancelled(self, message_id: int) -> None:
        """Stopped before the answer began (e.g. while the model loaded)."""
        was_streaming = self._streaming_id == message_id
        latest = self._latest_id == message_id
        self._drop_if_empty(message_id)
        if latest:
            self._set_status(phase="stopped")
        self._finish_stream(was_streaming, latest)

    def _drop_if_empty(self, message_id: int) -> None:
        """An answer that never got a token is removed; a partial one is kept, complete.

        Only that message goes: messages sent after it (a send while it was loading)
        stay, in the history and in the view.
        """
        try:
            stored = self.history.message(message_id)
            if not stored.content and not stored.thinking:
                self.history.delete_message(message_id)
                self.messages.remove(message_id)
            else:
                self.history.update_message(message_id, complete=True)
                self.messages.update(message_id, streaming=False, complete=True)
        except HanlinError:
            pass  # the conversation was deleted meanwhile

    def _finish_stream(self, was_streaming: bool, latest: bool = True) -> None:
        if latest:  # an older answer's end must not forget the newer one's handle
            self._handle = None
        if was_streaming:
            self._streaming_id = None
            self._snapshot = None
            self._timer.stop()
            self.generatingChanged.emit(False)
        self._refresh_list_soon()

    def _show_model_status(self, status: ModelStatus) -> None:
        if status.gpu_fallback and status.gpu_fallback != self.status.gpu_fallback:
            self.warningRaised.emit(
                f"The GPU could not load {status.model_id}; it runs on the CPU instead "
                f"({status.gpu_fallback}).",
                "lower GPU offload in the model's settings, or choose a smaller model",
            )
        self._set_status(
            model_id=status.model_id, backend=status.backend, gpu_fallback=status.gpu_fallback
        )

    def _set_status(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)
        self.statusChanged.emit(self.status)

    def _refresh_list_soon(self) -> None:
        self._list_timer.start()

    def save_kv_state_async(self) -> None:
        """Write the loaded model's KV cache to disk on the runner, so the conversation it
        holds reopens without re-reading its prompt (a switch of conversation, quit). An
        answer started after this waits for it; nothing is shown if it fails (logged)."""
        if self.host.current is None:
            return
        done = threading.Event()
        host = self.host

        def work(_cancel, _progress):
            try:  # not cancellable: quitting cancels every task, and this is quit's work
                return save_kv_state(host)
            finally:
                done.set()

        try:
            self.runner.submit(
                work, on_error=lambda exc: log.warning("KV cache not saved: %s", exc)
            )
        except RuntimeError:  # the runner has shut down
            return
        self._kv_saved = done

    def shutdown(self) -> None:
        """On quit: stop the answer and save the KV cache; the runner's shutdown waits for
        both."""
        self.stop()
        self._timer.stop()
        self.save_kv_state_async()
