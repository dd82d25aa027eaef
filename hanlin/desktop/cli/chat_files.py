"""`hanlin chat --file PATH` and `/file PATH`: files and folders sent with a message.

Why a module of its own: chat_cmd.py drives the conversation; this holds what the terminal
does with attachments — read them before the model loads (a wrong path or a binary file
fails in a second, not after the load), count them again with the model's own tokenizer
once it is loaded, say on stderr what was attached and what it costs against the context,
refuse a set that cannot fit, and put them into the next message with the engine's layout
(`engine/chat/attachments.compose_user_message`, the same as the window's).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from hanlin.engine.chat.attachments import (
    Attachment,
    compose_user_message,
    model_token_counter,
    read_paths,
    recount,
)
from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.units import format_bytes

__all__ = ["PendingFiles", "file_command"]

#: tokens left for the question and the start of an answer, beside the attachments
_ROOM = 64


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class PendingFiles:
    """Attachments waiting for the next message (the first one, or after `/file`)."""

    def __init__(self) -> None:
        self.attachments: list[Attachment] = []
        self._model: Any = None

    @classmethod
    def read(cls, paths: Iterable[str] | None) -> PendingFiles:
        """Read `--file` paths now (errors before the model loads); counted later."""
        files = cls()
        if paths:
            files.attachments = list(read_paths(list(paths)).attachments)
        return files

    def use_model(self, model: Any) -> None:
        """Count with this loaded model's tokenizer from now on, and check the fit."""
        self._model = model
        if self.attachments:
            self.attachments = list(recount(self.attachments, model_token_counter(model)))
            self._check_fit(self.attachments)
            self.describe(self.attachments)

    def add(self, paths: list[str]) -> None:
        """`/file PATH…`: attach more to the next message; prints what was attached."""
        counter = model_token_counter(self._model) if self._model is not None else None
        got = read_paths(paths, count_tokens=counter, already=self.attachments)
        self._check_fit([*self.attachments, *got.attachments])
        self.attachments.extend(got.attachments)
        self.describe(got.attachments)
        for skipped in got.skipped:
            _err(f"  skipped {skipped.path}: {skipped.reason}")

    def describe(self, attachments: list[Attachment]) -> None:
        for a in attachments:
            language = f"{a.language}, " if a.language else ""
            about = "about " if a.tokens_estimated else ""
            _err(
                f"attached {a.label} ({language}{format_bytes(a.size_bytes)}, "
                f"{about}{a.tokens:,} tokens)"
            )
        if len(self.attachments) > 1 and attachments:
            total = sum(a.tokens for a in self.attachments)
            _err(f"attachments: {len(self.attachments)} files, {total:,} tokens")

    def _check_fit(self, attachments: list[Attachment]) -> None:
        model = self._model
        if model is None:
            return
        tokens = sum(a.tokens for a in attachments)
        if tokens + _ROOM <= model.n_ctx:
            return
        trained = getattr(getattr(model, "info", None), "context_length", None) or 0
        need = tokens + 1024
        larger = (
            f"load a larger context with `--ctx {need}` (this model was trained for {trained:,})"
            if trained >= need
            else "this model's context cannot hold them"
        )
        raise HanlinError(
            f"The attachments are {tokens:,} tokens, more than fits the "
            f"{model.n_ctx:,}-token context with a question and an answer",
            f"attach fewer or smaller files, or {larger}",
        )

    def compose(self, text: str) -> str:
        """The message with the pending attachments before `text`; they are then sent."""
        if not self.attachments:
            return text
        message = compose_user_message(text, self.attachments)
        self.attachments = []
        return message


def file_command(files: PendingFiles, rest: str) -> None:
    """The interactive `/file PATH…` command: errors are printed, the chat goes on."""
    import shlex

    try:
        paths = shlex.split(rest)
    except ValueError as exc:
        _err(f"hanlin: error: {exc}")
        return
    if not paths:
        if files.attachments:
            files.describe(files.attachments)
        else:
            _err("usage: /file PATH… (files or folders, sent with your next message)")
        return
    try:
        files.add(paths)
    except HanlinError as exc:
        _err(f"hanlin: error: {exc}")
