"""One generation on a served model's batch decoder, as a stream of events for a route.

The text pipeline is the chat engine's (engine/chat/stream.py): token pieces →
`PieceDecoder` (whole UTF-8 characters) → `StopMatcher` (the family's stop strings and
the request's `stop`, held back across tokens) → `ThinkSplitter` (reasoning apart from
the answer, never inside `content`) → `ToolCallSplitter` when tools were offered. It
runs on the decoder's thread inside `on_token`, so a stop string ends the sequence at
the very token that completed it. Events cross to the event loop in batches (one
wake-up per loop iteration, however many tokens arrived).

`prepare_chat` / `prepare_completion` turn a validated request into prompt tokens and
`GenParams`: the sampling levels (request > the user's per-model settings > the catalog
entry > the family's recommendation > defaults, engine/chat/sampling.py), `max_tokens`
capped by the room left in the context, and the grammar for JSON mode or a forced tool
call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hanlin.engine.chat.sampling import resolve_sampling
from hanlin.engine.chat.thinking import StreamEvent, ThinkSplitter, prompt_opens_thinking
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import GenerationError
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.runtime.batch import BatchJob
from hanlin.engine.runtime.session import PieceDecoder, StopMatcher, build_sampler
from hanlin.server.errors import ApiError
from hanlin.server.prompts import Turn, render
from hanlin.server.tools import ToolCall, ToolCallSplitter, ToolSpec, tool_call_grammar

if TYPE_CHECKING:
    from hanlin.server.models import ServedModel

__all__ = [
    "CallEvent",
    "Delta",
    "GenParams",
    "Generation",
    "Outcome",
    "prepare_chat",
    "prepare_completion",
]


@dataclass(frozen=True)
class Delta:
    kind: str  # "answer" | "thinking"
    text: str


@dataclass(frozen=True)
class CallEvent:
    call: ToolCall


@dataclass
class Outcome:
    content: str = ""
    thinking: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    #: "stop" | "length" | "tool_calls" | "cancelled" | "error"
    finish: str = "stop"
    #: the request's stop string that ended the reply (Anthropic's `stop_sequence`)
    stop_sequence: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    #: seconds evaluating the prompt (after waiting for a sequence)
    prompt_s: float = 0.0
    error: BaseException | None = None

    def timings(self) -> dict[str, float]:
        """llama-server's `timings` object (same keys), for clients and benchmarks."""
        n = self.completion_tokens
        return {
            "cache_n": self.cached_tokens,
            "prompt_n": self.prompt_tokens - self.cached_tokens,
            "prompt_ms": round(self.prompt_s * 1000, 3),
            "predicted_n": n,
            "predicted_per_second": round(self.tokens_per_s, 3),
            "ttft_ms": round(self.ttft_s * 1000, 3),
        }


Event = Delta | CallEvent | Outcome


@dataclass
class GenParams:
    max_tokens: int
    sampling: dict[str, float]
    seed: int | None = None
    stops: tuple[str, ...] = ()
    family_stops: tuple[str, ...] = ()
    grammar: str | None = None
    stop_ids: frozenset[int] = frozenset()
    split_thinking: bool = True
    opens_thinking: bool = False
    parse_tools: bool = False


