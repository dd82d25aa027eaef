"""Which models the server offers, and the one it has loaded: a pool keyed by model id.

The `model` field of a request names any installed model (`hanlin models list`) by its
id; the model given to `hanlin serve --model` is also known by the path it came from.
Request fields never name files: a client on the network must not make the server open
arbitrary paths. An unknown name is a 404 listing the ids that exist.

One model is held in memory at a time (models are big; a second one would double the
RAM or VRAM): a request for another waits until the requests on the current one have
finished, then the current one is closed and the new one loaded (on a worker thread —
the event loop keeps serving `/health` and refusing what must be refused). Each loaded
model gets a `BatchDecoder` with one sequence per parallel slot; its own context
(`LoadedModel.session`) is loaded small, since generation runs on the decoder's.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.settings import load_settings
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.models.fit import default_n_ctx

if TYPE_CHECKING:
    from hanlin.engine.completion.fim import FimTemplate, LlamaVocab
    from hanlin.engine.models.families import FamilyBehavior
    from hanlin.engine.runtime.batch import BatchDecoder
    from hanlin.engine.runtime.loader import LoadedModel
    from hanlin.engine.store.model_store import InstalledModel, ModelStore

__all__ = ["ModelNotFound", "ModelPool", "ServedModel"]

#: context of the model's own (unused for generation) llama.cpp context
_OWN_CTX = 512


class ModelNotFound(HanlinError):
    """The request names no model this server can serve."""

    def __init__(self, message: str, ids: list[str]) -> None:
        available = ", ".join(f"`{i}`" for i in ids) if ids else "none"
        super().__init__(message, f"models this server has: {available}")
        self.ids = ids


@dataclass(eq=False)
class ServedModel:
    installed: InstalledModel
    loaded: LoadedModel
    decoder: BatchDecoder
    #: serialises prompt rendering and tokenizing (the session's caches are not thread-safe)
    render_lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0
    _vocab: LlamaVocab | None = None
    _fim: FimTemplate | None = None

    @property
    def id(self) -> str:
        return self.installed.id

    @property
    def n_ctx(self) -> int:
        """Tokens one request may use (prompt + reply)."""
        return self.decoder.n_ctx_seq

    @property
    def behavior(self) -> FamilyBehavior:
        return self.loaded.behavior

    def vocab(self) -> LlamaVocab:
        from hanlin.engine.completion.fim import LlamaVocab

        if self._vocab is None:
            self._vocab = LlamaVocab(self.loaded.llama)
        return self._vocab

    def fim_template(self) -> FimTemplate:
        from hanlin.engine.completion.fim import detect_template, get_template

        if self._fim is None:
            hint = self.behavior.fim_template
            detected = detect_template(self.vocab(), self.loaded.family)
            if not detected.is_fim and hint:
                candidate = get_template(hint)
                if all(self.vocab().token_id(t) is not None for t in candidate.special_texts[:3]):
                    detected = candidate
            self._fim = detected
        return self._fim

    def sampling(self) -> Sampling | None:
        """The user's per-model settings over the catalog entry's (the levels below a request)."""
        from hanlin.engine.chat.sampling import user_sampling

        values = load_settings().settings.model(self.id).to_dict()
        entry = self.installed.catalog_entry
        return user_sampling(values).over(entry.sampling if entry else None)

    def close(self) -> None:
        self.decoder.close()
        self.loaded.close()


class ModelPool:
    def __init__(
        self,
        *,
        parallel: int,
        ctx: int | None = None,
        threads: int | None = None,
        default: InstalledModel | None = None,
        store: ModelStore | None = None,
    ) -> None:
        from hanlin.engine.store.model_store import ModelStore

        self.parallel = parallel
        self.ctx = ctx
        self.threads = threads
        self.default = default
        self.store = store or ModelStore()
        self.current: ServedModel | None = None
        self.loading: str | None = None
        self._cond: asyncio.Condition | None = None

    # ------------------------------------------------------------ names

    def available(self) -> list[InstalledModel]:
        models = list(self.store.installed())
        if self.default is not None and all(m.id != self.default.id for m in models):
            models.insert(0, self.default)
        return models

    def ids(self) -> list[str]:
        return [m.id for m in self.available()]

    def lookup(self, name: str | None) -> InstalledModel:
        """The installed model a request names (None/empty: the default one)."""
        if not name:
            if self.default is not None:
                return self.default
            if self.current is not None:
                return self.current.installed
            raise ModelNotFound(
                "The request names no model and the server has no default one", self.ids()
            )
        if self.default is not None and name in (self.default.id, str(self.default.path)):
            return self.default
        for model in self.available():
            if model.id == name:
                return model
        if self.store.catalog.find(name) is not None:
            raise ModelNotFound(
                f"`{name}` is in the catalog but not downloaded on this machine "
                f"(`hanlin models pull {name}`)",
                self.ids(),
            )
        raise ModelNotFound(f"The model `{name}` does not exist on this server", self.ids())

    # ------------------------------------------------------------ loading

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def _load(self, installed: InstalledModel) -> ServedModel:
        from hanlin.engine.runtime.batch import BatchDecoder
        from hanlin.engine.runtime.loader import LoadOptions, load_model

        per_model = load_settings().settings.model(installed.id)
        options = LoadOptions(
            n_ctx=_OWN_CTX,
            n_gpu_layers=per_model.n_gpu_layers if per_model.n_gpu_layers is not None else -1,
            threads=self.threads,
        )
        loaded = load_model(
            Path(installed.path), model_id=installed.id, family=installed.family, options=options
        )
        try:
            trained = loaded.info.context_length or 0
            ctx = self.ctx or per_model.n_ctx or default_n_ctx(trained or None)
            if trained:
                ctx = min(ctx, trained)
            decoder = BatchDecoder(loaded, n_seq=self.parallel, n_ctx_seq=ctx)
        except BaseException:
            loaded.close()
            raise
        return ServedModel(installed=installed, loaded=loaded, decoder=decoder)

    def load_now(self, installed: InstalledModel) -> ServedModel:
        """Load `installed` before the server starts (blocking; no request can be running)."""
        self.close()
        self.current = self._load(installed)
        return self.current

    async def acquire(self, installed: InstalledModel) -> ServedModel:
        """The loaded model for `installed`, loading it (after the current one is idle)."""
        cond = self._condition()
        async with cond:
            while True:
                cur = self.current
                if cur is not None and cur.id == installed.id and self.loading is None:
                    cur.users += 1
                    return cur
                if self.loading is None and (cur is None or cur.users == 0):
                    break
                await cond.wait()
            self.loading = installed.id
            old, self.current = self.current, None
        try:
            if old is not None:
                await asyncio.to_thread(old.close)
            served = await asyncio.to_thread(self._load, installed)
        except BaseException:
            async with cond:
                self.loading = None
                cond.notify_all()
            raise
        async with cond:
            self.current = served
            self.loading = None
            served.users += 1
            cond.notify_all()
        return served

    async def release(self, served: ServedModel) -> None:
        cond = self._condition()
        async with cond:
            served.users -= 1
            cond.notify_all()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    def describe(self) -> dict[str, Any]:
        cur = self.current
        if cur is None:
            return {"model": None, "loading": self.loading}
        stats = cur.decoder.stats()
        return {
            "model": cur.id,
            "loading": self.loading,
            "backend": cur.loaded.backend,
            "ctx_per_request": cur.n_ctx,
            "sequences": stats.sequences,
            "generating": stats.active,
            "completed": stats.jobs_done,
            "cancelled": stats.cancelled,
            "generated_tokens": stats.generated_tokens,
        }
