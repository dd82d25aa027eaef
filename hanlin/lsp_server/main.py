"""`hanlin-lsp`: the language server's command line entry point.

    hanlin-lsp                     # LSP over stdio (what editors start)
    hanlin-lsp --tcp 2087          # one client over TCP on 127.0.0.1 (debugging)
    hanlin-lsp --log-file lsp.log  # Python's and llama.cpp's logs to a file
    hanlin-lsp --version

Stdout is the protocol channel, so before anything else runs: Python logging
goes to stderr (or the log file) and, once the client has sent `initialize`, to
the client as `window/logMessage` (lsp_server/client_log.py); llama.cpp's own
log is routed the same way through `hanlin.engine.runtime.llama_log`, and
`sys.stdout` is pointed at stderr so that a stray print anywhere can never
corrupt the protocol stream (the protocol writes to the real stdout's buffer,
kept aside here).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hanlin.engine.core import paths
from hanlin.lsp_server.client_log import ClientLogHandler, not_sent_to_client

__all__ = ["main"]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    from hanlin.lsp_server.server import server_version

    parser = argparse.ArgumentParser(
        prog="hanlin-lsp",
        description="Hanlin's language server: inline code completion from a local model.",
    )
    parser.add_argument("--stdio", action="store_true", help="serve over stdio (the default)")
    parser.add_argument(
        "--tcp", type=int, metavar="PORT", help="serve one client on 127.0.0.1:PORT"
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        metavar="PATH",
        help="write logs (also llama.cpp's) to this file instead of stderr",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="how much to log (default: info)",
    )
    parser.add_argument("--version", action="version", version=f"hanlin-lsp {server_version()}")
    return parser.parse_args(argv)


def _setup_logging(log_file: Path | None, level: str) -> ClientLogHandler:
    """Logs to stderr (or the file) and, once a client is connected, to the client.

    On stderr only what the client did not get is written (editors show stderr as
    errors); a log file gets everything.
    """
    handler: logging.Handler
    to_client = ClientLogHandler()
    if log_file is not None:
        paths.ensure(log_file.expanduser().resolve().parent)
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(not_sent_to_client)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [to_client, handler]  # the client's first: it marks what it sent
    root.setLevel(getattr(logging, level.upper()))
    # pygls logs every message at INFO/DEBUG; keep it to problems unless debugging
    logging.getLogger("pygls").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    return to_client


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    protocol_out = sys.stdout.buffer
    protocol_in = sys.stdin.buffer
    sys.stdout = sys.stderr  # a stray print must never reach the protocol channel
    to_client = _setup_logging(args.log_file, args.log_level)

    from hanlin.engine.runtime.llama_log import route_llama_logs

    route_llama_logs(args.log_file.expanduser() if args.log_file else None)

    from hanlin.lsp_server.handlers import register_all
    from hanlin.lsp_server.server import HanlinLanguageServer

    server = HanlinLanguageServer(client_log=to_client)
    register_all(server)
    # DEBUG: before `initialize` only stderr can take it, and editors show stderr as errors
    logging.getLogger(__name__).debug("hanlin-lsp %s starting", server.version)
    if args.tcp is not None:
        server.start_tcp("127.0.0.1", args.tcp)
    else:
        server.start_io(protocol_in, protocol_out)
    return server.exit_code


if __name__ == "__main__":
    sys.exit(main())
