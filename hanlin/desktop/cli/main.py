"""The `hanlin` command: an Ollama-style command line, and the desktop window.

`hanlin` with no arguments opens the desktop app. Sub-commands:

    hanlin doctor
    hanlin models list [--json]
    hanlin models pull REF
    hanlin models import PATH [--id ID] [--family FAMILY]
    hanlin models rm ID
    hanlin models use ID --for chat|completion
    hanlin models search QUERY [--author ORG] [--sort downloads|updated] [--json]
    hanlin models new [--json]
    hanlin models scan [FOLDER ...] [--add] [--dry-run] [--json]
    hanlin chat [ID] [PROMPT] [--file PATH]...
    hanlin chat --endpoint URL|NAME [MODEL] [PROMPT]
    hanlin remote add NAME URL [--key-env VAR] | list [--json] | rm NAME
    hanlin serve [--model ID|PATH] [--host H] [--port P] [--api-key KEY] [--ctx N]
                 [--parallel N] [--max-queue N] [--cors ORIGIN]

This module only parses arguments and maps errors (the one place the CLI turns
a `HanlinError` into one line on stderr and a non-zero exit, no traceback).
Each command lives in its own module and is imported lazily, so `hanlin models
list` never pays for Qt or llama.cpp start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hanlin import __version__
from hanlin.engine.core.errors import Cancelled, HanlinError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hanlin",
        description="Hanlin: chat with and complete code using local Qwen and DeepSeek models.",
        epilog="Run `hanlin` with no arguments to open the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"hanlin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = sub.add_parser(
        "doctor", help="show this machine's CPU, RAM, GPU backend and which models fit"
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    models = sub.add_parser("models", help="list, download, import, remove and choose models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    mlist = msub.add_parser("list", help="the catalog with installed and partial downloads")
    mlist.add_argument("--json", action="store_true", help="print a JSON array")
    pull = msub.add_parser("pull", help="download a catalog model or hf.co/OWNER/REPO/FILE.gguf")
    pull.add_argument("ref", help="a catalog id or hf.co/OWNER/REPO/FILE.gguf")
    imp = msub.add_parser("import", help="register a GGUF file already on disk")
    imp.add_argument("path", help="path to a .gguf file")
    imp.add_argument(
        "--id", dest="model_id", help="id to register it under (default: from the file name)"
    )
    imp.add_argument("--family", help="model family (default: guessed from the GGUF metadata)")
    rm = msub.add_parser("rm", help="delete an installed model (and any partial download)")
    rm.add_argument("model_id", metavar="ID")
    use = msub.add_parser("use", help="choose the model for chat or for editor completion")
    use.add_argument("model_id", metavar="ID")
    use.add_argument("--for", dest="role", choices=("chat", "completion"), required=True)
    search = msub.add_parser("search", help="find GGUF models on the Hugging Face Hub")
    search.add_argument("query", metavar="QUERY", help="words in the repository name, e.g. qwen3")
    search.add_argument("--author", metavar="ORG", help="only this publisher, e.g. unsloth")
    search.add_argument(
        "--sort", choices=("downloads", "updated"), default="downloads", help="order of results"
    )
    search.add_argument("--limit", type=_positive, default=10, help="repositories (default 10)")
    search.add_argument("--json", action="store_true", help="print a JSON array")
    new = msub.add_parser("new", help="the newest GGUF models of the trusted publishers")
    new.add_argument("--limit", type=_positive, default=15, help="repositories (default 15)")
    new.add_argument("--json", action="store_true", help="print a JSON array")
    scan = msub.add_parser(
        "scan", help="register GGUF models already on disk (HF cache, Ollama, LM Studio, folders)"
    )
    scan.add_argument("folders", nargs="*", metavar="FOLDER", help="more folders to look in")
    scan.add_argument("--add", action="store_true", help="remember the FOLDERs (scan_folders)")
    scan.add_argument("--dry-run", action="store_true", help="only show what would be registered")
    scan.add_argument("--json", action="store_true", help="print a JSON object")

    chat = sub.add_parser(
        "chat", help="chat in the terminal (one-shot with PROMPT, else interactive)"
    )
    chat.add_argument(
        "model_id",
        nargs="?",
        metavar="ID",
        help="model id or GGUF path (default: the chat model in settings)",
    )
    chat.add_argument("prompt", nargs="?", help="one-shot prompt; omit for an interactive chat")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--no-think", action="store_true", help="turn thinking off (Qwen3)")
    chat.add_argument(
        "--show-thinking", action="store_true", help="print the model's reasoning too"
    )
    chat.add_argument("--max-tokens", type=int, default=None)
    chat.add_argument("--temperature", type=float, default=None)
    chat.add_argument("--ctx", type=int, default=None, help="context length in tokens")
    chat.add_argument("--cpu", action="store_true", help="do not offload to the GPU")
    chat.add_argument(
        "--no-speculative",
        action="store_true",
        help="decode token by token (no speculative drafts; the answer is the same)",
    )
    chat.add_argument(
        "--draft-model",
        metavar="ID",
        help="a small model of the same tokenizer that drafts tokens (overrides the setting)",
    )
    chat.add_argument(
        "--file",
        dest="files",
        action="append",
        metavar="PATH",
        help="send a file or folder (its .gitignore honoured) with the message; repeatable",
    )
    chat.add_argument(
        "--endpoint",
        metavar="URL",
        help="chat with MODEL on an OpenAI-compatible server (a URL or a `hanlin remote` name)",
    )

    remote = sub.add_parser(
        "remote", help="OpenAI-compatible servers to use: vLLM, llama-server, Ollama, hanlin serve"
    )
    rsub = remote.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    radd = rsub.add_parser("add", help="add a server by name and base URL")
    radd.add_argument("name", metavar="NAME", help="a short name; its models are NAME/MODEL")
    radd.add_argument("url", metavar="URL", help="base URL, e.g. http://gpu.lan:8000/v1")
    radd.add_argument(
        "--key-env",
        metavar="VAR",
        help="environment variable holding the API key (read at each request, never stored)",
    )
    rlist = rsub.add_parser("list", help="the servers, whether they answer, and their models")
    rlist.add_argument("--json", action="store_true", help="machine-readable output")
    rlist.add_argument("--no-check", action="store_true", help="do not contact the servers")
    rrm = rsub.add_parser("rm", help="forget a server")
    rrm.add_argument("name", metavar="NAME")

    from hanlin.desktop.cli import serve_cmd  # light: the server is imported only to run

    serve_cmd.add_parser(sub)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _dispatch(args: argparse.Namespace) -> int:
    if args.command is None:
        from hanlin.desktop.app import run_app

        return run_app()
    if args.command == "doctor":
        from hanlin.desktop.cli import doctor_cmd

        return doctor_cmd.run(args)
    if args.command == "models":
        if args.models_command in ("search", "new"):
            from hanlin.desktop.cli import search_cmd

            return search_cmd.run(args)
        if args.models_command == "scan":
            from hanlin.desktop.cli import scan_cmd

            return scan_cmd.run(args)
        from hanlin.desktop.cli import models_cmd

        return models_cmd.run(args)
    if args.command == "remote":
        from hanlin.desktop.cli import remote_cmd

        return remote_cmd.run(args)
    if args.command == "chat":
        from hanlin.desktop.cli import chat_cmd

        return chat_cmd.run(args)
    if args.command == "serve":
        from hanlin.desktop.cli import serve_cmd

        return serve_cmd.run(args)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except Cancelled:
        print("Cancelled.", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except HanlinError as exc:
        print(f"hanlin: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `hanlin models list | head`: the reader left; not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
