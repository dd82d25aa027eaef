"""`hanlin chat` and `hanlin doctor` as real subprocesses on the real SmolLM2 model.

Checks what a user sees: the answer on stdout, statistics on stderr, Ctrl-C
stopping an answer without ending the program, and errors as one line with a
non-zero exit and no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.commands import HANLIN

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--max-tokens", "12", "--ctx", "512", "--temperature", "0"]


def hanlin(*args: str, home: Path, stdin: str | None = None, timeout: float = 300):
    env = {**os.environ, "HANLIN_HOME": str(home)}
    return subprocess.run(
        [*HANLIN, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def one_thread(hanlin_home: Path) -> None:
    """`threads = 1` in the settings (also exercises that setting): the CI cores are shared."""
    config = hanlin_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.toml").write_text("threads = 1\n")


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hanlin: error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.slow
def test_one_shot_chat_streams_the_answer(smollm2_path: Path, hanlin_home: Path) -> None:
    result = hanlin(
        "chat", str(smollm2_path), "What is the capital of France?", *FAST, home=hanlin_home
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "Traceback" not in result.stderr
    assert "tok/s" in result.stderr and "TTFT" in result.stderr
    assert "on CPU, 1 thread," in result.stderr  # from settings.toml
    # llama.cpp's own log stays out of both streams (it goes to the log file).
    assert "llama_model_loader" not in result.stdout + result.stderr
    assert (hanlin_home / "logs" / "llama.log").stat().st_size > 0


@pytest.mark.slow
def test_interactive_multi_turn_from_stdin(smollm2_path: Path, hanlin_home: Path) -> None:
    result = hanlin(
        "chat",
        str(smollm2_path),
        *FAST,
        home=hanlin_home,
        stdin="Hi!\n/stats\nWhat is 2+2?\n/bye\n",
    )
    assert result.returncode == 0, result.stderr
    stats = [line for line in result.stderr.splitlines() if "tok/s" in line]
    assert len(stats) == 3  # two replies and /stats
    # the second turn re-used the first turn's KV cache
    assert "(0 cached)" in stats[0] and "(0 cached)" not in stats[2]


@pytest.mark.slow
def test_default_chat_model_from_settings(smollm2_path: Path, hanlin_home: Path) -> None:
    config = hanlin_home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.toml").write_text(f'chat_model = "{smollm2_path}"\nthreads = 1\n')
    result = hanlin("chat", "Say hello to me", *FAST, home=hanlin_home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "tok/s" in result.stderr


def _sampling_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stderr.splitlines() if line.startswith("sampling:"))


@pytest.mark.slow
def test_qwen3_with_no_think_samples_with_the_family_values(
    smollm2_path: Path, hanlin_home: Path
) -> None:
    """No --temperature, no per-model setting, no catalog entry: Qwen3's non-thinking values
    (temperature 0.7, top-p 0.8, top-k 20, min-p 0); --temperature then wins over them."""
    imported = hanlin(
        "models", "import", str(smollm2_path), "--id", "pretend-qwen3", "--family", "qwen3",
        home=hanlin_home,
    )
    assert imported.returncode == 0, imported.stderr
    chat = ["chat", "pretend-qwen3", "--no-think", "--max-tokens", "4", "--ctx", "512"]
    line = _sampling_line(hanlin(*chat, home=hanlin_home, stdin="Hi\n/stats\n/bye\n"))
    for part in ("temperature 0.7", "top-p 0.8", "top-k 20", "min-p 0"):
        assert part in line, line
    line = _sampling_line(
        hanlin(*chat, "--temperature", "0.2", home=hanlin_home, stdin="Hi\n/stats\n/bye\n")
    )
    assert "temperature 0.2" in line and "top-p 0.8" in line, line


def _reader(stream, sink: list[str]) -> threading.Thread:  # type: ignore[no-untyped-def]
    def pump() -> None:
        for chunk in iter(lambda: stream.read(1), ""):
            sink.append(chunk)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_ctrl_c_stops_the_answer_not_the_program(smollm2_path: Path, hanlin_home: Path) -> None:
    env = {**os.environ, "HANLIN_HOME": str(hanlin_home)}
    proc = subprocess.Popen(
        [
            *HANLIN,
            "chat",
            str(smollm2_path),
            "--max-tokens",
            "400",
            "--ctx",
            "1024",
            "--temperature",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    out: list[str] = []
    err: list[str] = []
    threads = [_reader(proc.stdout, out), _reader(proc.stderr, err)]
    try:
        assert _wait_for(lambda: "Type a message" in "".join(err), 120), "".join(err)
        proc.stdin.write("Write a very long story about a dragon and a knight.\n")
        proc.stdin.flush()
        assert _wait_for(lambda: len("".join(out).split()) >= 3, 120), "no answer streamed"
        proc.send_signal(signal.SIGINT)
        assert _wait_for(lambda: "stopped" in "".join(err), 60), "".join(err)
        stats = next(line for line in "".join(err).splitlines() if "tok/s" in line)
        assert int(stats.strip("[").split()[0]) < 400  # it really stopped early
        assert proc.poll() is None  # ... and the program is still running
        # The program still answers commands; then Ctrl-C twice at the prompt leaves.
        proc.stdin.write("/stats\n")
        proc.stdin.flush()
        assert _wait_for(lambda: "".join(err).count("tok/s") >= 2, 60), "".join(err)
        proc.send_signal(signal.SIGINT)
        assert _wait_for(lambda: "Ctrl-C again" in "".join(err), 30), "".join(err)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in threads:
            t.join(timeout=5)
    assert "Traceback" not in "".join(err)


def test_random_bytes_file_is_a_one_line_error(tmp_path: Path, hanlin_home: Path) -> None:
    bad = tmp_path / "random.gguf"
    bad.write_bytes(os.urandom(2048))
    assert_one_line_error(hanlin("chat", str(bad), "hi", home=hanlin_home), str(bad), "not a GGUF")


def test_truncated_model_is_a_one_line_error(
    tmp_path: Path, hanlin_home: Path, smollm2_path: Path
) -> None:
    cut = tmp_path / "cut.gguf"
    with smollm2_path.open("rb") as src:
        cut.write_bytes(src.read(smollm2_path.stat().st_size // 2))
    assert_one_line_error(hanlin("chat", str(cut), "hi", home=hanlin_home), "truncated")


def test_unknown_model_id_is_a_one_line_error(hanlin_home: Path) -> None:
    result = hanlin("chat", "no-such-model", "hi", home=hanlin_home)
    assert_one_line_error(result, "no-such-model")
    assert result.returncode == 2


def test_no_default_model_says_what_to_do(hanlin_home: Path) -> None:
    result = hanlin("chat", home=hanlin_home)
    assert_one_line_error(result, "hanlin models")


def test_doctor(hanlin_home: Path) -> None:
    result = hanlin("doctor", home=hanlin_home, timeout=120)
    assert result.returncode == 0, result.stderr
    for label in ("CPU:", "RAM:", "GPU:", "llama.cpp:", "Models:"):
        assert label in result.stdout
    assert "CPU-only" in result.stdout  # this machine's llama.cpp build
    assert "qwen3-4b-q4km" in result.stdout


def test_doctor_json(hanlin_home: Path) -> None:
    result = hanlin("doctor", "--json", home=hanlin_home, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    hw = report["hardware"]
    assert hw["backend"] == "cpu" and hw["ram_total"] > 0 and hw["physical_cores"] >= 1
    assert report["versions"]["llama_cpp_python"]
    assert report["models"] and all(
        m["fit"] in ("fits", "tight", "wont_fit") for m in report["models"]
    )
    assert {"id", "reason", "need_bytes", "installed"} <= set(report["models"][0])
    assert report["paths"]["models"].startswith(str(hanlin_home))


@pytest.mark.slow
def test_cli_says_when_the_gpu_load_fell_back_to_cpu(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, with the GPU path mocked (no GPU here): the warning reaches the user."""
    from hanlin.desktop.cli.main import main
    from hanlin.engine.runtime import loader as runtime
    from hanlin.engine.runtime.hardware import HardwareInfo, detect_hardware

    fake = HardwareInfo(
        **{**detect_hardware().to_dict(), "backend": "cuda", "gpu_offload_supported": True}
    )
    monkeypatch.setattr(runtime, "detect_hardware", lambda: fake)
    real_construct = runtime._construct_llama

    def construct(path: Path, *, n_gpu_layers: int, **kwargs: object):  # type: ignore[no-untyped-def]
        if n_gpu_layers != 0:
            raise runtime._LoadFailure("CUDA error: out of memory")
        return real_construct(path, n_gpu_layers=n_gpu_layers, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "_construct_llama", construct)
    assert main(["chat", str(smollm2_path), "Hi", *FAST]) == 0
    err = capsys.readouterr().err
    assert "warning: loading on the GPU (cuda) failed: CUDA error: out of memory" in err
    assert "running on the CPU instead" in err


@pytest.mark.slow
def test_loading_shows_a_percentage_on_a_terminal(smollm2_path: Path, hanlin_home: Path) -> None:
    """stderr on a terminal (a pty here) gets "Loading … N%" redrawn while the weights load."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [*HANLIN, "chat", str(smollm2_path), "Hi", *FAST],
            cwd=ROOT,
            env={**os.environ, "HANLIN_HOME": str(hanlin_home)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=300,
        )
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the pty closed: everything was read
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if slave != -1:
            os.close(slave)
        os.close(master)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, shown
    assert "Loading" in shown and "100%" in shown, shown
    assert proc.stdout.strip()  # the answer still goes to stdout