class Generation:
    """Runs one job on `served.decoder`; `events()` yields its Deltas, CallEvents, Outcome."""

    def __init__(
        self,
        served: ServedModel,
        tokens: Sequence[int],
        params: GenParams,
        cancel: CancelToken,
    ) -> None:
        self.served = served
        self.tokens = list(tokens)
        self.params = params
        self.cancel = cancel
        self._decoder = PieceDecoder()
        self._matcher = StopMatcher(tuple(params.family_stops) + tuple(params.stops))
        self._think = (
            ThinkSplitter(in_thinking=params.opens_thinking) if params.split_thinking else None
        )
        self._tools = ToolCallSplitter() if params.parse_tools else None
        self._raw: list[str] = []
        self._answer: list[str] = []
        self._thinking: list[str] = []
        self._items: list[Event] = []
        self._lock = threading.Lock()
        self._scheduled = False
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = time.perf_counter()

    # ------------------------------------------------------------ decoder thread

    def _push(self, item: Event) -> None:
        with self._lock:
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
            self._loop.call_soon_threadsafe(self._event.set)

    def _route(self, events: Sequence[Any]) -> None:
        for ev in events:
            if ev.kind == "thinking":
                self._thinking.append(ev.text)
                self._push(Delta("thinking", ev.text))
                continue
            parts = self._tools.feed(ev.text) if self._tools is not None else [ev.text]
            self._emit_answer(parts)

    def _emit_answer(self, parts: Sequence[str | ToolCall]) -> None:
        for part in parts:
            if isinstance(part, ToolCall):
                self._push(CallEvent(part))
            elif part:
                self._answer.append(part)
                self._push(Delta("answer", part))

    def _on_token(self, _token: int, piece: bytes) -> bool:
        text = self._decoder.feed(piece)
        if not text:
            return False
        self._raw.append(text)
        out, stopped = self._matcher.feed(text)
        if out:
            self._route(self._split(out))
        return stopped

    def _split(self, text: str) -> list[StreamEvent]:
        if self._think is None:
            return [StreamEvent("answer", text)] if text else []
        return self._think.feed(text)

    def _on_done(self, job: BatchJob) -> None:
        if not self._matcher.stopped:
            tail, _ = self._matcher.feed(self._decoder.flush())
            self._route(self._split(tail + self._matcher.flush()))
        if self._think is not None:
            self._route(self._think.finish())
        if self._tools is not None:
            self._emit_answer(self._tools.finish())
        calls = self._tools.calls if self._tools is not None else []
        finish = job.stop_reason
        if calls and finish in ("stop", "length"):
            finish = "tool_calls"
        stop_sequence = None
        if self._matcher.stopped and self.params.stops:
            raw = "".join(self._raw)
            found = [(raw.find(s), s) for s in self.params.stops if s and s in raw]
            stop_sequence = min(found)[1] if found else None
        thinking = "".join(self._thinking).strip()
        saw = self._think is not None and self._think.saw_thinking
        content = "".join(self._answer)
        outcome = Outcome(
            content=content.strip() if self._think is not None else content,
            thinking=thinking if (thinking or saw) else None,
            tool_calls=list(calls),
            finish=finish,
            stop_sequence=stop_sequence,
            prompt_tokens=job.prompt_tokens,
            cached_tokens=job.cached_tokens,
            completion_tokens=job.generated_tokens,
            ttft_s=(job.first_token_at - self.started) if job.first_token_at else 0.0,
            tokens_per_s=job.tokens_per_s,
            prompt_s=max(0.0, job.prompt_done_at - job.started_at) if job.prompt_done_at else 0.0,
            error=job.error,
        )
        self._push(outcome)

    # ------------------------------------------------------------ event loop

    def start(self) -> None:
        """Submit the job (call on the event loop)."""
        self._loop = asyncio.get_running_loop()
        p = self.params
        sampler = build_sampler(
            self.served.decoder.vocab, seed=p.seed, grammar=p.grammar, **p.sampling
        )
        job = BatchJob(
            tokens=self.tokens,
            sampler=sampler,
            max_tokens=p.max_tokens,
            on_token=self._on_token,
            cancel=self.cancel,
            stop_ids=p.stop_ids,
            on_done=self._on_done_safe,
        )
        self._job = job
        try:
            self.served.decoder.submit(job)
        except BaseException:
            sampler.close()
            raise

    def _on_done_safe(self, job: BatchJob) -> None:
        try:
            self._on_done(job)
        except BaseException as exc:  # never leave the route waiting
            self._push(Outcome(finish="error", error=exc))
        finally:
            job.sampler.close()

    async def events(self) -> AsyncIterator[Event]:
        while True:
            await self._event.wait()
            with self._lock:
                items, self._items = self._items, []
                self._scheduled = False
                self._event.clear()
            for item in items:
                yield item
                if isinstance(item, Outcome):
                    return

    async def outcome(self) -> Outcome:
        async for item in self.events():
            if isinstance(item, Outcome):
                return item
        raise GenerationError("The generation ended without a result")  # not reached


# ---------------------------------------------------------------- preparing requests


@dataclass
class ChatOptions:
    """What a chat request asks for, in either dialect."""

    turns: list[Turn]
    thinking: bool = True
    tools: list[ToolSpec] = field(default_factory=list)
    #: None/"auto": the model decides; "none": no tools; "required"; or a tool's name
    tool_choice: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None
    stops: tuple[str, ...] = ()
    seed: int | None = None
    #: a grammar for the whole reply (JSON mode), from grammars.py
    grammar: str | None = None


