"""Inline code completion from a model on a remote server, behind `CompletionEngine`'s surface.

Why: a team's GPU server completes with a 7B-32B coder model far faster than a laptop's
CPU, and the language server should not care which one answers. `RemoteCompleter` takes
the same `CompletionRequest`, returns the same `CompletionResult`, raises `Cancelled` the
same way, and runs the same post-processing filters as the local engine.

Three routes, chosen once per server by `prepare()` (the language server's "loading"):

- **`/infill`** — llama.cpp's `llama-server` builds the FIM prompt itself from the GGUF's
  own FIM tokens and reuses its KV cache across requests; the context ring of other
  files goes in as `input_extra` (`[{filename, text}]`), the current line's start as
  `prompt` (llama.vscode's layout, which keeps `input_prefix` stable while typing).
  Used when the server answers `/infill`; llama-server refuses it (501) for a model
  without FIM tokens.
- **`/v1/completions` with a FIM prompt** — for servers without `/infill` (vLLM) when the
  model's id names a family whose FIM template is in the registry (engine/completion/
  fim.py): the prompt is laid out by the same `build_prompt` as for local models, with
  the template's special tokens written as text (vLLM's tokenizer reads them back as
  specials), repository context included.
- **`/v1/completions` with `suffix`** — otherwise (e.g. `hanlin serve`, which turns it
  into FIM through its own registry); a server that rejects `suffix` gets the prefix
  alone from then on.

Requests stream so they stop at once: at the end of the line when one line is wanted,
at the end of the block when several are, when the time budget runs out, or when a
newer keystroke cancels them — leaving the stream closes the connection, and the
server stops generating. A response cache serves what the user types through a shown
completion without asking the server again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hanlin.engine.completion.engine import (
    CompletionRequest,
    CompletionResult,
    EngineTotals,
    ResponseCache,
    _CacheEntry,
)
from hanlin.engine.completion.filters import DEFAULT_FILTERS, FILTERS, postprocess
from hanlin.engine.completion.filters.base import FilterContext, current_line_before
from hanlin.engine.completion.filters.base import wants_multiline as _wants_multiline
from hanlin.engine.completion.fim import (
    FIM_TEMPLATES,
    FimTemplate,
    PromptLimits,
    build_prompt,
    window_prefix,
    window_suffix,
)
from hanlin.engine.core.cancel import NEVER_CANCELLED, CancelToken
from hanlin.engine.core.errors import Cancelled
from hanlin.engine.core.settings import Settings, load_settings
from hanlin.engine.remote.client import RemoteClient
from hanlin.engine.remote.endpoint import RemoteTarget, endpoint_for, split_remote_ref
from hanlin.engine.remote.errors import (
    RemoteError,
    RemoteHTTPError,
    RemoteProtocolError,
    RemoteTimeoutError,
    RemoteUnsupportedError,
)
from hanlin.engine.remote.transport import DeadlineExceeded

__all__ = [
    "ROUTES",
    "RemoteCompleter",
    "RemoteModelInfo",
    "guess_fim_template",
    "open_remote_completer",
]

Route = Literal["infill", "fim", "suffix", "prefix"]
ROUTES: tuple[Route, ...] = ("infill", "fim", "suffix", "prefix")


@dataclass(frozen=True, slots=True)
class RemoteModelInfo:
    """What the language server shows about the model (`hanlin/status`, logs)."""

    model_id: str
    path: str
    backend: str = "remote"
    gpu_fallback: str | None = None


@dataclass(frozen=True, slots=True)
class RouteName:
    """`template.name` for the language server's status: which route serves completions."""

    name: str


def guess_fim_template(model_id: str) -> FimTemplate | None:
    """The registry's FIM template for a model id like `Qwen/Qwen2.5-Coder-7B`, if any."""
    text = model_id.lower().replace("_", "-").replace(" ", "-")
    best: tuple[int, FimTemplate] | None = None
    for template in FIM_TEMPLATES.values():
        if not template.is_fim:
            continue
        for family in template.families:
            variants = {family, family.replace(".", ""), family.replace("-", "")}
            if any(v in text for v in variants) and (best is None or len(family) > best[0]):
                best = (len(family), template)
    return best[1] if best else None


