"""Reasoning split: streamed text into thinking and answer, with tags cut across tokens.

Why its own module: Qwen3 and DeepSeek-R1 write their reasoning as `<think>…</think>`
before the answer, and the tags arrive split across tokens (`<th`, `ink>`). The chat
stream feeds every decoded piece through `ThinkSplitter`, which holds back text that may
still become a tag, so the front ends get clean "thinking" and "answer" events and the
history never stores (or sends back) the reasoning as part of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hanlin.engine.models.families import THINK_CLOSE, THINK_OPEN

__all__ = ["StreamEvent", "ThinkSplitter", "prompt_opens_thinking"]


@dataclass(frozen=True)
class StreamEvent:
    """A piece of the reply as it streams: reasoning ("thinking") or the answer."""

    kind: Literal["answer", "thinking"]
    text: str


class ThinkSplitter:
    """Splits streamed text into thinking and answer, with tags that may arrive in pieces.

    A reasoning block is recognised only at the start of the reply (leading
    whitespace aside) or when the prompt already opened it (`in_thinking=True`:
    DeepSeek-R1 and Qwen3-Thinking-2507 templates end with `<think>\\n`, so the reply
    holds only the closing `</think>`), so an answer that talks about `<think>` tags is
    left alone. A model that opens the block again although the prompt did (a template
    and a model that disagree) has that second opening tag dropped, not shown as
    reasoning.
    """

    def __init__(
        self, in_thinking: bool = False, open_tag: str = THINK_OPEN, close_tag: str = THINK_CLOSE
    ):
        self.open_tag, self.close_tag = open_tag, close_tag
        self._state = "thinking" if in_thinking else "start"
        self._buf = ""
        self._thinking_started = False
        self._reopen_checked = False  # a block opened by the prompt, opened again by the model
        self._answer_started = False
        self.saw_thinking = in_thinking
        self.thinking_parts: list[str] = []
        self.answer_parts: list[str] = []

    @property
    def in_thinking(self) -> bool:
        return self._state == "thinking"

    def _emit(self, kind: Literal["answer", "thinking"], text: str, out: list[StreamEvent]) -> None:
        if kind == "thinking":
            if not self._thinking_started:
                text = text.lstrip()
            if not text:
                return
            self._thinking_started = True
            self.thinking_parts.append(text)
        else:
            if not self._answer_started:
                text = text.lstrip()
            if not text:
                return
            self._answer_started = True
            self.answer_parts.append(text)
        out.append(StreamEvent(kind, text))

    @staticmethod
    def _held(buf: str, tag: str) -> int:
        """Length of the longest tail of `buf` that is a proper prefix of `tag`."""
        for n in range(min(len(tag) - 1, len(buf)), 0, -1):
            if tag.startswith(buf[-n:]):
                return n
        return 0

    def feed(self, text: str) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self._buf += text
        while self._buf:
            if self._state == "start":
                stripped = self._buf.lstrip()
                if not stripped:
                    break
                if stripped.startswith(self.open_tag):
                    self._buf = stripped[len(self.open_tag) :]
                    self._state = "thinking"
                    self.saw_thinking = True
                    self._reopen_checked = True
                    continue
                if self.open_tag.startswith(stripped):
                    break  # could still become the opening tag
                self._state = "answer"
            elif self._state == "thinking":
                if not self._thinking_started and not self._reopen_checked:
                    stripped = self._buf.lstrip()
                    if not stripped:
                        break
                    if stripped.startswith(self.open_tag):
                        self._buf = stripped[len(self.open_tag) :]
                    elif self.open_tag.startswith(stripped):
                        break  # could still become a repeated opening tag
                    self._reopen_checked = True
                    continue
                i = self._buf.find(self.close_tag)
                if i >= 0:
                    self._emit("thinking", self._buf[:i], out)
                    self._buf = self._buf[i + len(self.close_tag) :]
                    self._state = "answer"
                    continue
                hold = self._held(self._buf, self.close_tag)
                self._emit("thinking", self._buf[: len(self._buf) - hold], out)
                self._buf = self._buf[len(self._buf) - hold :]
                break
            else:
                self._emit("answer", self._buf, out)
                self._buf = ""
        return out

    def finish(self) -> list[StreamEvent]:
        """Flush what is held back at the end of the stream."""
        out: list[StreamEvent] = []
        if self._buf:
            self._emit("thinking" if self._state == "thinking" else "answer", self._buf, out)
            self._buf = ""
        return out

    @property
    def thinking(self) -> str | None:
        text = "".join(self.thinking_parts).strip()
        return text if (text or self.saw_thinking) else None

    @property
    def answer(self) -> str:
        return "".join(self.answer_parts).strip()


def prompt_opens_thinking(prompt: str) -> bool:
    """True when the rendered prompt ends inside an open reasoning block."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)
