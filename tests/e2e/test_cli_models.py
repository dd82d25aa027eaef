"""`hanlin models …` as a user runs it: real subprocesses, a real local Hub server, real files.

Each case checks the exit code, what is printed, what is on disk and what
`hanlin models list --json` reports afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hanlin.engine.models.catalog import load_catalog
from tests.support import fake_hub_fixtures
from tests.support.commands import HANLIN
from tests.support.fake_hub import FakeHub, HubFile, make_gguf

fake_hub = fake_hub_fixtures.fake_hub  # the fixture, visible to pytest in this module

ROOT = Path(__file__).resolve().parents[2]
MODEL_ID = "qwen2.5-coder-1.5b-base-q4km"
REPO = "Qwen/Qwen2.5-Coder-1.5B-GGUF"
FILE = "qwen2.5-coder-1.5b-q4_k_m.gguf"


def _env() -> dict[str, str]:
    env = dict(os.environ)  # HANLIN_HOME and HF_ENDPOINT come from the fixtures
    env["PYTHONUNBUFFERED"] = "1"
    env["HANLIN_STALL_TIMEOUT"] = "3"
    return env


def hanlin(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HANLIN, *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*HANLIN, *args],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def listing() -> dict[str, dict[str, Any]]:
    result = hanlin("models", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {row["id"]: row for row in json.loads(result.stdout)}


def _part(hanlin_home: Path) -> Path:
    return hanlin_home / "data" / "models" / "Qwen" / "Qwen2.5-Coder-1.5B-GGUF" / (FILE + ".part")


def _wait_for_part(hanlin_home: Path, at_least: int, proc: subprocess.Popen[str]) -> int:
    part = _part(hanlin_home)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        size = part.stat().st_size if part.exists() else 0
        if size >= at_least:
            return size
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the pull made no progress")


@pytest.fixture
def served(fake_hub: FakeHub) -> HubFile:
    return fake_hub.add_file(REPO, FILE, make_gguf(2_000_000, architecture="qwen2"))


def test_list_json_fresh_install() -> None:
    rows = listing()
    assert set(rows) == {e.id for e in load_catalog()}  # every shipped entry, nothing else
    row = rows[MODEL_ID]
    for key in ("id", "name", "family", "roles", "installed", "path", "size_bytes", "status"):
        assert key in row
    assert row["installed"] is False and row["path"] is None and row["status"] == "available"
    assert row["roles"] == ["completion"] and row["family"] == "qwen2.5-coder"
    assert rows["qwen2.5-coder-1.5b-instruct-q4km"]["roles"] == ["chat"]


def test_list_table_is_readable_in_100_columns() -> None:
    result = hanlin("models", "list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "SIZE"]
    assert max(len(line) for line in lines if not line.startswith(("0 installed", "1 "))) <= 100
    assert any(line.startswith("qwen3-4b-q4km ") for line in lines)


@pytest.mark.slow
def test_pull_then_list(served: HubFile, hanlin_home: Path) -> None:
    result = hanlin("models", "pull", MODEL_ID)
    assert result.returncode == 0, result.stderr
    assert "Installed qwen2.5-coder-1.5b-base-q4km" in result.stdout
    # not a terminal: plain lines, no carriage-return bar
    assert "\r" not in result.stderr and "100.0%" in result.stderr
    assert "Verifying" in result.stderr
    row = listing()[MODEL_ID]
    assert row["installed"] is True and row["status"] == "installed"
    assert Path(row["path"]).stat().st_size == served.size == row["size_bytes"]
    assert Path(row["path"]).is_relative_to(hanlin_home / "data" / "models")


@pytest.mark.slow
def test_kill_and_resume_across_processes(fake_hub: FakeHub, hanlin_home: Path) -> None:
    size = 12 * 1024 * 1024
    served = fake_hub.add_file(REPO, FILE, make_gguf(size, architecture="qwen2"))
    fake_hub.faults.rate = 6 * 1024 * 1024  # ~2 s for the whole file
    proc = start("models", "pull", MODEL_ID)
    _wait_for_part(hanlin_home, served.size // 2, proc)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(10)
    time.sleep(0.2)
    kept = _part(hanlin_home).stat().st_size
    row = listing()[MODEL_ID]
    assert row["status"] == "partial" and row["installed"] is False
    assert 45 <= row["percent"] < 100
    sent_before = fake_hub.stats.body_bytes
    fake_hub.faults.rate = None
    result = hanlin("models", "pull", MODEL_ID)
    assert result.returncode == 0, result.stderr
    assert "Resumed from" in result.stderr
    second = fake_hub.stats.body_bytes - sent_before
    assert second == served.size - kept  # the rerun fetched only what was missing
    resent = fake_hub.stats.body_bytes - served.size
    assert resent <= 2 * 1024 * 1024, f"{resent} bytes sent twice"
    assert listing()[MODEL_ID]["status"] == "installed"


@pytest.mark.slow
def test_ctrl_c_keeps_the_partial_and_says_how_to_resume(
    fake_hub: FakeHub, hanlin_home: Path
) -> None:
    fake_hub.add_file(REPO, FILE, make_gguf(8 * 1024 * 1024))
    fake_hub.faults.rate = 4 * 1024 * 1024
    proc = start("models", "pull", MODEL_ID)
    _wait_for_part(hanlin_home, 1024 * 1024, proc)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert f"hanlin models pull {MODEL_ID}` again to resume" in err
    assert "Traceback" not in err
    assert _part(hanlin_home).stat().st_size > 0
    assert listing()[MODEL_ID]["status"] == "partial"


@pytest.mark.slow
def test_second_pull_is_refused_while_the_first_runs(fake_hub: FakeHub, hanlin_home: Path) -> None:
    served = fake_hub.add_file(REPO, FILE, make_gguf(8 * 1024 * 1024))
    fake_hub.faults.rate = 1024 * 1024  # ~8 s: longer than the second pull waits (2 s)
    first = start("models", "pull", MODEL_ID)
    _wait_for_part(hanlin_home, 256 * 1024, first)
    second = hanlin("models", "pull", MODEL_ID)
    assert second.returncode != 0
    assert "already in progress" in second.stderr and str(first.pid) in second.stderr
    fake_hub.faults.rate = None
    _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    row = listing()[MODEL_ID]
    assert row["installed"] and Path(row["path"]).stat().st_size == served.size


@pytest.mark.slow
def test_corrupt_download_is_deleted(served: HubFile, fake_hub: FakeHub, hanlin_home: Path) -> None:
    fake_hub.faults.corrupt = True
    result = hanlin("models", "pull", MODEL_ID)
    assert result.returncode == 1
    assert "failed verification" in result.stderr and "deleted" in result.stderr
    assert not _part(hanlin_home).exists()
    assert listing()[MODEL_ID]["status"] == "available"


@pytest.mark.slow
def test_errors_are_one_line_without_traceback(fake_hub: FakeHub) -> None:
    result = hanlin("models", "pull", "qwen2.5-coder-1.5b")
    assert result.returncode == 2
    assert result.stderr.startswith("hanlin: error: Unknown model")
    assert "qwen2.5-coder-1.5b-base-q4km" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    missing = hanlin("models", "pull", "hf.co/nobody/Nothing-GGUF/x.gguf")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "was not found" in missing.stderr


def test_chat_with_a_hub_ref_not_pulled_says_how_to_pull_it(hanlin_home: Path) -> None:
    ref = "hf.co/someone/Tiny-GGUF/Tiny-Q4_K_M.gguf"
    result = hanlin("chat", ref, "hi", timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"hanlin: error: `{ref}` is not downloaded yet — run `hanlin models pull {ref}`"
    )
    assert result.stdout == ""


@pytest.mark.parametrize(
    "ref",
    [
        "hf.co/a/b/..%2F..%2Fx.gguf",
        "hf.co/a/b/..%5C..%5Cx.gguf",
        "hf.co/a/b/../../x.gguf",
        "hf.co/a/b..c/x.gguf",
    ],
)
def test_hostile_hub_refs_are_refused_in_one_line(ref: str, hanlin_home: Path) -> None:
    env_endpoint = "http://127.0.0.1:9"  # nothing listens: the ref must be refused before
    for args in (("models", "pull", ref), ("chat", ref, "hi")):
        result = subprocess.run(
            [*HANLIN, *args],
            cwd=ROOT,
            env={**_env(), "HF_ENDPOINT": env_endpoint},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"hanlin: error: `{ref}` is not a usable")
        assert "hf.co/OWNER/REPO/FILE.gguf" in lines[0]
    models = hanlin_home / "data" / "models"
    assert not models.exists() or not any(p.is_file() for p in models.rglob("*"))


@pytest.mark.slow
def test_import_use_and_rm(smollm2_path: Path, hanlin_home: Path) -> None:
    result = hanlin("models", "import", str(smollm2_path), "--id", "smol")
    assert result.returncode == 0, result.stderr
    assert "Imported smol (family llama" in result.stdout
    row = listing()["smol"]
    assert row["installed"] and row["path"] == str(smollm2_path.resolve())
    use = hanlin("models", "use", "smol", "--for", "chat")
    assert use.returncode == 0, use.stderr
    settings = (hanlin_home / "config" / "settings.toml").read_text()
    assert 'chat_model = "smol"' in settings
    not_installed = hanlin("models", "use", "qwen3-4b-q4km", "--for", "chat")
    assert not_installed.returncode == 1
    assert "hanlin models pull qwen3-4b-q4km" in not_installed.stderr
    rm = hanlin("models", "rm", "smol")
    assert rm.returncode == 0 and "Unregistered smol" in rm.stdout
    assert smollm2_path.is_file() and "smol" not in listing()


@pytest.mark.slow
def test_progress_bar_on_a_terminal(fake_hub: FakeHub) -> None:
    import pty

    fake_hub.add_file(REPO, FILE, make_gguf(4 * 1024 * 1024))
    fake_hub.faults.rate = 2 * 1024 * 1024  # ~2 s: several redraws
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*HANLIN, "models", "pull", MODEL_ID],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(60)
    os.close(leader)
    err = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, err
    assert err.count("\r[") >= 2  # the bar is redrawn in place
    assert "█" in err and "ETA" in err and "/s" in err


class _ForwardProxy:
    """A minimal plain-HTTP forward proxy that records what went through it."""

    def __init__(self) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        seen: list[str] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                seen.append(f"{self.command} {self.path}")
                url = urlsplit(self.path)
                upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                path = url.path + (f"?{url.query}" if url.query else "")
                upstream.request(self.command, path, headers=headers)
                resp = upstream.getresponse()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    while chunk := resp.read(256 * 1024):
                        self.wfile.write(chunk)
                upstream.close()

            do_GET = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_pull_goes_through_the_proxy_from_the_environment(
    served: HubFile, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = _ForwardProxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.delenv("no_proxy", raising=False)
        result = hanlin("models", "pull", MODEL_ID)
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert any(s.startswith("HEAD ") and "/resolve/main/" in s for s in proxy.seen)
    assert any(s.startswith("GET ") and "/blobs/" in s for s in proxy.seen)
    assert listing()[MODEL_ID]["installed"] is True


# --------------------------------------------------------------------------- split models

SPLIT_REPO = "unsloth/SmolLM2-135M-Instruct-GGUF"
SPLIT_STEM = "SmolLM2-135M-Instruct-Q4_1"
SPLIT_FILES = [f"Q4_K_M/{SPLIT_STEM}-{i:05d}-of-00002.gguf" for i in (1, 2)]
SPLIT_ID = "smollm2-135m-instruct-q4_1"


@pytest.fixture
def smol_shards(smollm2_path: Path) -> list[Path]:
    """SmolLM2 split in two by the `gguf` package's split writer (made once per session)."""
    from tests.support.split_gguf import cached_split

    return cached_split(smollm2_path, shards=2, stem=SPLIT_STEM)


