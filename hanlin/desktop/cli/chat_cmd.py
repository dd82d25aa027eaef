"""`hanlin chat [ID] [PROMPT]`: chat with a local model in the terminal.

With PROMPT: one answer, streamed to stdout, then exit. Without: an interactive
multi-turn chat (`/help` lists the commands). Ctrl-C while the model is writing
stops that answer, not the program; Ctrl-C twice at the prompt (or Ctrl-D)
exits. The answer goes to stdout; everything else (loading, the GPU-fallback
warning, tokens/s and time to first token) goes to stderr, so
`hanlin chat m "..." > answer.txt` captures only the answer. The model's
reasoning is shown (dimmed) only with --show-thinking; otherwise a one-line
note on stderr says that it thought and for how long.

`--file PATH` (repeatable; files and folders, a folder filtered by its .gitignore) sends
files with the first message, `/file PATH…` with the next one (chat_files.py): each is
named on stderr with its language, size and token count from the model's tokenizer.

Remote models: `hanlin chat --endpoint URL|NAME [MODEL] [PROMPT]` chats with MODEL on
an OpenAI-compatible server (MODEL may be left out when the server has only one), and
`hanlin chat NAME/MODEL` with a model of a server added by `hanlin remote add` (also
what `chat_model` may hold). Same streaming, Ctrl-C, thinking and statistics; the
server keeps the model, so --ctx and --cpu do not apply. A connection lost mid-answer
keeps the partial answer on stdout and says so on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from hanlin.engine.core.cancel import CancelToken, Progress
from hanlin.engine.core.errors import HanlinError, UnknownModelError
from hanlin.engine.core.settings import load_settings

__all__ = ["run"]

DIM, RESET = "\x1b[2m", "\x1b[0m"
HELP = """Commands:
  /clear        forget the conversation (keeps the system prompt)
  /think on|off turn the model's thinking on or off (Qwen3)
  /stats        show the last reply's statistics and the sampling it used
  /file PATH…   attach files or folders to your next message (.gitignore honoured)
  /bye, /exit   leave (Ctrl-D works too)
Ctrl-C stops the answer being written; Ctrl-C twice at the prompt leaves."""


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Resolved:
    def __init__(self, path: Path, model_id: str, family: str | None, sampling: Any | None) -> None:
        self.path, self.model_id, self.family, self.sampling = path, model_id, family, sampling


def _resolve(ref: str | None) -> _Resolved:
    from hanlin.engine.store.model_store import ModelStore

    settings = load_settings().settings
    ref = ref or settings.chat_model
    if not ref:
        raise UnknownModelError(
            "No model is chosen for chat",
            "give one (`hanlin chat ID`), choose one with `hanlin models use ID --for chat`, "
            "or run `hanlin models pull qwen2.5-coder-1.5b-instruct-q4km` first",
        )
    installed = ModelStore().resolve(ref)
    entry = installed.catalog_entry
    return _Resolved(
        Path(installed.path),
        installed.id,
        installed.family or (entry.family if entry else None),
        entry.sampling if entry else None,
    )


def _sampling(resolved: _Resolved, args: argparse.Namespace) -> Any:
    """What the user says (per-model settings, then --temperature / --max-tokens) over what
    the catalog entry says; the engine adds the family's recommendation and defaults below
    (engine/chat/sampling.py), so a value nobody set follows the model's thinking mode."""
    from hanlin.engine.chat.sampling import user_sampling

    values = load_settings().settings.model(resolved.model_id).to_dict()
    if args.temperature is not None:
        values["temperature"] = args.temperature
    if args.max_tokens is not None:
        values["max_tokens"] = args.max_tokens
    return user_sampling(values).over(resolved.sampling)