class _TextTokenizer:
    """`build_prompt`'s tokenizer, writing text instead of ids: one layout for both.

    A "token" is a piece of text and a special token is its own text, so joining
    `build_prompt(...).tokens` gives the prompt a server-side tokenizer reads back,
    special tokens included, laid out exactly as for a local model.
    """

    add_bos = False
    bos_id = None

    def tokenize(self, text: str) -> list[Any]:
        return [text] if text else []

    def token_id(self, text: str) -> Any:
        return text


#: every registered template's special texts: the filters cut an answer at them
_ALL_SPECIALS: tuple[str, ...] = tuple(
    dict.fromkeys(t for template in FIM_TEMPLATES.values() for t in template.special_texts)
)


def _block_done(raw: str, fctx: FilterContext) -> bool:
    """The complete lines so far end the cursor's block or start repeating (as the engine)."""
    complete = raw.rsplit("\n", 1)[0]
    if "\n" not in raw or not complete.strip():
        return False
    return any(
        len(FILTERS[name](complete, fctx)) < len(complete)
        for name in ("limit_scope_by_indentation", "remove_repetitive_lines")
    )


class RemoteCompleter:
    """Completes code with a remote model; the same surface as `CompletionEngine`."""

    def __init__(
        self,
        target: RemoteTarget,
        *,
        client: RemoteClient | None = None,
        route: Route | None = None,
        template: FimTemplate | None = None,
        response_cache: bool = True,
        cache_size: int = 256,
        limits: PromptLimits | None = None,
        filters: Sequence[str] = DEFAULT_FILTERS,
    ) -> None:
        self.target = target
        self.client = client or RemoteClient(target.endpoint)
        self.route: Route | None = route
        self.fim_template = template
        self.response_cache = response_cache
        self.cache = ResponseCache(cache_size)
        self.limits = limits or PromptLimits()
        self.filters = tuple(filters)
        self.totals = EngineTotals()
        self._lock = threading.Lock()
        self.info = RemoteModelInfo(model_id=target.ref, path=target.endpoint.url)

    # -- what the language server reads -------------------------------------------------

    @property
    def template(self) -> RouteName:
        route = self.route or "unprepared"
        if route == "fim" and self.fim_template is not None:
            return RouteName(f"remote:{self.fim_template.name}")
        return RouteName(f"remote:{route}")

    @property
    def special_texts(self) -> tuple[str, ...]:
        return _ALL_SPECIALS

    # -- choosing the route ----------------------------------------------------------------

    def prepare(self, cancel: CancelToken | None = None) -> Route:
        """Pick the route (see the module docstring); errors reaching the server raise."""
        if self.route is not None:
            return self.route
        probe = {"input_prefix": "", "input_suffix": "", "prompt": "", "n_predict": 1}
        try:
            for _chunk in self.client.infill(probe, cancel):
                pass
            self.route = "infill"
            return self.route
        except (RemoteUnsupportedError, RemoteHTTPError):
            pass  # not llama-server, or a model without FIM tokens
        template = self.fim_template or guess_fim_template(self.target.model)
        if template is not None:
            self.fim_template = template
            self.route = "fim"
        else:
            self.route = "suffix"
        return self.route

    # -- completing ------------------------------------------------------------------------

    def filter_context(self, request: CompletionRequest) -> FilterContext:
        wanted = _wants_multiline(request.prefix, request.suffix)
        return FilterContext(
            prefix=request.prefix,
            suffix=request.suffix,
            multiline=wanted if request.multiline is None else request.multiline and wanted,
            language=request.language,
            special_texts=_ALL_SPECIALS,
        )

    def clear_cache(self) -> None:
        self.cache.clear()

    def complete(
        self, request: CompletionRequest, *, cancel: CancelToken | None = None
    ) -> CompletionResult:
        """Complete at the cursor; `Cancelled` if `cancel` fires (the request is aborted)."""
        cancel = cancel or NEVER_CANCELLED
        started = time.perf_counter()
        route = self.prepare(cancel)
        fctx = self.filter_context(request)
        header = self._cache_header(request, fctx.multiline, route)
        if self.response_cache:
            hit = self.cache.lookup(header, request.prefix)
            if hit is not None:
                text = postprocess(hit[0], fctx, self.filters) if hit[0] else ""
                result = self._result(text, hit[0], started, "cache", from_cache=True)
                self._count(result)
                return result
        cancel.raise_if_cancelled()
        deadline = time.monotonic() + request.time_budget_ms / 1000
        try:
            raw, stop_reason, figures = self._generate(route, request, fctx, cancel, deadline)
        except Cancelled:
            with self._lock:
                self.totals.cancelled += 1
            raise
        text = postprocess(raw, fctx, self.filters)
        result = self._result(text, raw, started, stop_reason, **figures)
        if self.response_cache and stop_reason != "time":
            self.cache.put(self.cache.key(header, request.prefix), _CacheEntry(text, raw))
        self._count(result)
        return result

    def _generate(
        self,
        route: Route,
        request: CompletionRequest,
        fctx: FilterContext,
        cancel: CancelToken,
        deadline: float,
    ) -> tuple[str, str, dict[str, int]]:
        try:
            return self._stream(route, request, fctx, cancel, deadline)
        except RemoteHTTPError as exc:
            if route != "suffix" or exc.status not in (400, 422):
                raise
        # the server rejects `suffix` (vLLM does): complete from the prefix from now on
        self.route = "prefix"
        return self._stream("prefix", request, fctx, cancel, deadline)

    def _stream(
        self,
        route: Route,
        request: CompletionRequest,
        fctx: FilterContext,
        cancel: CancelToken,
        deadline: float,
    ) -> tuple[str, str, dict[str, int]]:
        chunks = self._request(route, request, fctx.multiline, cancel, deadline)
        raw = ""
        pieces = 0
        figures = {"tokens_evaluated": 0, "tokens_cached": 0, "generated_tokens": 0}
        stop_reason = "stop"
        try:
            for chunk in chunks:
                piece, finish = self._piece(route, chunk)
                self._figures(chunk, figures)
                if piece:
                    pieces += 1
                    raw += piece
                    if "\n" in piece:
                        if not fctx.multiline:
                            raw = raw.split("\n", 1)[0]
                            stop_reason = "eol"
                            break
                        if _block_done(raw, fctx):
                            stop_reason = "scope"
                            break
                if finish is not None:
                    stop_reason = "length" if finish in ("length", "limit") else "stop"
        except DeadlineExceeded:
            stop_reason = "time"  # the budget ran out: what came so far (maybe nothing)
        except RemoteTimeoutError:
            if not raw:
                raise
            stop_reason = "time"
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # leaving early closes the connection: the server stops
        if not figures["generated_tokens"]:
            figures["generated_tokens"] = pieces
        return raw, stop_reason, figures

    def _request(
        self,
        route: Route,
        request: CompletionRequest,
        multiline: bool,
        cancel: CancelToken,
        deadline: float,
    ) -> Iterator[dict[str, Any]]:
        limits = self.limits
        prefix = window_prefix(request.prefix, limits)
        suffix = window_suffix(request.suffix, limits)
        stop = [] if multiline else ["\n"]
        n = max(1, request.max_tokens)
        if route == "infill":
            line = current_line_before(prefix)
            body: dict[str, Any] = {
                "input_prefix": prefix[: len(prefix) - len(line)],
                "prompt": line,
                "input_suffix": suffix,
                "input_extra": [
                    {"filename": c.filename, "text": c.text} for c in request.extra_context
                ],
                "n_predict": n,
                "temperature": 0.0,
                "top_k": 1,
                "cache_prompt": True,
                "t_max_predict_ms": max(1, int(request.time_budget_ms)),
            }
            if stop:
                body["stop"] = stop
            return self.client.infill(body, cancel, deadline)
        body = {"model": self.target.model, "max_tokens": n, "temperature": 0.0}
        if route == "fim":
            template = self.fim_template
            assert template is not None
            prompt = build_prompt(
                _TextTokenizer(),  # type: ignore[arg-type]
                template,
                prefix=request.prefix,
                suffix=request.suffix,
                filename=request.filename,
                language=request.language,
                extra_context=request.extra_context,
                repo_name=request.repo_name,
                limits=limits,
            )
            body["prompt"] = "".join(prompt.tokens)  # type: ignore[arg-type]
            stop = [*stop, *template.special_texts]
        elif route == "suffix":
            body["prompt"] = prefix
            body["suffix"] = suffix
        else:
            body["prompt"] = prefix
        if stop:
            body["stop"] = stop
        return self.client.completions(body, cancel, deadline)

    def _piece(self, route: Route, chunk: dict[str, Any]) -> tuple[str, str | None]:
        """(text, finish reason or None) of one streamed chunk."""
        if route == "infill":
            text = chunk.get("content")
            finish = chunk.get("stop_type") if chunk.get("stop") is True else None
            if finish is not None and not isinstance(finish, str):
                finish = "stop"
        else:
            choices = chunk.get("choices")
            if not isinstance(choices, list) or not choices:
                return "", None
            choice = choices[0] if isinstance(choices[0], dict) else {}
            text = choice.get("text")
            finish = choice.get("finish_reason")
            finish = finish if isinstance(finish, str) else None
        if text is not None and not isinstance(text, str):
            raise RemoteProtocolError(
                f"{self.target.endpoint.label} sent a completion chunk whose text is not text",
                None,
            )
        return text or "", finish

    @staticmethod
    def _figures(chunk: dict[str, Any], figures: dict[str, int]) -> None:
        timings = chunk.get("timings")
        if isinstance(timings, dict):
            for key, name in (("prompt_n", "tokens_evaluated"), ("cache_n", "tokens_cached")):
                if isinstance(timings.get(key), int):
                    figures[name] = timings[key]
            if isinstance(timings.get("predicted_n"), int):
                figures["generated_tokens"] = timings["predicted_n"]
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            figures["generated_tokens"] = usage["completion_tokens"]

    def _result(
        self,
        text: str,
        raw: str,
        started: float,
        stop_reason: str,
        *,
        from_cache: bool = False,
        tokens_evaluated: int = 0,
        tokens_cached: int = 0,
        generated_tokens: int = 0,
    ) -> CompletionResult:
        return CompletionResult(
            text=text,
            tokens_evaluated=tokens_evaluated,
            tokens_cached=tokens_cached,
            generated_tokens=generated_tokens,
            from_cache=from_cache,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            stop_reason=stop_reason,
            template=self.template.name,
            raw_text=raw,
        )

    def _count(self, result: CompletionResult) -> None:
        with self._lock:
            s = self.totals
            s.requests += 1
            s.cache_hits += int(result.from_cache)
            s.tokens_evaluated += result.tokens_evaluated
            s.tokens_cached += result.tokens_cached
            s.generated_tokens += result.generated_tokens

    def _cache_header(self, request: CompletionRequest, multiline: bool, route: str) -> str:
        ctx = hashlib.blake2b(digest_size=16)
        for chunk in request.extra_context:
            ctx.update(chunk.filename.encode("utf-8", "replace") + b"\x00")
            ctx.update(chunk.text.encode("utf-8", "replace") + b"\x01")
        return "\x00".join(
            (
                self.target.ref,
                route,
                ctx.hexdigest(),
                str(int(multiline)),
                str(request.max_tokens),
                request.filename or "",
                request.suffix[: self.limits.suffix_chars],
            )
        )


def open_remote_completer(
    model: str | None,
    endpoint: str | None,
    *,
    settings: Settings | None = None,
    cancel: CancelToken | None = None,
    response_cache: bool = True,
) -> RemoteCompleter | None:
    """The completer for an `endpoint` setting (a remote's name or a URL) and a model on it,
    or for a `NAME/MODEL` reference in `model`; None when neither names a remote.

    With an endpoint and no model, the server's first model is used (llama-server serves
    one). Reaching the server and choosing the route happen here, so a wrong address or
    key is reported when the language server "loads", not on every keystroke.
    """
    settings = settings or load_settings().settings
    if endpoint:
        ep = endpoint_for(endpoint, settings)
        client = RemoteClient(ep)
        if model:
            target = RemoteTarget(ep, model)
        else:
            models = client.models(cancel)
            if not models:
                raise RemoteError(f"{ep.label} serves no models", "load one on the server")
            target = RemoteTarget(ep, models[0].id)
    else:
        found = split_remote_ref(model or "", settings)
        if found is None:
            return None
        target = found
        client = RemoteClient(target.endpoint)
    completer = RemoteCompleter(target, client=client, response_cache=response_cache)
    completer.prepare(cancel)
    return completer
