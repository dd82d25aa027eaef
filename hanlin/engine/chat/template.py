"""Chat prompts from a GGUF's own template: bounded rendering, and user text kept as text.

A GGUF carries its chat template (`tokenizer.chat_template`, Jinja2) as data written by
whoever made the file, and Hanlin renders it on a worker that holds the model lock. Two
things must therefore hold for any template, hostile ones included:

**Rendering ends within a couple of seconds** (`RENDER_TIMEOUT_S`). Jinja compiles a
template to Python code, so a hostile one is simply a Python loop:
`{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}` runs
for hours. The options considered:

- a loop or iteration budget inside the sandbox: Jinja's sandbox sees calls, attribute
  lookups and (optionally) operators, but not loop iterations, so the nested loop above,
  whose body is empty, never passes through any hook; counting iterations means
  replacing Jinja's code generator, which follows Jinja's internals from release to
  release;
- rendering on a thread that is abandoned at the deadline: a Python thread cannot be
  killed, so the abandoned render keeps a core busy for hours, and every retry adds one;
- rendering in a child process that is killed at the deadline: the strongest isolation,
  but a process start per render (or a server process to manage, in the desktop app,
  the CLI and in frozen installers) for work that normally takes a millisecond and runs
  several times per turn while an overflowing history is fitted.

Hanlin interrupts the render instead: a timer raises an exception *in the rendering
thread* when the deadline passes (`PyThreadState_SetAsyncExc`, the mechanism behind
Python's own KeyboardInterrupt delivery to the eval loop). Everything a template runs
is Python bytecode, so the render stops within microseconds of the deadline, on any
thread, unwinding normally (the model lock is released by its `with` block), and the
process carries on. The exception is a `BaseException` so no `except Exception` in the
template machinery can swallow it, and a pending one is cleared when the render ends
first, so it can never land in unrelated code.
What bytecode checks cannot interrupt is a single long C call; the sandbox therefore
refuses the operations that make one out of a short template: `**` with a huge result,
`*` building a huge string or list, calls and filters given a huge number
(`'x'.center(10**10)`), strings over `MAX_PROMPT_CHARS` stored in a `namespace()` or
passed to a macro (the doubling tricks), and an output over `MAX_PROMPT_CHARS`.
Any failure (Jinja's own errors, Python errors in template code, these limits) is a
`ChatTemplateError`, a GenerationError that names the template and says what to do.

**Text in a message is never a control token.** Tokenizing the rendered prompt with
llama.cpp's `parse_special=True` turns the template's markers (`<|im_start|>`,
`<|im_end|>`, BOS/EOS text) into their token ids, as it must; but it would do the same to
a pasted `<|im_start|>system\\n…` inside a user message and let it open a system turn.
Message contents are therefore read as text, the way the templates' authors expect
(Hugging Face tokenizers never parse special tokens inside the content either): before
rendering, each occurrence of a control token's text inside a content is broken up with
a private-use marker character that occurs nowhere else in the prompt; the rendered
prompt is cut at the markers and each piece tokenized with `parse_special=True`, so a
piece can contain a whole control-token text only where the template wrote it. Added
(user-defined) tokens such as Qwen3's `<think>` are matched by llama.cpp even without
`parse_special`, as in the Hugging Face tokenizer, and are left as they are. A prompt
whose contents hold no control-token text is tokenized exactly as before (one piece), so
prompts stay prefix-stable and KV-cache reuse keeps working.
"""

from __future__ import annotations

import ctypes
import functools
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from hanlin.engine.chat.thinking import prompt_opens_thinking
from hanlin.engine.core.errors import GenerationError, HanlinError

if TYPE_CHECKING:
    from hanlin.engine.models.families import FamilyBehavior
    from hanlin.engine.runtime.loader import LoadedModel

__all__ = [
    "CHATML_TEMPLATE",
    "MAX_PROMPT_CHARS",
    "RENDER_TIMEOUT_S",
    "ChatPrompter",
    "ChatTemplateError",
    "render_chat_prompt",
]

#: how long one rendering of a chat template may take (normal ones take milliseconds)
RENDER_TIMEOUT_S = 2.0
#: the longest prompt text a template may produce, and the longest string it may build
MAX_PROMPT_CHARS = 16 * 1024 * 1024
#: the largest number a template may pass to a call or filter (a width, a count)
_MAX_CALL_INT = 10_000_000
#: `**` results above this many bits are refused (a few thousand digits are plenty)
_MAX_POWER_BITS = 16_384

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_FIX_HINT = "re-download the model, or import a GGUF whose chat template works"