def _request_sampling(opts: Any) -> Sampling:
    return Sampling(
        temperature=opts.temperature,
        top_p=opts.top_p,
        top_k=opts.top_k,
        min_p=opts.min_p,
        repeat_penalty=opts.repeat_penalty,
    )


def _limit(requested: int | None, default: int | None, prompt: int, n_ctx: int) -> int:
    room = n_ctx - prompt
    if room < 1:
        raise ApiError(
            400,
            f"The prompt has {prompt} tokens; this server's context holds {n_ctx} per request",
            code="context_length_exceeded",
            param="messages",
        )
    if requested is not None and requested < 1:
        raise ApiError(400, "max_tokens must be at least 1", param="max_tokens")
    return min(requested or default or room, room)


async def prepare_chat(served: ServedModel, opts: ChatOptions) -> tuple[list[int], GenParams]:
    behavior = served.behavior
    tools = opts.tools if opts.tool_choice != "none" else []
    grammar = opts.grammar
    if tools and opts.tool_choice not in (None, "auto", "none"):
        only = None if opts.tool_choice == "required" else opts.tool_choice
        grammar = tool_call_grammar(tools, only)
    thinking = opts.thinking
    if grammar and behavior.thinks(thinking):
        if behavior.thinking_switch:
            thinking = False  # the grammar decides the first token: no room for <think>
        else:
            grammar = None  # this family always thinks first: it cannot be constrained
    tokens, text = await asyncio.to_thread(
        render, served, opts.turns, thinking=thinking, tools=tools
    )
    used = resolve_sampling(_request_sampling(opts).over(served.sampling()), behavior, thinking)
    max_tokens = _limit(opts.max_tokens, used.max_tokens, len(tokens), served.n_ctx)
    params = GenParams(
        max_tokens=max_tokens,
        sampling={k: v for k, v in used.given().items() if k != "max_tokens"},
        seed=opts.seed,
        stops=tuple(s for s in opts.stops if s),
        family_stops=tuple(behavior.stop_strings),
        grammar=grammar,
        split_thinking=True,
        opens_thinking=prompt_opens_thinking(text),
        parse_tools=bool(tools),
    )
    return tokens, params


@dataclass
class CompletionOptions:
    prompt: str
    suffix: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None
    stops: tuple[str, ...] = ()
    seed: int | None = None
    grammar: str | None = None


def _completion_tokens(
    served: ServedModel, opts: CompletionOptions
) -> tuple[list[int], frozenset[int], str]:
    """(tokens, stop ids, FIM template name) for a raw or fill-in-the-middle completion."""
    from hanlin.engine.completion.fim import PromptLimits, build_prompt

    with served.render_lock:
        if opts.suffix is not None:
            template = served.fim_template()
            unbounded = 1 << 30
            limits = PromptLimits(
                prefix_lines=unbounded,
                prefix_chars=unbounded,
                suffix_lines=unbounded,
                suffix_chars=unbounded,
            )
            fim = build_prompt(
                served.vocab(), template, prefix=opts.prompt, suffix=opts.suffix, limits=limits
            )
            return fim.tokens, fim.stop_ids, template.name
        # a raw prompt: what the client wrote, its special-token texts included (clients
        # build FIM and chat prompts themselves this way)
        session = served.loaded.session
        tokens = session.tokenize(opts.prompt, add_special=True, parse_special=True)
        return tokens, frozenset(), ""


async def prepare_completion(
    served: ServedModel, opts: CompletionOptions
) -> tuple[list[int], GenParams, str]:
    tokens, stop_ids, template = await asyncio.to_thread(_completion_tokens, served, opts)
    if not tokens:
        raise ApiError(400, "The prompt is empty", param="prompt")
    used = resolve_sampling(_request_sampling(opts).over(served.sampling()), served.behavior, False)
    max_tokens = _limit(
        opts.max_tokens, 16 if opts.max_tokens is None else None, len(tokens), served.n_ctx
    )
    params = GenParams(
        max_tokens=max_tokens,
        sampling={k: v for k, v in used.given().items() if k != "max_tokens"},
        seed=opts.seed,
        stops=tuple(s for s in opts.stops if s),
        grammar=opts.grammar,
        stop_ids=stop_ids,
        split_thinking=False,
    )
    return tokens, params, template
