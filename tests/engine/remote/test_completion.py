"""Code completion from a remote server: llama-server's `/infill` with the context ring as
`input_extra`, the `/v1/completions` fallbacks, the response cache, and cancel.

Real `llama-server`s: a tiny generated qwen2.5-coder-style GGUF with real FIM tokens
(`/infill` works) and SmolLM2 (no FIM tokens: llama-server refuses `/infill` with 501).
What a vLLM server would receive (a FIM prompt as text, or `suffix`) is checked on a
recording stub, since vLLM needs a GPU.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from hanlin.engine.completion.context_ring import ContextChunk
from hanlin.engine.completion.engine import CompletionRequest
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.core.errors import Cancelled
from hanlin.engine.core.settings import RemoteEndpoint, Settings
from hanlin.engine.remote.completion import (
    RemoteCompleter,
    guess_fim_template,
    open_remote_completer,
)
from hanlin.engine.remote.endpoint import Endpoint, RemoteTarget
from tests.support.remote_servers import LlamaServer
from tests.support.stub_server import StubServer, chunk, send_json, sse_head
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf

CODE = "def add(a, b):\n    return"
CONTEXT = [ContextChunk("util.py", "def helper(x):\n    return x * 2\n" * 20)]


@pytest.fixture(scope="module")
def fim_server(llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    folder = tmp_path_factory.mktemp("fim")
    model = write_tiny_fim_gguf(folder / "tiny-qwen-fim.gguf")
    with LlamaServer(
        llama_server_bin, model, alias="tiny-coder", ctx=4096, log=folder / "fim.log"
    ) as server:
        yield server


def completer(server: LlamaServer | StubServer, model: str = "m", **kw: object) -> RemoteCompleter:
    return RemoteCompleter(RemoteTarget(Endpoint("lab", server.url, configured=True), model), **kw)


@pytest.mark.slow
def test_infill_on_llama_server_with_the_context_ring(fim_server: LlamaServer) -> None:
    c = completer(fim_server, "tiny-coder")
    assert c.prepare() == "infill" and c.template.name == "remote:infill"
    bare = c.complete(CompletionRequest(prefix=CODE, suffix="\n", max_tokens=8, multiline=False))
    assert bare.template == "remote:infill" and bare.generated_tokens > 0 and bare.raw_text
    assert not bare.from_cache
    with_context = c.complete(
        CompletionRequest(
            prefix=CODE, suffix="\n", extra_context=CONTEXT, max_tokens=8, multiline=False
        )
    )
    # the other file went in as input_extra: the server read many more prompt tokens
    seen = lambda r: r.tokens_evaluated + r.tokens_cached  # noqa: E731
    assert seen(with_context) > seen(bare) + 100
    again = c.complete(
        CompletionRequest(
            prefix=CODE, suffix="\n", extra_context=CONTEXT, max_tokens=8, multiline=False
        )
    )
    assert again.from_cache and again.text == with_context.text
    assert c.totals.requests == 3 and c.totals.cache_hits == 1


@pytest.mark.slow
def test_a_model_without_fim_tokens_falls_back_to_completions(smol_server: LlamaServer) -> None:
    c = completer(smol_server, "smollm2")
    assert c.prepare() == "suffix"  # llama-server answered /infill with 501
    result = c.complete(CompletionRequest(prefix=CODE, suffix="", max_tokens=12, language="python"))
    assert result.text.strip() and result.template == "remote:suffix"
    assert "\n" not in result.text  # one line wanted at the end of a statement
    assert result.stop_reason in ("eol", "stop", "length")


@pytest.mark.slow
def test_cancel_aborts_a_completion(smol_server: LlamaServer) -> None:
    c = completer(smol_server, "smollm2", response_cache=False)
    c.prepare()
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel, args=("a newer keystroke",)).start()
    started = time.monotonic()
    request = CompletionRequest(  # SmolLM2 lists primes for all of its 1500 tokens
        prefix="primes = [\n    2,\n    3,\n    5,\n    7,\n    ",
        suffix="\n]\n",
        max_tokens=1500,
        time_budget_ms=60_000,
    )
    with pytest.raises(Cancelled):
        c.complete(request, cancel=cancel)
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + 3
    while smol_server.slots_busy():
        assert time.monotonic() < deadline, "the server kept generating after the cancel"
        time.sleep(0.05)
    assert c.totals.cancelled == 1


@pytest.mark.slow
def test_open_remote_completer_from_settings(fim_server: LlamaServer) -> None:
    settings = Settings(remote=[RemoteEndpoint("lab", fim_server.url)])
    by_ref = open_remote_completer("lab/tiny-coder", None, settings=settings)
    assert by_ref is not None and by_ref.info.model_id == "lab/tiny-coder"
    by_endpoint = open_remote_completer(None, fim_server.url, settings=settings)
    assert by_endpoint is not None and by_endpoint.target.model == "tiny-coder"  # the only one
    assert open_remote_completer("qwen2.5-coder-1.5b-base-q4km", None, settings=settings) is None


def test_fim_templates_are_guessed_from_model_ids() -> None:
    assert guess_fim_template("Qwen/Qwen2.5-Coder-7B").name == "qwen2.5-coder"  # type: ignore[union-attr]
    assert guess_fim_template("qwen2.5-coder:1.5b-base").name == "qwen2.5-coder"  # type: ignore[union-attr]
    assert guess_fim_template("deepseek-ai/deepseek-coder-6.7b-base").name == "deepseek-coder"  # type: ignore[union-attr]
    assert guess_fim_template("bigcode/starcoder2-3b").name == "starcoder"  # type: ignore[union-attr]
    assert guess_fim_template("meta-llama/Llama-3.1-8B") is None


def _no_infill(h: BaseHTTPRequestHandler) -> None:
    send_json(h, 404, {"detail": "Not Found"})  # what vLLM answers


def _completion(h: BaseHTTPRequestHandler) -> None:
    sse_head(h)
    chunk(h, '{"choices":[{"index":0,"text":" a + b","finish_reason":null}]}')
    chunk(h, '{"choices":[{"index":0,"text":"\\n","finish_reason":"stop"}]}')
    chunk(h, "[DONE]")


def test_what_a_vllm_server_receives_for_a_fim_model() -> None:
    routes = {("POST", "/infill"): _no_infill, ("POST", "/v1/completions"): _completion}
    with StubServer(routes) as s:
        c = completer(s, "Qwen/Qwen2.5-Coder-7B")
        assert c.prepare() == "fim" and c.template.name == "remote:qwen2.5-coder"
        request = CompletionRequest(
            prefix=CODE, suffix="\n\nprint(add(1, 2))\n", filename="calc.py",
            extra_context=CONTEXT[:1], repo_name="proj", multiline=False,
        )
        result = c.complete(request)
        assert result.text == " a + b"
        body = s.requests[-1].body
        assert s.requests[-1].path == "/v1/completions"
        assert body["model"] == "Qwen/Qwen2.5-Coder-7B" and body["stream"] is True
        prompt = body["prompt"]
        # the same layout as for a local model, special tokens written as text
        assert prompt.startswith("<|repo_name|>proj\n<|file_sep|>util.py\ndef helper(x):")
        assert prompt.endswith(
            "<|file_sep|>calc.py\n<|fim_prefix|>" + CODE
            + "<|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"
        )
        assert "\n" in body["stop"] and "<|endoftext|>" in body["stop"]


def test_suffix_and_the_prefix_only_fallback() -> None:
    def reject_suffix(h: BaseHTTPRequestHandler) -> None:
        body = stub.requests[-1].body
        if "suffix" in body:
            send_json(h, 400, {"error": {"message": "suffix is not currently supported"}})
        else:
            _completion(h)

    stub = StubServer({("POST", "/infill"): _no_infill, ("POST", "/v1/completions"): reject_suffix})
    with stub:
        c = completer(stub, "some-chat-model")
        assert c.prepare() == "suffix"
        result = c.complete(CompletionRequest(prefix=CODE, suffix="\n", multiline=False))
        assert result.text == " a + b"
        sent = [r.body for r in stub.requests if r.path == "/v1/completions"]
        assert sent[0]["prompt"] == CODE and sent[0]["suffix"] == "\n"
        assert "suffix" not in sent[1]  # retried on the prefix alone, and remembered
        assert c.route == "prefix"


@pytest.mark.slow
def test_the_time_budget_ends_a_completion(smol_server: LlamaServer) -> None:
    c = completer(smol_server, "smollm2")
    c.prepare()
    started = time.monotonic()
    result = c.complete(
        CompletionRequest(
            prefix="primes = [\n    2,\n    3,\n    5,\n    7,\n    ",
            suffix="\n]\n",
            max_tokens=1500,  # about 20 s of tokens
            time_budget_ms=1500,
        )
    )
    assert time.monotonic() - started < 5
    assert result.stop_reason == "time" and result.raw_text  # what came in time is offered
    assert len(c.cache) == 0  # a cut-short completion is not cached