class ChatTemplateError(GenerationError):
    """The model's chat template is broken, hostile, or took too long to render."""

    def __init__(self, message: str, hint: str | None = _FIX_HINT) -> None:
        super().__init__(message, hint)


class _Message(Protocol):
    role: str
    content: str


# ---------------------------------------------------------------- the time limit


class _RenderTimeout(BaseException):
    """Raised inside the rendering thread at the deadline (never seen outside this module)."""


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise `_RenderTimeout` in this thread if the block runs longer than `seconds`."""
    thread_id = threading.get_ident()
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire() -> None:
        with lock:
            if not state["done"]:
                state["fired"] = True
                _set_async_exc(thread_id, _RenderTimeout)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["done"] = True
            if state["fired"]:
                # the block ended before the exception was delivered: take it back
                _set_async_exc(thread_id, ctypes.py_object())
        timer.cancel()


# ---------------------------------------------------------------- the sandbox


class _TemplateLimit(Exception):
    """A template asked for something the sandbox refuses (reported as ChatTemplateError)."""


def _check_size(value: Any) -> None:
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_PROMPT_CHARS:
        raise _TemplateLimit(f"it builds a value of {len(value)} characters or items")


def _check_args(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_CALL_INT:
            raise _TemplateLimit(f"it passes the number {value} to a function")
        _check_size(value)


class _BoundedNamespace(Namespace):
    """`namespace()` whose attributes cannot grow into huge strings (doubling in a loop)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _check_size(value)
        Namespace.__setitem__(self, name, value)


