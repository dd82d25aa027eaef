"""Remote endpoints from settings and command lines: URLs, names, keys, NAME/MODEL refs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanlin.engine.core.errors import HanlinError, UnknownModelError
from hanlin.engine.core.settings import RemoteEndpoint, Settings
from hanlin.engine.remote.endpoint import (
    Endpoint,
    check_name,
    endpoint_for,
    endpoint_from_settings,
    normalize_url,
    split_remote_ref,
)


def _settings(*remotes: RemoteEndpoint) -> Settings:
    return Settings(remote=list(remotes))


@pytest.mark.parametrize(
    ("url", "api_base", "root"),
    [
        ("http://gpu.lan:8000/v1", "http://gpu.lan:8000/v1", "http://gpu.lan:8000"),
        ("http://gpu.lan:8000/v1/", "http://gpu.lan:8000/v1", "http://gpu.lan:8000"),
        ("http://gpu.lan:8080", "http://gpu.lan:8080/v1", "http://gpu.lan:8080"),
        ("https://h.example/llm/v1", "https://h.example/llm/v1", "https://h.example/llm"),
    ],
)
def test_both_spellings_of_a_base_url_work(url: str, api_base: str, root: str) -> None:
    endpoint = Endpoint("x", normalize_url(url))
    assert (endpoint.api_base, endpoint.root) == (api_base, root)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("gpu.lan:8000", "scheme"),
        ("ftp://gpu.lan/v1", "http(s)"),
        ("http://user:secret@gpu.lan/v1", "environment variable"),
        ("http://gpu.lan:99999/v1", "not a valid URL"),
        ("http://gpu.lan/v1?x=1", "query"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, words: str) -> None:
    with pytest.raises(HanlinError) as info:
        normalize_url(url)
    assert words in str(info.value)
    assert info.value.hint


@pytest.mark.parametrize("name", ["", "a/b", "-x", "hf.co", "has space", "x" * 65])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(HanlinError):
        check_name(name)


def test_key_from_the_environment_beats_a_stored_one(monkeypatch: pytest.MonkeyPatch) -> None:
    remote = RemoteEndpoint("gpu", "http://gpu.lan/v1", key_env="GPU_KEY", api_key="stored")
    monkeypatch.setenv("GPU_KEY", "from-env")
    endpoint = endpoint_from_settings(remote)
    assert endpoint.api_key == "from-env" and not endpoint.key_stored
    assert "from-env" not in repr(endpoint)  # a key never shows in logs or tracebacks
    monkeypatch.delenv("GPU_KEY")
    endpoint = endpoint_from_settings(remote)
    assert endpoint.api_key == "stored" and endpoint.key_stored
    only_env = endpoint_from_settings(RemoteEndpoint("gpu", "http://gpu.lan/v1", key_env="GPU_KEY"))
    assert only_env.api_key is None
    assert "$GPU_KEY" in only_env.key_hint() and "not set" in only_env.key_hint()


def test_endpoint_for_a_name_or_an_address() -> None:
    gpu = RemoteEndpoint("gpu", "http://gpu.lan:8000/v1", api_key="k")
    settings = _settings(gpu)
    assert endpoint_for("gpu", settings).api_key == "k"
    # the address of a configured server brings its key along
    assert endpoint_for("http://gpu.lan:8000/v1/", settings).name == "gpu"
    other = endpoint_for("http://10.0.0.5:8080", settings)
    assert (other.name, other.api_key, other.configured) == ("10.0.0.5:8080", None, False)
    with pytest.raises(UnknownModelError) as info:
        endpoint_for("gpv", settings)
    assert "`gpu`" in str(info.value)  # did you mean


def test_remote_refs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(RemoteEndpoint("lab", "http://lab:8000/v1"))
    target = split_remote_ref("lab/Qwen/Qwen2.5-Coder-7B-Instruct", settings)
    assert target is not None
    assert target.model == "Qwen/Qwen2.5-Coder-7B-Instruct"
    assert target.ref == "lab/Qwen/Qwen2.5-Coder-7B-Instruct"
    assert target.endpoint.api_base == "http://lab:8000/v1"
    # not remote: no such server, a catalog id, a Hub ref, a URL
    for ref in ("other/model", "qwen3-4b-q4km", "hf.co/Qwen/x/y.gguf", "http://lab:8000/v1"):
        assert split_remote_ref(ref, settings) is None
    with pytest.raises(UnknownModelError):
        split_remote_ref("lab/", settings)
    # a file of that (relative) path wins over a remote of the folder's name
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    assert split_remote_ref("lab/m.gguf", settings) is None
    assert split_remote_ref("lab/m2.gguf", settings) is not None
