"""Downloads driven from the models page: start/resume, pause, cancel, and progress.

Every pull runs on the TaskRunner (`ModelStore.pull` with the task's cancel
token), so the GUI thread never waits on the network or the disk.

- Pause cancels the task; the store keeps its `.part` file, so the row shows as
  partial with its percentage and Resume continues it with an HTTP Range request
  (also after a restart: the `.part` file is the state).
- Cancel cancels the task and then deletes the partial file.
- Progress: the runner delivers the newest `Progress` (coalesced); this class only
  remembers it, and a timer pushes it into the table model every `interval_ms`
  (qutebrowser's way), so a fast download never floods the view with repaints.
- A split model (`NAME-00001-of-0000N.gguf`, …) is one row with one bar: the store
  reports bytes over the whole set against its total size, so the bar, the percentage and
  the ETA never restart at a shard boundary; Pause keeps every finished shard and the
  current `.part`, Cancel deletes them all.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from hanlin.desktop.models_page.catalog_table import CatalogTableModel, DownloadState
from hanlin.desktop.tasks import TaskHandle, TaskRunner
from hanlin.engine.core.cancel import CancelToken, Progress, ProgressCallback
from hanlin.engine.core.errors import HanlinError

PAUSED = "paused"
CANCELLED = "cancelled"


@dataclass(slots=True)
class _Running:
    handle: TaskHandle[Any]
    intent: str | None = None  # None while running; "paused" / "cancelled" once asked to stop
    latest: Progress | None = None
    shown: Progress | None = None


class DownloadManager(QObject):
    """Runs `store.pull` per model id and mirrors its progress into a CatalogTableModel."""

    #: a download finished and verified: (model id, hanlin.engine.store.model_store.InstalledModel)
    finished = Signal(str, object)
    #: a download failed: (model id, the exception); the partial file is kept by the store
    failed = Signal(str, object)
    #: a download stopped on request: (model id, "paused" | "cancelled")
    stopped = Signal(str, str)

    def __init__(
        self,
        runner: TaskRunner,
        store: Any,
        table: CatalogTableModel,
        *,
        interval_ms: int = 300,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._store = store
        self._table = table
        self._running: dict[str, _Running] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)

    # ----- queries ------------------------------------------------------------------------

    def is_running(self, model_id: str) -> bool:
        return model_id in self._running

    def running_ids(self) -> list[str]:
        return list(self._running)

    # ----- actions ------------------------------------------------------------------------

    def start(self, model_id: str, ref: str | None = None) -> None:
        """Download a model, or resume its partial download. No-op if already running.

        `ref` is what the store pulls (a catalog id or `hf.co/OWNER/REPO/FILE.gguf`);
        by default the table's own idea of it for this row.
        """
        if model_id in self._running:
            return
        store = self._store
        target = ref or self._table.pull_ref(model_id)

        def pull(cancel: CancelToken, report: ProgressCallback) -> Any:
            return store.pull(target, cancel=cancel, on_progress=report)

        handle = self._runner.submit(
            pull,
            on_done=lambda installed: self._on_done(model_id, installed),
            on_error=lambda error: self._on_error(model_id, error),
            on_progress=lambda progress: self._on_progress(model_id, progress),
            on_cancelled=lambda: self._on_cancelled(model_id),
            key=f"pull:{model_id}",
        )
        self._running[model_id] = _Running(handle)
        self._table.set_download(model_id, DownloadState(model_id, "starting"))
        if not self._timer.isActive():
            self._timer.start()

    def pause(self, model_id: str) -> None:
        """Stop the transfer and keep the `.part` file for Resume."""
        self._stop(model_id, PAUSED, "pausing")

    def cancel(self, model_id: str) -> None:
        """Stop the transfer (if any) and delete the partial file."""
        if model_id in self._running:
            self._stop(model_id, CANCELLED, "cancelling")
        else:
            self._discard_partial(model_id)

    def cancel_all(self) -> None:
        """Pause every download (used on quit: partial files survive for next time)."""
        for model_id in list(self._running):
            self.pause(model_id)

    # ----- progress -----------------------------------------------------------------------

    def flush(self) -> None:
        """Push the newest progress of each running download into the table (timer slot)."""
        for model_id, run in self._running.items():
            if run.intent is not None or run.latest is None or run.latest is run.shown:
                continue
            run.shown = run.latest
            previous = self._table.download(model_id)
            self._table.set_download(model_id, _state_from(model_id, run.latest, previous))
        if not self._running:
            self._timer.stop()

    def _on_progress(self, model_id: str, progress: Any) -> None:
        run = self._running.get(model_id)
        if run is not None and isinstance(progress, Progress):
            run.latest = progress

    # ----- outcomes -----------------------------------------------------------------------

    def _stop(self, model_id: str, intent: str, phase: str) -> None:
        run = self._running.get(model_id)
        if run is None:
            return
        run.intent = intent
        run.handle.cancel("Paused." if intent == PAUSED else "Cancelled.")
        current = self._table.download(model_id) or DownloadState(model_id)
        self._table.set_download(
            model_id,
            DownloadState(model_id, phase, current.done, current.total, None, None),
        )

    def _finish(self, model_id: str) -> _Running | None:
        run = self._running.pop(model_id, None)
        self._table.set_download(model_id, None)
        if not self._running:
            self._timer.stop()
        return run

    # The table is told the outcome in the same GUI-thread slot that clears the running
    # state, so a row never flickers through "Available" on its way to the next state.

    def _on_done(self, model_id: str, installed: Any) -> None:
        if installed is not None and getattr(installed, "id", None) == model_id:
            self._table.note_installed(installed)
        self._finish(model_id)
        self.finished.emit(model_id, installed)

    def _on_error(self, model_id: str, error: BaseException) -> None:
        if not self._settle_unfinished(model_id):
            self.failed.emit(model_id, error)

    def _on_cancelled(self, model_id: str) -> None:
        if not self._settle_unfinished(model_id):
            self.stopped.emit(model_id, PAUSED)

    def _settle_unfinished(self, model_id: str) -> bool:
        """Clear a transfer that ended without installing.

        True when the user cancelled it: its partial file is discarded and there is
        nothing more to report. Otherwise the row keeps its partial and the caller reports.
        """
        run = self._running.get(model_id)
        if run is not None and run.intent == CANCELLED:
            self._table.note_no_partial(model_id)
            self._finish(model_id)
            self._discard_partial(model_id)
            return True
        self._stopped(model_id)
        self._finish(model_id)
        return False

    def _stopped(self, model_id: str) -> None:
        """Show where a stopped transfer got to (its .part file stays on disk)."""
        state = self._table.download(model_id)
        if state is not None and state.done > 0:
            self._table.note_partial(model_id, state.done, state.total)

    def _discard_partial(self, model_id: str) -> None:
        store = self._store

        def discard(cancel: CancelToken, report: ProgressCallback) -> None:
            remove_partial(store, model_id)

        self._runner.submit(
            discard,
            on_done=lambda _result: self.stopped.emit(model_id, CANCELLED),
            on_error=lambda error: self.failed.emit(model_id, error),
            key=f"discard:{model_id}",
        )


def remove_partial(store: Any, model_id: str) -> None:
    """Delete the partial download of a model that is not installed (worker thread).

    An installed model is never touched by "cancel download".
    """
    if store.get(model_id) is not None:
        return
    with contextlib.suppress(HanlinError):  # the store's own cleanup (part + sidecars)
        store.remove(model_id)
    for partial in store.partials():  # whatever the store left behind
        if partial.id == model_id:
            for path in getattr(partial, "files", None) or [partial.part_path]:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()  # every shard of a split model's partial download


def _state_from(model_id: str, progress: Progress, previous: DownloadState | None) -> DownloadState:
    if progress.stage == "verify":  # keep the bar where the transfer left it
        done = previous.done if previous is not None else 0.0
        total = previous.total if previous is not None else None
        return DownloadState(model_id, "verifying", done, total)
    return DownloadState(
        model_id, "downloading", progress.done, progress.total, progress.rate, progress.eta
    )
