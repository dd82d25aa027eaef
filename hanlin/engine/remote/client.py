"""The OpenAI-compatible API of one server: its models, chat, completions and `/infill`.

Why a thin layer over the transport: the routes and the JSON shapes are what vLLM,
llama.cpp's `llama-server`, Ollama and `hanlin serve` have in common, and they live
here once — the chat (engine/remote/chat.py) and completion (engine/remote/completion.py)
code only builds request bodies and reads chunks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.remote.endpoint import Endpoint
from hanlin.engine.remote.errors import RemoteProtocolError
from hanlin.engine.remote.transport import Timeouts, Transport

__all__ = ["RemoteClient", "RemoteModel"]


@dataclass(frozen=True, slots=True)
class RemoteModel:
    """One entry of `GET /v1/models`."""

    id: str
    owned_by: str | None = None
    #: the context the server runs the model with, when it says (vLLM, llama-server)
    context_length: int | None = None


def _context_length(entry: dict[str, Any]) -> int | None:
    for value in (
        entry.get("max_model_len"),  # vLLM
        (entry.get("meta") or {}).get("n_ctx") if isinstance(entry.get("meta"), dict) else None,
        entry.get("context_length"),  # hanlin serve, OpenRouter
    ):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class RemoteClient:
    """Blocking calls to one endpoint; every one takes a `CancelToken` that aborts it."""

    def __init__(self, endpoint: Endpoint, timeouts: Timeouts | None = None) -> None:
        self.endpoint = endpoint
        self.transport = Transport(endpoint, timeouts)

    def models(self, cancel: CancelToken | None = None) -> list[RemoteModel]:
        """The models the server serves (`GET /v1/models`), in its order."""
        data = self.transport.get_json("models", cancel=cancel)
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise RemoteProtocolError(
                f"{self.endpoint.label} answered /v1/models without a `data` list",
                "is this an OpenAI-compatible server? Its base URL usually ends in /v1",
            )
        out: list[RemoteModel] = []
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
                owner = entry.get("owned_by")
                owner = owner if isinstance(owner, str) else None
                out.append(RemoteModel(entry["id"], owner, _context_length(entry)))
        return out

    def chat(
        self, body: dict[str, Any], cancel: CancelToken | None = None
    ) -> Iterator[dict[str, Any]]:
        """Stream `POST /v1/chat/completions`: the chunk objects, in order."""
        return self.transport.stream("chat/completions", {**body, "stream": True}, cancel=cancel)

    def completions(
        self,
        body: dict[str, Any],
        cancel: CancelToken | None = None,
        deadline: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream `POST /v1/completions`."""
        return self.transport.stream(
            "completions", {**body, "stream": True}, cancel=cancel, deadline=deadline
        )

    def infill(
        self,
        body: dict[str, Any],
        cancel: CancelToken | None = None,
        deadline: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream llama-server's `POST /infill` (at the server's root, not under /v1)."""
        return self.transport.stream(
            "infill", {**body, "stream": True}, root=True, cancel=cancel, deadline=deadline
        )

    def check(self, cancel: CancelToken | None = None) -> tuple[list[RemoteModel], float]:
        """Test the connection: the models and how long the round trip took (seconds)."""
        self.transport.warm()
        started = time.perf_counter()
        models = self.models(cancel)
        return models, time.perf_counter() - started