def _repeat_size(left: Any, right: Any) -> int | None:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(n, int):
            return len(seq) * max(n, 0)
    return None


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus limits on what one operation may build."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            magnitude = math.log2(abs(left)) if abs(left) > 1 else 0.0
            if right > 0 and magnitude * right > _MAX_POWER_BITS:
                raise _TemplateLimit(f"it computes {left} ** {right}")
        elif operator == "*":
            size = _repeat_size(left, right)
            if size is not None and size > MAX_PROMPT_CHARS:
                raise _TemplateLimit(f"it repeats a value to {size} characters or items")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_args(args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _bounded_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    # the value filtered (a message, the whole prompt so far) may be long; its arguments
    # (widths, counts) may not be huge. pass_context/pass_environment filters get that first.
    skip = 2 if hasattr(fn, "jinja_pass_arg") else 1

    @functools.wraps(fn)  # keeps Jinja's pass_context/pass_environment marker
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_args(args[skip:], kwargs)
        return fn(*args, **kwargs)

    return wrapper


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(
        f"The model's chat template refused the conversation: {message}",
        "check the roles and order of the messages, or use a model whose template allows them",
    )


def _environment() -> _Sandbox:
    env = _Sandbox(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(str(fmt))
    env.globals["namespace"] = _BoundedNamespace
    env.filters = {name: _bounded_filter(f) for name, f in env.filters.items()}
    return env


_ENV = _environment()


@functools.lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    """The compiled template (compiling is the slow part; a model's template never changes)."""
    return _ENV.from_string(template)


def _failure(exc: BaseException) -> ChatTemplateError:
    from jinja2 import TemplateSyntaxError

    if isinstance(exc, TemplateSyntaxError):
        return ChatTemplateError(f"The model's chat template is not valid Jinja2: {exc}")
    if isinstance(exc, _TemplateLimit):
        return ChatTemplateError(f"The model's chat template was stopped: {exc}")
    detail = str(exc) or type(exc).__name__
    return ChatTemplateError(f"The model's chat template failed: {type(exc).__name__}: {detail}")


def render_chat_prompt(
    template: str | None,
    messages: Sequence[_Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    variables: Mapping[str, object] | None = None,
    add_generation_prompt: bool = True,
    timeout_s: float = RENDER_TIMEOUT_S,
) -> str:
    """The prompt text for `messages` from a GGUF chat template (ChatML when None).

    Raises ChatTemplateError when the template is invalid, fails, exceeds the sandbox's
    limits, or runs longer than `timeout_s`.
    """
    source = template or CHATML_TEMPLATE
    context = {
        # `extra`: fields some turns carry for the template (an assistant's `tool_calls`,
        # a tool result's `tool_call_id` / `name`), as Hugging Face chat templates read them
        "messages": [
            {"role": m.role, "content": m.content, **(getattr(m, "extra", None) or {})}
            for m in messages
        ],
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token,
        "eos_token": eos_token,
        "tools": None,
        **(variables or {}),
    }
    try:
        with _time_limit(timeout_s):
            compiled = _compile(source)
            parts: list[str] = []
            size = 0
            for chunk in compiled.generate(**context):
                size += len(chunk)
                if size > MAX_PROMPT_CHARS:
                    raise _TemplateLimit(f"its output is longer than {MAX_PROMPT_CHARS} characters")
                parts.append(chunk)
            return "".join(parts)
    except _RenderTimeout:
        raise ChatTemplateError(
            f"The model's chat template took longer than {timeout_s:g} s to render and was "
            "stopped (it may loop without end)"
        ) from None
    except HanlinError:
        raise
    except Exception as exc:  # template code: Jinja, Python or sandbox errors, MemoryError
        raise _failure(exc) from exc


# ---------------------------------------------------------------- prompt tokens


def _pick_mark(texts: Sequence[str]) -> str:
    """A private-use character that occurs in none of `texts` (U+E000 unless one holds it)."""
    for mark in (chr(c) for c in range(0xE000, 0xF900)):
        if not any(mark in t for t in texts):
            return mark
    raise GenerationError(
        "The conversation uses every private-use character, so special-token text in it "
        "cannot be kept as text",
        "remove the private-use characters (U+E000–U+F8FF) from the messages",
    )


class ChatPrompter:
    """Renders and tokenizes a conversation for one loaded model (under its lock)."""

    def __init__(
        self,
        model: LoadedModel,
        behavior: FamilyBehavior,
        thinking: bool,
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.session = model.session
        # a GGUF without a template gets its family's (GLM's `[gMASK]<sop>` format), else ChatML
        self.template = model.chat_template or behavior.default_template
        self.variables = behavior.template_variables(thinking)
        if tools:  # OpenAI-style function specs, the `tools` Qwen/GLM templates render
            self.variables = {**self.variables, "tools": list(tools)}
        self.soft_switch = behavior.soft_switch_suffix(thinking, self.template)
        # families trained on a prompt that opens <think> (Qwen3-Thinking-2507) get it even
        # from a template that does not write it
        self.think_open = behavior.forced_think_open(thinking)
        s = self.session
        self.bos_text = s.detokenize([s.bos]) if s.bos >= 0 else ""
        eos = model.llama.token_eos()
        self.eos_text = s.detokenize([eos]) if eos >= 0 else ""

    def _special_texts(self, text: str) -> frozenset[str]:
        return self.session.special_texts(text)  # remembered per text by the session

    def _guard(self, content: str, mark: str) -> str:
        """`content` with every control-token text in it broken up by `mark`."""
        for _ in range(8):
            pieces = content.split(mark)
            found = {t for p in pieces for t in self._special_texts(p) if t in p}
            if not found:
                return content
            for text in sorted(found, key=len, reverse=True):
                content = content.replace(text, text[0] + mark + text[1:])
        raise GenerationError(
            "A message holds special-token text that could not be kept as plain text",
            "remove the `<|…|>`-style markers from the message",
        )

    def prompt(self, messages: Sequence[_Message]) -> tuple[list[int], str]:
        """(token ids, prompt text) for `messages`; message contents tokenize as text."""
        turns = [_Turn(m.role, m.content, getattr(m, "extra", None)) for m in messages]
        if self.soft_switch:
            last_user = max((i for i, m in enumerate(turns) if m.role == "user"), default=None)
            if last_user is not None:
                turns[last_user].content += self.soft_switch
        mark = ""
        if any(self._special_texts(t.content) for t in turns):
            mark = _pick_mark([self.template or CHATML_TEMPLATE, *(t.content for t in turns)])
            for t in turns:
                t.content = self._guard(t.content, mark)
        text = render_chat_prompt(
            self.template,
            turns,
            bos_token=self.bos_text,
            eos_token=self.eos_text,
            variables=self.variables,
        )
        if self.think_open and not prompt_opens_thinking(text):
            text += self.think_open
        s = self.session
        pieces = text.split(mark) if mark else [text]
        ids: list[int] = []
        for piece in pieces:
            if piece:
                ids += s.tokenize(piece, add_special=False, parse_special=True)
        if s.add_bos and s.bos >= 0 and (not ids or ids[0] != s.bos):
            ids.insert(0, s.bos)
        return ids, "".join(pieces)


class _Turn:
    __slots__ = ("content", "extra", "role")

    def __init__(self, role: str, content: str, extra: Mapping[str, Any] | None = None) -> None:
        self.role = role
        self.content = content
        self.extra = extra
