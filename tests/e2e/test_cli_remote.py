"""`hanlin remote …`, `hanlin chat --endpoint`, `hanlin chat NAME/MODEL` and the remote rows of
`hanlin models list`, as real subprocesses against real servers: llama.cpp's `llama-server`
and `hanlin serve` itself, both running SmolLM2."""

# ruff: noqa: F811 - pytest fixtures imported from tests/support are used as parameters

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import smollm2_gguf
from tests.support.commands import HANLIN
from tests.support.remote_servers import (  # noqa: F401
    HanlinServe,
    LlamaServer,
    free_port,
    llama_server_bin,
    smol_server,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--max-tokens", "8", "--temperature", "0"]


def hanlin(
    *args: str, home: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HANLIN, *args],
        cwd=ROOT,
        env={**os.environ, "HANLIN_HOME": str(home), **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hanlin: error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def settings_of(home: Path) -> dict:
    return tomllib.loads((home / "config" / "settings.toml").read_text())


def test_remote_add_list_rm(smol_server: LlamaServer, hanlin_home: Path) -> None:
    added = hanlin("remote", "add", "lab", smol_server.url + "/v1/", home=hanlin_home)
    assert added.returncode == 0, added.stderr
    assert f"Added lab: {smol_server.url}/v1" in added.stdout
    assert "1 model: smollm2" in added.stdout and "hanlin chat lab/smollm2" in added.stdout
    dead = f"http://127.0.0.1:{free_port()}"
    later = hanlin("remote", "add", "office", dead, "--key-env", "OFFICE_KEY", home=hanlin_home)
    assert later.returncode == 0  # saved even though it does not answer now
    assert "$OFFICE_KEY is not set" in later.stderr and "connection refused" in later.stderr
    assert settings_of(hanlin_home)["remote"] == [
        {"name": "lab", "url": smol_server.url + "/v1"},
        {"name": "office", "url": dead, "key_env": "OFFICE_KEY"},
    ]

    listed = hanlin("remote", "list", home=hanlin_home)
    assert listed.returncode == 0, listed.stderr
    assert "ok, 1 model" in listed.stdout and "lab/smollm2" in listed.stdout
    assert "$OFFICE_KEY (not set)" in listed.stdout and "unreachable" in listed.stdout
    as_json = json.loads(
        hanlin("remote", "list", "--json", home=hanlin_home, env={"OFFICE_KEY": "k"}).stdout
    )
    assert [(r["name"], r["reachable"], r["models"]) for r in as_json] == [
        ("lab", True, ["smollm2"]),
        ("office", False, []),
    ]
    assert as_json[1]["key_set"] is True and "connection refused" in as_json[1]["error"]

    one_line_error(hanlin("remote", "add", "lab", dead, home=hanlin_home), "already named 'lab'")
    one_line_error(hanlin("remote", "add", "x", "gpu.lan:8000", home=hanlin_home), "scheme")
    one_line_error(
        hanlin("remote", "add", "x", dead, "--key-env", "1BAD", home=hanlin_home),
        "not an environment variable name",
    )
    removed = hanlin("remote", "rm", "office", home=hanlin_home)
    assert removed.returncode == 0 and "Removed office" in removed.stdout
    one_line_error(hanlin("remote", "rm", "labb", home=hanlin_home), "No remote", "`lab`")
    assert [r["name"] for r in settings_of(hanlin_home)["remote"]] == ["lab"]


def test_models_list_marks_remote_models(smol_server: LlamaServer, hanlin_home: Path) -> None:
    assert hanlin("remote", "add", "lab", smol_server.url, home=hanlin_home).returncode == 0
    dead = f"http://127.0.0.1:{free_port()}/v1"
    assert hanlin("remote", "add", "gone", dead, home=hanlin_home).returncode == 0
    result = hanlin("models", "list", "--json", home=hanlin_home)
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    row = rows["lab/smollm2"]
    assert (row["status"], row["source"], row["remote"], row["installed"]) == (
        "remote",
        "remote",
        "lab",
        False,
    )
    assert row["context_length"] == 2048
    assert "warning: remote gone:" in result.stderr  # one dead server hides nothing else
    assert any(r["source"] == "catalog" for r in rows.values())
    table = hanlin("models", "list", home=hanlin_home)
    assert f"— remote: lab ({smol_server.url})" in table.stdout
    line = next(x for x in table.stdout.splitlines() if x.startswith("lab/smollm2"))
    assert line.rstrip().endswith("remote")


def test_chat_with_an_endpoint(smol_server: LlamaServer, hanlin_home: Path) -> None:
    # the server has one model: it need not be named
    one = hanlin(
        "chat", "--endpoint", smol_server.url, "Count from 1 to 20.", *FAST, home=hanlin_home
    )
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() and "Traceback" not in one.stderr
    assert "smollm2 on " + smol_server.url + " (remote)" in one.stderr
    assert "tok/s" in one.stderr and "8 tokens" in one.stderr
    # interactive, with history, through a configured name
    assert hanlin("remote", "add", "lab", smol_server.url, home=hanlin_home).returncode == 0
    turns = "Hi, I am Ada.\n/stats\nWho am I?\n/bye\n"
    chat = hanlin("chat", "lab/smollm2", *FAST, home=hanlin_home, stdin=turns)
    assert chat.returncode == 0, chat.stderr
    stats = [line for line in chat.stderr.splitlines() if line.startswith("[")]
    assert len(stats) == 3  # two answers and /stats
    prompts = [int(line.split("prompt ")[1].split()[0]) for line in stats]
    assert prompts[2] > prompts[0] + 8  # the second turn carried the first
    # a remote model can be the default chat model
    use = hanlin("models", "use", "lab/smollm2", "--for", "chat", home=hanlin_home)
    assert use.returncode == 0 and "Chat model set to lab/smollm2" in use.stdout, use.stderr
    assert settings_of(hanlin_home)["chat_model"] == "lab/smollm2"
    default = hanlin("chat", "Count from 1 to 20.", *FAST, home=hanlin_home)
    assert default.returncode == 0 and "(remote)" in default.stderr, default.stderr


def test_chat_endpoint_failures(
    llama_server_bin: Path, hanlin_home: Path, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    one_line_error(
        hanlin("chat", "--endpoint", dead, "m", "hi", home=hanlin_home),
        "Cannot reach",
        "connection refused",
        f"curl {dead}/v1/models",
    )
    nowhere = hanlin("chat", "--endpoint", "nowhere", "m", "hi", home=hanlin_home)
    one_line_error(nowhere, "No remote")
    with LlamaServer(
        llama_server_bin, smollm2_gguf(), api_key="s3cret", log=tmp_path / "keyed.log"
    ) as keyed:
        hanlin("remote", "add", "keyed", keyed.url, "--key-env", "KEYED_KEY", home=hanlin_home)
        one_line_error(
            hanlin("chat", "keyed/smollm2", "hi", home=hanlin_home, env={"KEYED_KEY": "nope"}),
            "refused the request (HTTP 401",
            "check the key in $KEYED_KEY",
        )
        ok = hanlin(
            "chat", "keyed/smollm2", "hi", *FAST, home=hanlin_home, env={"KEYED_KEY": "s3cret"}
        )
        assert ok.returncode == 0 and ok.stdout.strip(), ok.stderr


@pytest.fixture(scope="module")
def hanlin_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with HanlinServe(tmp_path_factory.mktemp("serve-home")) as serve:
        yield serve.url


def test_chat_with_hanlin_serve(hanlin_serve: str, hanlin_home: Path) -> None:
    assert hanlin("remote", "add", "box", hanlin_serve + "/v1", home=hanlin_home).returncode == 0
    result = hanlin("chat", "box/smollm2", "Count from 1 to 20.", *FAST, home=hanlin_home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "tok/s" in result.stderr
    rows = json.loads(hanlin("models", "list", "--json", home=hanlin_home).stdout)
    assert any(r["id"] == "box/smollm2" and r["status"] == "remote" for r in rows)
