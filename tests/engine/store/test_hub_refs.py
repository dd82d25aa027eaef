"""Hub references (`hf.co/OWNER/REPO/FILE.gguf`): what is accepted, and what is refused early.

A ref names a repository and a path inside the models folder, so a malformed or hostile one
must be refused by the parser with a one-line error that names it, before any network call
and before any path is built from it (the models folder's containment check is only the
second line of defence).
"""

from __future__ import annotations

import pytest

from hanlin.engine.core.errors import UnknownModelError
from hanlin.engine.store.hub_download import HubRef, parse_hub_ref
from hanlin.engine.store.model_store import ModelStore


def test_valid_refs_parse() -> None:
    assert parse_hub_ref("hf.co/a/b/c.gguf") == HubRef("a/b", "c.gguf", None)
    ref = parse_hub_ref("https://huggingface.co/a/b/resolve/abc123/d/e.gguf?download=true")
    assert ref == HubRef("a/b", "d/e.gguf", "abc123")
    assert parse_hub_ref("hf.co/Qwen/Qwen3-4B-GGUF/Qwen3-4B-Q4_K_M.gguf@main") == HubRef(
        "Qwen/Qwen3-4B-GGUF", "Qwen3-4B-Q4_K_M.gguf", "main"
    )
    # a pull-request ref is a legitimate revision with a slash in it (encoded in the URL)
    pr = parse_hub_ref("https://huggingface.co/a/b/resolve/refs%2Fpr%2F1/x.gguf")
    assert pr == HubRef("a/b", "x.gguf", "refs/pr/1")
    # not Hub refs at all: catalog ids and paths are for the caller to handle
    assert parse_hub_ref("qwen3-4b-q4km") is None
    assert parse_hub_ref("models/x.gguf") is None


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        # encoded separators or parent segments in the file path
        ("hf.co/a/b/..%2F..%2Fx.gguf", "`/`"),
        ("hf.co/a/b/sub%2Fx.gguf", "`/`"),
        ("hf.co/a/b/..%5C..%5Cx.gguf", "`\\`"),
        ("hf.co/a/b/sub%5Cx.gguf", "`\\`"),
        ("hf.co/a/b/../../x.gguf", "`..`"),
        ("hf.co/a/b/%2E%2E/x.gguf", "`..`"),
        ("hf.co/a/b/./x.gguf", "`.`"),
        ("hf.co/a/b/x%00.gguf", "control character"),
        # a revision that climbs out
        ("https://huggingface.co/a/b/resolve/..%2F..%2Fmain/x.gguf", "`..`"),
        ("hf.co/a/b/x.gguf@..%5Cmain", "`\\`"),
    ],
)
def test_hostile_path_segments_are_refused(ref: str, why: str) -> None:
    with pytest.raises(UnknownModelError) as err:
        parse_hub_ref(ref)
    text = str(err.value)
    assert f"`{ref}`" in text and why in text
    assert "hf.co/OWNER/REPO/FILE.gguf" in text
    assert "\n" not in text


@pytest.mark.parametrize(
    "ref",
    [
        "hf.co/a%2Fb/c/x.gguf",  # an encoded slash in the owner
        "hf.co/../b/x.gguf",
        "hf.co/%2E%2E/b/x.gguf",
        "hf.co/a/b..c/x.gguf",  # `..` is not allowed in repo ids
        "hf.co/a/b--c/x.gguf",  # nor `--`
        "hf.co/-a/b/x.gguf",  # nor a leading `-`
        "hf.co/a/b.git/x.gguf",  # nor a `.git` ending
        "hf.co/a/b%20c/x.gguf",  # nor spaces
        f"hf.co/a/{'b' * 100}/x.gguf",  # nor more than 96 characters
    ],
)
def test_invalid_repo_ids_are_refused(ref: str) -> None:
    with pytest.raises(UnknownModelError) as err:
        parse_hub_ref(ref)
    text = str(err.value)
    assert f"`{ref}`" in text and "repository id" in text
    assert "\n" not in text


@pytest.mark.parametrize("ref", ["hf.co/a/b", "hf.co/a", "hf.co/"])
def test_refs_without_a_file_are_refused(ref: str) -> None:
    with pytest.raises(UnknownModelError) as err:
        parse_hub_ref(ref)
    assert f"`{ref}`" in str(err.value) and "hf.co/OWNER/REPO/FILE.gguf" in str(err.value)


def test_store_refuses_a_hostile_ref_before_touching_disk_or_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: never the Hub
    store = ModelStore()
    for call in (store.pull, store.resolve):
        with pytest.raises(UnknownModelError, match=r"hf\.co/a/b/\.\.%2F\.\.%2Fx\.gguf"):
            call("hf.co/a/b/..%2F..%2Fx.gguf")
    assert not store.models_dir.exists() or not any(store.models_dir.rglob("*.part*"))