def _load(resolved: _Resolved, args: argparse.Namespace) -> Any:
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    per_model = load_settings().settings.model(resolved.model_id)
    options = LoadOptions(
        n_ctx=args.ctx or per_model.n_ctx,
        n_gpu_layers=0
        if args.cpu
        else (per_model.n_gpu_layers if per_model.n_gpu_layers is not None else -1),
    )
    interactive = sys.stderr.isatty()
    label = f"Loading {resolved.model_id} …"
    if interactive:
        print(label, end="", file=sys.stderr, flush=True)

    def show(progress: Progress) -> None:  # redrawn in place, terminals only
        fraction = progress.fraction
        if interactive and fraction is not None:
            print(f"\r{label} {fraction:.0%}", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    cancel = CancelToken()
    try:
        model = load_model(
            resolved.path,
            model_id=resolved.model_id,
            family=resolved.family,
            options=options,
            cancel=cancel,
            on_progress=show,
        )
    finally:
        if interactive:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)
    _err(
        f"{resolved.model_id}: {model.family} on {model.backend.upper()}, "
        f"{model.threads} thread{'s' if model.threads != 1 else ''}, context {model.n_ctx} tokens "
        f"(loaded in {time.perf_counter() - started:.1f} s)"
    )
    if model.gpu_fallback:
        _err(f"warning: {model.gpu_fallback}")
    behavior = model.behavior
    if args.no_think and behavior.reasoning and not behavior.thinking_switch:
        _err(f"note: {model.family} models always think; --no-think has no effect")
    return model


class _Printer:
    """Writes streamed events: the answer to stdout, thinking dimmed (or a note)."""

    def __init__(self, out: TextIO, show_thinking: bool) -> None:
        self.out = out
        self.show_thinking = show_thinking
        self.color = out.isatty()
        self.in_thinking = False
        self.think_started = 0.0
        self.think_seconds = 0.0
        self.wrote_answer = False

    def __call__(self, event: Any) -> None:
        if event.kind == "thinking":
            if not self.in_thinking:
                self.in_thinking = True
                self.think_started = time.perf_counter()
                if self.show_thinking:
                    self.out.write(DIM if self.color else "<think>\n")
            if self.show_thinking:
                self.out.write(event.text)
                self.out.flush()
            return
        self._close_thinking()
        self.out.write(event.text)
        self.out.flush()
        self.wrote_answer = True

    def _close_thinking(self) -> None:
        if not self.in_thinking:
            return
        self.in_thinking = False
        self.think_seconds += time.perf_counter() - self.think_started
        if self.show_thinking:
            self.out.write(RESET + "\n\n" if self.color else "\n</think>\n\n")
            self.out.flush()
        else:
            _err(f"(thought for {self.think_seconds:.1f} s; --show-thinking shows it)")

    def finish(self) -> None:
        self._close_thinking()
        self.out.write("\n")
        self.out.flush()


@contextlib.contextmanager
def _ctrl_c_cancels(cancel: CancelToken) -> Iterator[None]:
    """While generating, Ctrl-C flips the cancel token instead of raising KeyboardInterrupt."""

    def handler(_signum: int, _frame: object) -> None:
        cancel.cancel("stopped with Ctrl-C")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stats_line(stats: Any) -> str:
    parts = [
        f"{stats.generated_tokens} tokens",
        f"{stats.tokens_per_s:.1f} tok/s",
        f"TTFT {stats.ttft_s:.2f} s",
        f"prompt {stats.prompt_tokens} tokens ({stats.cached_tokens} cached)",
    ]
    from hanlin.desktop.cli.chat_speculation import speculation_part

    drafts = speculation_part(stats)
    if drafts:
        parts.append(drafts)
    if stats.dropped_messages:
        parts.append(f"{stats.dropped_messages} oldest messages dropped to fit the context")
    if stats.stop_reason == "length":
        parts.append("stopped at the token limit")
    elif stats.stop_reason == "cancelled":
        parts.append("stopped")
    elif stats.stop_reason == "interrupted":
        parts.append("interrupted")
    return "[" + " · ".join(parts) + "]"


def _sampling_line(stats: Any) -> str:
    """`sampling: temperature 0.7 · top-p 0.8 · …`: what the last reply was sampled with."""
    names = {
        "temperature": "temperature",
        "top_p": "top-p",
        "top_k": "top-k",
        "min_p": "min-p",
        "repeat_penalty": "repeat penalty",
        "max_tokens": "max tokens",
    }
    used = getattr(stats, "sampling", None) or {}
    parts = [f"{label} {used[key]:g}" for key, label in names.items() if key in used]
    return "sampling: " + " · ".join(parts)


