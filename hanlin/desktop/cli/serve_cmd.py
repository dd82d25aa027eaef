"""`hanlin serve`: the OpenAI and Anthropic APIs on a local model (hanlin/server/).

Defaults come from `[server]` in settings.toml (host, port, api_key / api_key_env,
parallel, max_queue, cors); flags override them. The model is `--model`, else the chat
model chosen in settings; without either the server starts with no model loaded and
loads whichever installed model a request names. This module only parses and hands
over: importing it costs nothing (the parser is built for every `hanlin` command).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {text!r}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    serve = sub.add_parser(
        "serve",
        help="serve the OpenAI and Anthropic APIs on a local model (127.0.0.1:8080)",
        description="Serve /v1/chat/completions, /v1/completions, /v1/models (OpenAI) and "
        "/v1/messages (Anthropic) on Hanlin's engine. Defaults: [server] in settings.toml.",
    )
    serve.add_argument("--model", metavar="ID|PATH", help="model id or GGUF path to load")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; others need a key)")
    serve.add_argument(
        "--port", type=_count, metavar="PORT", help="port (default 8080; 0 = any free port)"
    )
    serve.add_argument("--api-key", metavar="KEY", help="require this key (Bearer or x-api-key)")
    serve.add_argument("--ctx", type=_count, metavar="N", help="context tokens per request")
    serve.add_argument(
        "--parallel", type=_count, metavar="N", help="requests generated at once (default 2)"
    )
    serve.add_argument(
        "--max-queue",
        type=_count,
        metavar="N",
        help="requests that may wait beyond --parallel (default 16)",
    )
    serve.add_argument(
        "--cors",
        metavar="ORIGIN",
        action="append",
        help="allow browser requests from ORIGIN (repeatable; default: CORS off)",
    )
    serve.add_argument(
        "--threads", type=_count, metavar="N", help="CPU threads (default: physical cores)"
    )
    return serve


def _config(args: argparse.Namespace) -> Any:
    from hanlin.engine.core.settings import load_settings
    from hanlin.server.config import ServeConfig, resolve_api_key

    settings = load_settings().settings
    srv = settings.server

    def pick(flag: Any, default: Any) -> Any:
        return default if flag is None else flag

    return ServeConfig(
        model=args.model or settings.chat_model,
        host=pick(args.host, srv.host),
        port=pick(args.port, srv.port),
        api_key=resolve_api_key(args.api_key, srv),
        ctx=args.ctx or None,
        parallel=pick(args.parallel, srv.parallel),
        max_queue=pick(args.max_queue, srv.max_queue),
        cors=list(args.cors) if args.cors else list(srv.cors),
        threads=args.threads or None,
    )


def run(args: argparse.Namespace) -> int:
    from hanlin.server.config import bind_socket

    config = _config(args)
    config.validate()  # refusals come before the slow imports and the model load
    sock = bind_socket(config.host, config.port)
    from hanlin.server.runner import run_server

    return run_server(config, sock=sock)
