"""Real OpenAI-compatible servers for the remote-backend tests: llama.cpp's `llama-server`
(built from the vendored llama.cpp) and `hanlin serve` itself.

The remote-backend tests talk to a real OpenAI-compatible server: the `llama-server`
of the same llama.cpp version as the Python binding, built once by
`bench/llama_tools.py` (CPU only, cached in `.bench-cache/`; about 9 minutes on 2
cores the first time, which CI should do before the suite: `python -m bench.llama_tools`).
Where it cannot be built (no cmake or compiler), the tests that need it are skipped with
that reason; nowhere else.

`LlamaServer` starts one process on a free port with one thread (the cores are
shared), waits for `/health`, and kills it afterwards; tests may kill it mid-answer.
`THINK_TEMPLATE` is a Qwen3-shaped chat template for SmolLM2 that opens a `<think>`
block in the generation prompt and honours `enable_thinking`: llama-server recognises
it as a reasoning template, so the real server streams `reasoning_content` (or, with
`--reasoning-format none`, `<think>` inline in the content).

`HanlinServe` runs the installed `hanlin serve --model smollm2` in a home of its own
(SmolLM2 imported there), one thread, on a free port.

Fixtures (import them into a test module to use them): `llama_server_bin` (session),
`smol_server` (SmolLM2 as `smollm2`, module-scoped, `--ignore-eos`: every answer runs to
its `max_tokens`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

__all__ = [
    "THINK_TEMPLATE",
    "HanlinServe",
    "LlamaServer",
    "find_llama_server",
    "free_port",
    "llama_server_bin",
    "smol_server",
]

THINK_TEMPLATE = """\
{%- for message in messages -%}
<|im_start|>{{ message.role }}
{% if message.role == 'assistant' and message.reasoning_content %}<think>
{{ message.reasoning_content }}
</think>

{% endif %}{{ message.content }}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant
{% if enable_thinking is defined and not enable_thinking %}<think>

</think>

{% else %}<think>
{% endif %}{%- endif -%}
"""


def find_llama_server() -> Path:
    """The built `llama-server`, building it if needed; pytest.skip only if it cannot be."""
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    from bench.llama_tools import ensure_tool, llama_cpp_version

    try:
        return ensure_tool("llama-server")
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        if missing:
            pytest.skip(
                f"llama-server cannot be built here ({', '.join(missing)} missing): {exc}"
            )
        raise RuntimeError(
            f"building llama-server from llama-cpp-python {llama_cpp_version()} failed: {exc}"
        ) from exc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """One `llama-server` process on 127.0.0.1, ready when `start()` returns."""

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        alias: str = "smollm2",
        ctx: int = 2048,
        parallel: int = 1,
        extra: Sequence[str] = (),
        api_key: str | None = None,
        log: Path | None = None,
    ) -> None:
        self.binary, self.model, self.alias = binary, model, alias
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            str(binary),
            "-m",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-a",
            alias,
            "-c",
            str(ctx),
            "-np",
            str(parallel),
            "-t",
            "1",
            "-b",
            "512",
            "--no-webui",
            *extra,
        ]
        if api_key:
            self.args += ["--api-key", api_key]
        self.api_key = api_key
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> LlamaServer:
        out = open(self.log, "wb") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}: {self.args}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError, ValueError),
                urllib.request.urlopen(self.url + "/health", timeout=2) as r,
            ):
                if json.loads(r.read()).get("status") == "ok":
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-server did not become ready in {timeout:g} s")

    def slots_busy(self) -> bool:
        """Whether any slot is generating (llama-server's `/slots`)."""
        request = urllib.request.Request(self.url + "/slots")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(request, timeout=5) as r:
            return any(slot.get("is_processing") for slot in json.loads(r.read()))

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-answer, as a crashed or unplugged one does."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    return find_llama_server()


@pytest.fixture(scope="module")
def smol_server(llama_server_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from tests.conftest import smollm2_gguf

    log = tmp_path_factory.mktemp("llama-server") / "smol.log"
    # --ignore-eos: answers run to max_tokens, so a test decides how long one lasts (and
    # a request that was aborted can be told from one that simply finished)
    with LlamaServer(llama_server_bin, smollm2_gguf(), extra=["--ignore-eos"], log=log) as server:
        yield server


class HanlinServe:
    """`hanlin serve --model smollm2 --port P --threads 1`, ready when `start()` returns."""

    def __init__(self, home: Path, *, extra: Sequence[str] = ()) -> None:
        from tests.conftest import smollm2_gguf
        from tests.support.commands import HANLIN

        self.home = home
        self.env = {**os.environ, "HANLIN_HOME": str(home)}
        subprocess.run(
            [*HANLIN, "models", "import", str(smollm2_gguf()), "--id", "smollm2"],
            env=self.env,
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            *HANLIN, "serve", "--model", "smollm2", "--port", str(self.port), "--threads", "1",
            *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "serve.log"

    def start(self, timeout: float = 120.0) -> HanlinServe:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hanlin serve exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError, ValueError),
                urllib.request.urlopen(self.url + "/v1/models", timeout=2) as r,
            ):
                if json.loads(r.read()).get("data"):
                    return self
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"hanlin serve was not ready in {timeout:g} s: {self.log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> HanlinServe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
