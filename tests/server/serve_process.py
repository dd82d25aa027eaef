"""Start the installed `hanlin serve` as a real process, wait until it is ready, stop it.

Used by the server tests and by the remote-backend tests (a real `hanlin serve` to
connect to). A server is ready when it has printed `hanlin serve: listening on URL` on
stdout and answers `GET /health`.

    with HanlinServer.start(home, "--model", "smollm2", "--port", "0") as srv:
        httpx.get(srv.url + "/health")
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from tests.support.commands import HANLIN

__all__ = ["HanlinServer", "import_model"]

READY = re.compile(r"^hanlin serve: listening on (http://\S+)")


def import_model(home: Path, path: Path, model_id: str | None = None) -> str:
    """`hanlin models import PATH` into `home`; returns the model id."""
    args = [*HANLIN, "models", "import", str(path)]
    if model_id:
        args += ["--id", model_id]
    out = subprocess.run(
        args,
        env={**os.environ, "HANLIN_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    match = re.search(r"Imported (\S+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    return match.group(1)


class HanlinServer:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, into), daemon=True)
            for stream, into in ((proc.stderr, self.stderr_lines), (proc.stdout, self.stdout_lines))
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _drain(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    @property
    def base_v1(self) -> str:
        return self.url + "/v1"

    @classmethod
    def start(
        cls,
        home: Path,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> HanlinServer:
        full_env = {**os.environ, "HANLIN_HOME": str(home), **(env or {})}
        proc = subprocess.Popen(
            [*HANLIN, "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        url = None
        # the ready line is the first thing on stdout
        line = proc.stdout.readline()
        match = READY.match(line)
        if match:
            url = match.group(1)
        if url is None:
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"hanlin serve did not start: {line!r}\n{err[-3000:]}")
        server = cls(proc, url)
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        server.stop()
        raise RuntimeError("hanlin serve printed its address but /health does not answer")

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=5).json()

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._readers:
            t.join(2)
        return self.proc.returncode

    @property
    def stderr_text(self) -> str:
        return "".join(self.stderr_lines)

    def __enter__(self) -> HanlinServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def args_for(model_id: str, *extra: Sequence[str] | str) -> list[str]:
    return ["--model", model_id, "--port", "0", *[str(e) for e in extra]]
