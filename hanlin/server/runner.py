"""Run the server: bind, load the model, serve with uvicorn, stop cleanly.

- The socket is bound first, so a port in use is a one-line error before minutes of
  model loading, and `--port 0` picks a free port (tests, the desktop's toggle).
- The default model is loaded before the first request is accepted; then one line on
  stdout says where the server listens — `hanlin serve: listening on http://HOST:PORT`
  — the line the desktop app and tests wait for (with `/health` answering).
- SIGTERM / Ctrl-C: no new requests (503), every running generation is cancelled, open
  streams end with an error event the SDKs report, and uvicorn closes the connections
  before the model is freed. The exit status is 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
from typing import Any, TextIO

import uvicorn

from hanlin.server.app import build_app, warm_up
from hanlin.server.common import ServerState
from hanlin.server.config import READY_PREFIX, ServeConfig, bind_socket
from hanlin.server.models import ModelPool
from hanlin.server.scheduler import Scheduler

__all__ = ["run_server"]

#: how long open connections get to finish after SIGTERM
GRACEFUL_S = 10


class _Server(uvicorn.Server):
    """uvicorn's server, telling the scheduler about SIGTERM and printing the ready line."""

    def __init__(self, config: uvicorn.Config, state: ServerState, out: TextIO) -> None:
        super().__init__(config)
        self.state = state
        self.out = out

    def handle_exit(self, sig: int, frame: Any) -> None:
        # uvicorn's own handler also records the signal to re-raise it after shutting down
        # (the process would then die of it, exit status -15, skipping our clean-up)
        self.state.scheduler.shutdown()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # Ctrl-C twice: do not wait for open streams
        else:
            self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"{READY_PREFIX}{self.state.base_url}", file=self.out, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_server(
    config: ServeConfig, *, sock: socket.socket | None = None, out: TextIO | None = None
) -> int:
    """Serve until SIGTERM / Ctrl-C. `sock`: already bound by `bind_socket` (else bound here)."""
    from hanlin.engine.store.model_store import ModelStore

    out = out or sys.stdout
    config.validate()
    store = ModelStore()
    default = store.resolve(config.model) if config.model else None
    sock = sock or bind_socket(config.host, config.port)
    try:
        config.port = sock.getsockname()[1]
        pool = ModelPool(
            parallel=config.parallel,
            ctx=config.ctx,
            threads=config.threads,
            default=default,
            store=store,
        )
        scheduler = Scheduler(config.parallel, config.max_queue)
        state = ServerState(pool, scheduler, api_key=config.api_key, base_url=config.base_url)
        # the SDK types the dialects use take seconds to import: alongside the model load,
        # and done before the ready line, so the first request is served at full speed
        warming = threading.Thread(target=warm_up, name="hanlin-warm-up", daemon=True)
        warming.start()
        if default is not None:
            _err(f"Loading {default.id} …")
            served = pool.load_now(default)
            loaded = served.loaded
            _err(
                f"{default.id}: {loaded.family} on {loaded.backend.upper()}, {loaded.threads} "
                f"threads, {config.parallel} parallel × {served.n_ctx} tokens "
                f"(loaded in {loaded.load_seconds:.1f} s)"
            )
            if loaded.gpu_fallback:
                _err(f"warning: {loaded.gpu_fallback}")
        warming.join()
        app = build_app(state, cors=config.cors, max_body_bytes=config.max_body_bytes)
        uv_config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_S,
            server_header=False,
            timeout_keep_alive=60,  # clients (SDKs, agents) pause between requests
        )
        server = _Server(uv_config, state, out)
        _err(
            f"OpenAI API: {config.base_url}/v1 · Anthropic API: {config.base_url} · "
            f"key {'required' if config.api_key else 'not required'} · Ctrl-C stops"
        )
        try:
            asyncio.run(server.serve(sockets=[sock]))
        finally:
            pool.close()
        _err("hanlin serve: stopped")
        return 0
    finally:
        sock.close()
