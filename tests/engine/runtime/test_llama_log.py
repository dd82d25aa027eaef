"""Where llama.cpp's log goes when `hanlin-lsp` routes it to stderr (its default).

Each test runs a real load in a child interpreter, so stderr and stdout are the
process's own (no pytest capture in between), as they are for the language server:
stdout is the protocol channel and must stay clean; stderr is the log the editor shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.engine.runtime.test_loader import _write_unknown_arch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]

_CHILD = textwrap.dedent(
    """
    import json, sys, threading, traceback
    from pathlib import Path

    from hanlin.engine.core.errors import ModelLoadError
    from hanlin.engine.runtime.llama_log import route_llama_logs
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    good, bad = Path(sys.argv[1]), Path(sys.argv[2])
    route_llama_logs(None, level="warning")  # what `hanlin-lsp` does without --log-file

    # Another thread (an editor request failing, say) prints tracebacks while a model loads.
    stop, printed = threading.Event(), []

    def worker():
        i = 0
        while not stop.is_set():
            try:
                raise RuntimeError(f"worker-traceback-{i}")
            except RuntimeError:
                traceback.print_exc()
            printed.append(i)
            i += 1
            stop.wait(0.002)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        with load_model(good, options=LoadOptions(n_ctx=512, threads=1)):
            pass
    finally:
        stop.set()
        thread.join()
    error = None
    try:
        load_model(bad, options=LoadOptions(n_ctx=512, threads=1))
    except ModelLoadError as exc:
        error = str(exc)
    print(json.dumps({"printed": len(printed), "error": error}))
    """
)


def test_load_errors_and_other_threads_tracebacks_reach_stderr(
    smollm2_path: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "foo.gguf"
    _write_unknown_arch(bad)
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(smollm2_path), str(bad)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # stdout carries only the child's own answer: not one line of llama.cpp's log
    report = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1
    assert report["error"] is not None and "hanlinfoo" in report["error"]

    err_lines = result.stderr.splitlines()
    # llama.cpp's own error line (not our ModelLoadError, which was not printed) is on stderr
    llama_errors = [
        line for line in err_lines if "unknown model architecture" in line and "llama" in line
    ]
    assert llama_errors, result.stderr[-3000:]
    assert any("hanlinfoo" in line for line in llama_errors)
    # every traceback the other thread printed during the load is there, none swallowed
    assert report["printed"] > 0
    printed = {f"RuntimeError: worker-traceback-{i}" for i in range(report["printed"])}
    missing = sorted(printed - set(err_lines))
    assert missing == []
    # llama-cpp-python's own chatter (a multi-kilobyte metadata dump) stays out of the log
    assert "Model metadata:" not in result.stderr


_LSP_LIKE = textwrap.dedent(
    """
    import sys
    from hanlin.engine.runtime.llama_log import route_llama_logs

    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # what hanlin-lsp does before routing: a stray print goes to the log
    route_llama_logs(None, level="warning")
    try:
        route_llama_logs(None, stream=sys.__stdout__)
    except ValueError as exc:
        real_stdout.write("refused: " + str(exc) + "\\n")
    """
)


def test_routing_to_stderr_works_when_stdout_is_aliased_and_never_goes_to_stdout() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LSP_LIKE], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: llama.cpp's log must not go to stdout")