def _answer(session: Any, text: str, show_thinking: bool) -> Any:
    cancel = CancelToken()
    printer = _Printer(sys.stdout, show_thinking)
    unseen = getattr(session, "window_start", 0)
    with _ctrl_c_cancels(cancel):
        reply = session.send(text, cancel=cancel, on_event=printer)
    printer.finish()
    _err(_stats_line(reply.stats))
    if not unseen and getattr(session, "window_start", 0):
        _overflow_notice(session, reply.stats)
    return reply


def _overflow_notice(session: Any, stats: Any) -> None:
    """The first time a conversation outgrows the context: one line on stderr, dimmed,
    with the context used and, if the fit verdict allows, a larger `--ctx` to use."""
    from hanlin.engine.chat.window import context_meter, overflow_notice, suggest_larger_context

    line = f"note: {overflow_notice(session.window_start, stats.n_ctx)}"
    details = [f"context {context_meter(stats.context_used, stats.n_ctx)}"] if stats.n_ctx else []
    path = getattr(getattr(session, "model", None), "path", None)
    try:
        larger = suggest_larger_context(Path(path), stats.n_ctx) if path and stats.n_ctx else None
    except HanlinError:
        larger = None
    if larger is not None:
        tight = ", tight on memory" if larger.tight else ""
        details.append(f"`--ctx {larger.n_ctx}` fits this machine{tight}")
    if details:
        line = f"{line.rstrip('.')} ({'; '.join(details)})."
    _err(f"{DIM}{line}{RESET}" if sys.stderr.isatty() else line)


def _read_line(prompt: str) -> str | None:
    """One line from the user; None to leave (Ctrl-D, or Ctrl-C twice in a row)."""
    try:
        return input(prompt)
    except EOFError:
        return None
    except KeyboardInterrupt:
        _err("\n(Ctrl-C again or Ctrl-D to leave)")
    try:
        return input(prompt)
    except (EOFError, KeyboardInterrupt):
        return None


def _files(args: argparse.Namespace) -> Any:
    """The attachments waiting for the next message (`--file`, `/file`): chat_files.py."""
    from hanlin.desktop.cli.chat_files import PendingFiles

    files = getattr(args, "attached", None)
    if files is None:
        files = args.attached = PendingFiles()
    return files


def _interactive(session: Any, args: argparse.Namespace) -> int:
    prompt = ">>> " if sys.stdin.isatty() else ""
    _err("Type a message; /help for commands, /bye to leave.")
    if _files(args).attachments:
        _err("(the attached files go with your first message)")
    while True:
        line = _read_line(prompt)
        if line is None:
            _err("")
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            if command in ("/bye", "/exit", "/quit"):
                return 0
            if command == "/clear":
                session.clear()
                _err("(conversation cleared)")
            elif command == "/think":
                session.thinking = rest.strip().lower() not in ("off", "no", "0", "false")
                _err(f"(thinking {'on' if session.thinking else 'off'})")
            elif command == "/stats":
                if session.last_stats is None:
                    _err("(no reply yet)")
                else:
                    _err(_stats_line(session.last_stats))
                    _err(_sampling_line(session.last_stats))
            elif command == "/file":
                from hanlin.desktop.cli.chat_files import file_command

                file_command(_files(args), rest)
            elif command == "/help":
                _err(HELP)
            else:
                _err(f"unknown command {command}; /help lists them")
            continue
        text = _files(args).compose(text)
        if isinstance(session, _remote_session_type()):
            _answer_remote_turn(session, text, args.show_thinking)
        else:
            _answer(session, text, args.show_thinking)


# --------------------------------------------------------------------------- remote models


def _remote_session_type() -> type:
    from hanlin.engine.remote.chat import RemoteChatSession

    return RemoteChatSession


def _remote_target(args: argparse.Namespace) -> Any:
    """The remote model this chat is for (`--endpoint`, or a `NAME/MODEL` ref); None: local."""
    from hanlin.engine.remote.endpoint import RemoteTarget, endpoint_for, split_remote_ref

    settings = load_settings().settings
    if not getattr(args, "endpoint", None):
        ref = args.model_id or settings.chat_model
        return split_remote_ref(ref, settings) if ref else None
    endpoint = endpoint_for(args.endpoint, settings)
    if args.model_id:
        return RemoteTarget(endpoint, args.model_id)
    from hanlin.engine.remote.client import RemoteClient
    from hanlin.engine.remote.listing import LISTING_TIMEOUTS

    ids = [m.id for m in RemoteClient(endpoint, LISTING_TIMEOUTS).models()]
    if len(ids) != 1:
        listed = ", ".join(f"`{i}`" for i in ids[:8]) or "none"
        raise UnknownModelError(
            f"{endpoint.label} serves {len(ids) or 'no'} models; which one?",
            f"give it: `hanlin chat --endpoint {args.endpoint} MODEL` (models there: {listed})",
        )
    return RemoteTarget(endpoint, ids[0])


