"""The Starlette application: routes of both dialects, middleware, errors, `/health`.

Why Starlette on uvicorn, on Hanlin's engine, rather than llama-cpp-python's bundled
server: that server has its own model loader (none of Hanlin's checks, GPU fallback or
progress), its own chat formats (not the GGUF's template rendered in Hanlin's sandbox
with a time limit, no reasoning split), and generates through the high-level per-token
Python path Hanlin measured at 0.78–0.99× of llama.cpp. Starlette is a small, well-kept
ASGI toolkit (routing, streaming responses, CORS) and uvicorn the standard ASGI server;
everything model-related is Hanlin's own engine, the same as the window's and the CLI's.

Middleware, outermost first: CORS (only with `--cors`), the API key, the body cap.
Every error is answered in the dialect of the path (Anthropic's shape under
`/v1/messages`, OpenAI's elsewhere).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hanlin import __version__
from hanlin.engine.core.errors import GenerationError, HanlinError
from hanlin.server.auth import AuthMiddleware
from hanlin.server.common import ServerState
from hanlin.server.errors import ApiError, error_response
from hanlin.server.limits import BodyLimitMiddleware

__all__ = ["DIALECT_MODULES", "build_app", "warm_up"]

#: (path, module, endpoint, methods): the dialects' routes. Their modules import the
#: `openai` and `anthropic` SDKs' types, seconds of CPU: `hanlin serve` imports them on a
#: worker thread while the model loads (`warm_up`); an app built without that imports
#: them on the first request that needs them.
_ENDPOINTS = (
    ("/v1/models", "openai_routes", "list_models", ["GET"]),
    ("/v1/chat/completions", "openai_routes", "chat_completions", ["POST"]),
    ("/v1/completions", "openai_routes", "completions", ["POST"]),
    ("/v1/messages", "anthropic_routes", "messages", ["POST"]),
    ("/v1/messages/count_tokens", "anthropic_routes", "count_tokens", ["POST"]),
)
DIALECT_MODULES = ("hanlin.server.openai_routes", "hanlin.server.anthropic_routes")

log = logging.getLogger(__name__)


async def health(request: Request) -> Response:
    state: ServerState = request.app.state.hanlin
    sched = state.scheduler
    status = "shutting_down" if sched.closing else ("loading" if state.pool.loading else "ok")
    body = {
        "status": status,
        "version": __version__,
        "parallel": sched.parallel,
        "busy": sched.busy,
        "queued": sched.waiting,
        "max_queue": sched.max_queue,
        "rejected": sched.rejected,
        **state.pool.describe(),
    }
    return JSONResponse(body, status_code=503 if sched.closing else 200)


async def root(request: Request) -> Response:
    state: ServerState = request.app.state.hanlin
    return JSONResponse(
        {
            "name": "hanlin",
            "version": __version__,
            "openai_base_url": f"{state.base_url}/v1",
            "anthropic_base_url": state.base_url,
        }
    )


def _lazy(module: str, name: str) -> Callable[[Request], Awaitable[Response]]:
    qualified = f"hanlin.server.{module}"

    async def endpoint(request: Request) -> Response:
        mod = sys.modules.get(qualified)
        if mod is None:  # not warmed up yet: import off the event loop
            mod = await asyncio.to_thread(importlib.import_module, qualified)
        return await getattr(mod, name)(request)

    endpoint.__name__ = name
    return endpoint


def warm_up() -> None:
    """Import the dialect modules (call on a worker thread)."""
    for module in DIALECT_MODULES:
        importlib.import_module(module)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc, request.url.path)


async def _hanlin_error(request: Request, exc: Exception) -> Response:
    status = 400 if isinstance(exc, GenerationError) else 500
    return error_response(ApiError(status, str(exc)), request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"No such endpoint: {request.url.path}", 405: "Method not allowed"}.get(
        exc.status_code, str(exc.detail)
    )
    return error_response(ApiError(exc.status_code, message), request.url.path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in %s", request.url.path, exc_info=exc)
    return error_response(
        ApiError(500, f"Internal error: {type(exc).__name__}: {exc}"), request.url.path
    )


def build_app(state: ServerState, *, cors: list[str], max_body_bytes: int) -> Starlette:
    middleware = []
    if cors:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["*"],
                max_age=600,
            )
        )
    middleware.append(Middleware(AuthMiddleware, api_key=state.api_key))
    middleware.append(Middleware(BodyLimitMiddleware, max_bytes=max_body_bytes))
    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/", root, methods=["GET"]),
            *(Route(path, _lazy(m, fn), methods=ms) for path, m, fn, ms in _ENDPOINTS),
        ],
        middleware=middleware,
        exception_handlers={
            ApiError: _api_error,
            HanlinError: _hanlin_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.hanlin = state
    return app