def _split_dir(hanlin_home: Path) -> Path:
    return hanlin_home / "data" / "models" / "unsloth" / "SmolLM2-135M-Instruct-GGUF" / "Q4_K_M"


@pytest.mark.slow
def test_split_model_pull_cut_resume_chat_and_rm(
    fake_hub: FakeHub, hanlin_home: Path, smol_shards: list[Path]
) -> None:
    served = fake_hub.add_shard_set(SPLIT_REPO, "Q4_K_M", smol_shards)
    total = sum(f.size for f in served)
    ref = f"hf.co/{SPLIT_REPO}/{SPLIT_FILES[0]}"
    fake_hub.faults.rate = 16 * 1024 * 1024  # the second shard takes ~3 s: cut it inside
    fake_hub.faults.only_file = SPLIT_FILES[1]
    proc = start("models", "pull", ref)
    second_part = _split_dir(hanlin_home) / (Path(SPLIT_FILES[1]).name + ".part")
    deadline = time.monotonic() + 60
    while not (second_part.exists() and second_part.stat().st_size >= 4 * 1024 * 1024):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the pull never reached the second shard"
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    row = listing()[SPLIT_ID]  # a half-pulled set: partial, with percent over the total
    assert row["status"] == "partial" and row["installed"] is False and row["shards"] == 2
    assert row["size_bytes"] == total
    assert 100 * (served[0].size + 4 * 1024 * 1024) / total - 1 <= row["percent"] < 100
    fake_hub.reset()
    result = hanlin("models", "pull", ref)
    assert result.returncode == 0, result.stderr
    assert "Resumed from" in result.stderr and "shard 2 of 2" in result.stderr
    assert f"Installed {SPLIT_ID} (" in result.stdout and "2 shards)" in result.stdout
    assert fake_hub.stats.body_bytes < served[1].size  # shard 1 was not fetched again
    row = listing()[SPLIT_ID]
    assert row["status"] == "installed" and row["size_bytes"] == total and row["shards"] == 2
    assert row["path"] == str(_split_dir(hanlin_home) / Path(SPLIT_FILES[0]).name)
    # a lost shard: named before llama.cpp runs, and the hint's pull fetches only that one
    (_split_dir(hanlin_home) / Path(SPLIT_FILES[1]).name).unlink()
    broken = hanlin("chat", SPLIT_ID, "hi")
    assert broken.returncode == 1, broken.stderr
    [line] = broken.stderr.strip().splitlines()
    assert f"Shard 2 of 2 of {SPLIT_STEM}.gguf is missing" in line
    assert "damaged or need more memory" not in line
    assert f"`hanlin models pull hf.co/{SPLIT_REPO}/{SPLIT_FILES[0]}`" in line
    assert listing()[SPLIT_ID]["installed"] is True  # listed, so it can be repaired or removed
    fake_hub.reset()
    repair = hanlin("models", "pull", f"hf.co/{SPLIT_REPO}/{SPLIT_FILES[0]}")
    assert repair.returncode == 0, repair.stderr
    assert fake_hub.stats.body_bytes == served[1].size  # shard 1 kept (checked, not fetched)
    # llama.cpp loads it by its first shard and follows the split
    chat = hanlin("chat", SPLIT_ID, "What is the capital of France?", "--max-tokens", "12",
                  "--temperature", "0")  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip() and "Traceback" not in chat.stderr
    rm = hanlin("models", "rm", SPLIT_ID)
    assert rm.returncode == 0, rm.stderr
    assert f"Removed {SPLIT_ID} (2 shards, " in rm.stdout
    assert not (hanlin_home / "data" / "models" / "unsloth").exists()
    assert SPLIT_ID not in listing()


@pytest.mark.slow
def test_split_model_with_a_missing_shard_is_a_clear_error(
    smol_shards: list[Path], tmp_path: Path
) -> None:
    first, second = (Path(shutil.copy2(s, tmp_path / s.name)) for s in smol_shards)
    second.unlink()
    for args in (("chat", str(first), "hi"), ("models", "import", str(first))):
        result = hanlin(*args, timeout=60)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "Shard 2 of 2" in lines[0] and second.name in lines[0] and "missing" in lines[0]
        assert "damaged or need more memory" not in lines[0]
    assert "smollm2-135m-instruct-q4_1" not in listing()