def _interrupted_error(reply: Any) -> HanlinError:
    stats = reply.stats
    return HanlinError(
        f"{stats.error or 'the answer was cut off'} (the partial answer above is kept)",
        stats.error_hint,
    )


def _answer_remote_turn(session: Any, text: str, show_thinking: bool) -> None:
    """One interactive turn: a server's failure is reported, and the chat goes on."""
    from hanlin.engine.remote.errors import RemoteError

    try:
        reply = _answer(session, text, show_thinking)
    except RemoteError as exc:
        _err(f"hanlin: error: {exc}")
        return
    if reply.stats.stop_reason == "interrupted":
        _err(f"hanlin: error: {_interrupted_error(reply)}")


def _run_remote(target: Any, args: argparse.Namespace) -> int:
    from hanlin.engine.chat.sampling import user_sampling
    from hanlin.engine.remote.chat import RemoteChatSession

    if args.ctx is not None or args.cpu:
        _err("note: --ctx and --cpu apply to local models; the server decides for its own")
    values = load_settings().settings.model(target.ref).to_dict()
    if args.temperature is not None:
        values["temperature"] = args.temperature
    if args.max_tokens is not None:
        values["max_tokens"] = args.max_tokens
    _err(f"{target.model} on {target.endpoint.label} (remote)")
    _files(args).describe(_files(args).attachments)  # estimated: the server's tokenizer
    session = RemoteChatSession(
        target,
        system=args.system,
        sampling=user_sampling(values),
        thinking=not args.no_think,
        max_tokens=args.max_tokens,
    )
    if args.prompt is None:
        return _interactive(session, args)
    reply = _answer(session, _files(args).compose(args.prompt), args.show_thinking)
    if reply.stats.stop_reason == "interrupted":
        raise _interrupted_error(reply)
    return 130 if reply.stats.stop_reason == "cancelled" else 0


def run(args: argparse.Namespace) -> int:
    from hanlin.engine.chat.stream import ChatSession

    if args.max_tokens is not None and args.max_tokens <= 0:
        raise HanlinError("--max-tokens must be a positive number")
    if args.ctx is not None and args.ctx < 64:
        raise HanlinError("--ctx must be at least 64 tokens")
    if args.prompt is None and args.model_id and any(c.isspace() for c in args.model_id):
        # `hanlin chat "Explain the GIL"`: ids never contain spaces, so this is a prompt
        # for the default chat model.
        args.model_id, args.prompt = None, args.model_id
    from hanlin.desktop.cli.chat_files import PendingFiles

    args.attached = PendingFiles.read(getattr(args, "files", None))  # fails before a load
    remote = _remote_target(args)
    if remote is not None:
        return _run_remote(remote, args)
    resolved = _resolve(args.model_id)
    sampling = _sampling(resolved, args)
    from hanlin.desktop.cli.chat_speculation import check_draft_flag, speculation_for

    check_draft_flag(args)  # a bad --draft-model fails before the load
    model = _load(resolved, args)
    draft = None
    try:
        speculative, draft = speculation_for(model, resolved.model_id, args)
        args.attached.use_model(model)  # counted with its tokenizer, checked against n_ctx
        session = ChatSession(
            model,
            system=args.system,
            sampling=sampling,
            thinking=not args.no_think,
            max_tokens=args.max_tokens,
            speculative=speculative,
            draft=draft,
        )
        if args.prompt is not None:
            reply = _answer(session, args.attached.compose(args.prompt), args.show_thinking)
            return 130 if reply.stats.stop_reason == "cancelled" else 0
        return _interactive(session, args)
    finally:
        if draft is not None:
            draft.close()
        model.close()
