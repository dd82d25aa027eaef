"""Split GGUF models ("shard sets") end to end in the store: names, pulls, resume, verify,
the load-time check, import and removal.

The shards are real: a tiny random-weight model (tests/support/tiny_fim_gguf.py) split by
the `gguf` package's own split writer into three `Tiny-Q4_K_M-0000i-of-00003.gguf` files,
served in a `Q4_K_M/` sub-folder by the local Hub server, and loaded by real llama.cpp.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hanlin.engine.core import paths
from hanlin.engine.core.cancel import CancelToken, Progress
from hanlin.engine.core.errors import (
    Cancelled,
    ModelFileError,
    ModelNotInstalledError,
    NotFoundOnHubError,
    VerificationError,
)
from hanlin.engine.store.hub_download import DownloadOptions
from hanlin.engine.store.model_store import ModelStore, slug_id
from hanlin.engine.store.shards import (
    check_shard_set,
    display_name,
    find_shard_set,
    first_shard,
    parse_shard_name,
    read_model_info,
    read_shard_header,
    shard_files,
)
from tests.support import fake_hub_fixtures
from tests.support.fake_hub import FakeHub, HubFile
from tests.support.split_gguf import split_gguf
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf

fake_hub = fake_hub_fixtures.fake_hub  # the fixture, visible to pytest in this module

REPO = "unsloth/Tiny-GGUF"
FOLDER = "Q4_K_M"
STEM = "Tiny-Q4_K_M"
FILES = [f"{FOLDER}/{STEM}-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
REF = f"hf.co/{REPO}/{FILES[0]}"
MODEL_ID = "tiny-q4_k_m"


def _fast_options(**kw: float) -> DownloadOptions:
    base = {
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "stall_timeout": 1.0,
        "connect_timeout": 2.0,
        "max_retries": 3,
        "progress_interval": 0.0,
    }
    base.update(kw)
    return DownloadOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A real three-shard set of a tiny model (read-only: copy before changing)."""
    folder = tmp_path_factory.mktemp("split")
    source = write_tiny_fim_gguf(folder / "tiny.gguf")
    return split_gguf(source, folder / "set", shards=3, stem=STEM)


@pytest.fixture
def served(fake_hub: FakeHub, shards: list[Path]) -> list[HubFile]:
    return fake_hub.add_shard_set(REPO, FOLDER, shards)


@pytest.fixture
def store() -> ModelStore:
    return ModelStore(options=_fast_options(), lock_wait=0.3)


def _local(store: ModelStore, file: str) -> Path:
    return store.models_dir / "unsloth" / "Tiny-GGUF" / file


def _blob_gets(hub: FakeHub, served: HubFile) -> list[str | None]:
    """The Range header of every byte request for one file (None: from the start)."""
    return [r[2] for r in hub.stats.gets() if r[1] == f"/blobs/{served.sha256}"]


def _copy_set(shards: list[Path], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(s, dest / s.name)) for s in shards]


# --------------------------------------------------------------------------- names


def test_shard_names() -> None:
    name = parse_shard_name("Q4_K_M/GLM-4.5-Air-Q4_K_M-00002-of-00002.gguf")
    assert name is not None
    assert (name.stem, name.index, name.count) == ("Q4_K_M/GLM-4.5-Air-Q4_K_M", 2, 2)
    assert name.first == "Q4_K_M/GLM-4.5-Air-Q4_K_M-00001-of-00002.gguf"
    assert name.stem_file == "Q4_K_M/GLM-4.5-Air-Q4_K_M.gguf"
    assert shard_files("a/x-00003-of-00003.gguf") == [
        "a/x-00001-of-00003.gguf",
        "a/x-00002-of-00003.gguf",
        "a/x-00003-of-00003.gguf",
    ]
    assert first_shard("a/x-00002-of-00003.gguf") == "a/x-00001-of-00003.gguf"
    assert shard_files("Qwen3-4B-Q4_K_M.gguf") == ["Qwen3-4B-Q4_K_M.gguf"]
    assert display_name("Q4_K_M/GLM-4.5-Air-Q4_K_M-00001-of-00002.gguf") == (
        "GLM-4.5-Air-Q4_K_M.gguf"
    )
    # not shard names: index 0, index past the count, four digits, upper-case suffix
    for plain in ("x-00000-of-00002.gguf", "x-00003-of-00002.gguf", "x-0001-of-0002.gguf",
                  "x-00001-of-00002.GGUF"):  # fmt: skip
        assert parse_shard_name(plain) is None, plain
    assert slug_id("GLM-4.5-Air-Q4_K_M-00001-of-00002.gguf") == "glm-4.5-air-q4_k_m"
    listing = ["README.md", *FILES, "Q8_0/Tiny-Q8_0-00001-of-00002.gguf"]
    assert find_shard_set(f"{FOLDER}/{STEM}.gguf", listing) == FILES[0]
    assert find_shard_set(f"{STEM}.gguf", listing) is None  # not in that folder
    # a complete set wins over a stray first shard of another split
    assert find_shard_set(f"{FOLDER}/{STEM}.gguf", [*FILES, f"{FOLDER}/{STEM}-00001-of-00004.gguf"])


# --------------------------------------------------------------------------- on disk


def test_the_split_is_a_real_llama_cpp_split(shards: list[Path]) -> None:
    info = read_model_info(shards[0])
    assert info.metadata["split.count"] == 3 and info.metadata["split.no"] == 0
    headers = [read_shard_header(p) for p in shards[1:]]
    assert [(h.split_no, h.split_count) for h in headers] == [(1, 3), (2, 3)]
    assert all(h.data_end == h.file_size for h in headers)
    assert info.metadata["split.tensors.count"] == info.tensor_count + sum(
        h.tensor_count for h in headers
    )
    assert check_shard_set(shards[0]) == shards


def test_a_missing_cut_or_foreign_shard_is_named(shards: list[Path], tmp_path: Path) -> None:
    first, second, third = _copy_set(shards, tmp_path / "set")
    third.unlink()
    with pytest.raises(ModelFileError) as missing:
        read_model_info(first, model_id="tiny")
    assert "Shard 3 of 3 of Tiny-Q4_K_M.gguf is missing" in missing.value.message
    assert str(third) in missing.value.message
    assert "hanlin models pull tiny" in (missing.value.hint or "")
    shutil.copy2(second, third)  # shard 2 under shard 3's name
    with pytest.raises(ModelFileError, match=r"Shard 3 of 3 .* wrong file: .* says it is shard 2"):
        check_shard_set(first)
    shutil.copy2(shards[2], third)
    with open(second, "r+b") as handle:
        handle.truncate(second.stat().st_size - 1000)
    with pytest.raises(ModelFileError, match=r"Shard 2 of 3 .* truncated"):
        check_shard_set(first)
    shutil.copy2(shards[1], second)
    assert check_shard_set(first) == [first, second, third]
    with pytest.raises(ModelFileError, match="not its first shard") as later:
        read_model_info(second)
    assert str(first) in (later.value.hint or "")
    renamed = first.rename(first.with_name("tiny.gguf"))
    with pytest.raises(ModelFileError, match="first of 3 shards, but its name"):
        check_shard_set(renamed)


def test_the_loader_names_the_missing_shard(shards: list[Path], tmp_path: Path) -> None:
    from hanlin.engine.runtime.loader import load_model

    first, _second, third = _copy_set(shards, tmp_path / "set")
    third.unlink()
    with pytest.raises(ModelFileError) as caught:
        load_model(first)  # refused before llama.cpp sees it
    assert "Shard 3 of 3" in caught.value.message and third.name in caught.value.message
    assert "damaged or need more memory" not in str(caught.value)


@pytest.mark.slow
def test_llama_cpp_loads_a_split_model_by_its_first_shard(
    store: ModelStore, served: list[HubFile]
) -> None:
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    model = store.pull(REF)
    with load_model(model.path, options=LoadOptions(n_ctx=256, threads=1)) as loaded:
        tokens = loaded.session.tokenize("def add(a, b):", add_special=True, parse_special=False)
        result = loaded.session.evaluate(tokens)
        assert result.prompt_tokens == len(tokens) > 0
        # every tensor of all three shards is in the model llama.cpp built
        assert loaded.llama.n_vocab() > 256


# --------------------------------------------------------------------------- pulls


def test_pull_a_split_model_from_a_sub_folder(
    store: ModelStore, served: list[HubFile], fake_hub: FakeHub
) -> None:
    events: list[Progress] = []
    model = store.pull(REF, on_progress=events.append)
    total = sum(f.size for f in served)
    assert model.id == MODEL_ID and model.source == "hub"
    assert (model.repo, model.file) == (REPO, FILES[0])
    assert model.path == _local(store, FILES[0])  # OWNER/REPO/Q4_K_M/…, beside its shards
    assert model.size_bytes == total and model.sha256 == served[0].sha256
    assert [s.path for s in model.shards] == [_local(store, f) for f in FILES]
    assert [s.sha256 for s in model.shards] == [f.sha256 for f in served]
    assert all(p.stat().st_size == f.size for p, f in zip(model.files, served, strict=True))
    assert not list(store.models_dir.rglob("*.part*"))  # no .part, no note left behind
    [listed] = store.installed()
    assert listed.id == MODEL_ID and listed.size_bytes == total and len(listed.files) == 3
    assert store.partials() == [] and store.is_complete(listed)
    # one progress bar: bytes over the whole set against its total, never going back
    downloads = [e for e in events if e.stage == "download"]
    assert {e.total for e in downloads} == {float(total)}
    assert [e.done for e in downloads] == sorted(e.done for e in downloads)
    assert downloads[-1].done == total
    assert {"shard 1 of 3", "shard 2 of 3", "shard 3 of 3"} <= {
        e.detail.rsplit("(", 1)[-1].rstrip(")") for e in downloads
    }
    assert events[-1].stage == "verify" and events[-1].done == 1.0
    assert fake_hub.stats.body_bytes == total
    # pulled again by any of its names: nothing is fetched
    fake_hub.reset()
    for ref in (REF, f"hf.co/{REPO}/{FILES[2]}", MODEL_ID):
        assert store.pull(ref).path == model.path
    assert fake_hub.stats.requests == []


def test_a_stem_or_a_later_shard_names_the_whole_set(
    store: ModelStore, served: list[HubFile], fake_hub: FakeHub
) -> None:
    stem_ref = f"hf.co/{REPO}/{FOLDER}/{STEM}.gguf"
    model = store.pull(stem_ref)  # the repo holds only the shards: the stem means the set
    assert (model.id, model.file, len(model.files)) == (MODEL_ID, FILES[0], 3)
    for ref in (stem_ref, f"hf.co/{REPO}/{FILES[1]}", REF):
        assert store.resolve(ref).path == model.path
    store.remove(MODEL_ID)
    model = store.pull(f"hf.co/{REPO}/{FILES[1]}")
    assert (model.id, model.file) == (MODEL_ID, FILES[0])
    with pytest.raises(NotFoundOnHubError, match=r"Other\.gguf"):
        store.pull(f"hf.co/{REPO}/{FOLDER}/Other.gguf")


def test_a_cut_in_the_second_shard_is_a_partial_that_resumes(
    store: ModelStore, served: list[HubFile], fake_hub: FakeHub
) -> None:
    first, second, third = served
    total = sum(f.size for f in served)
    fake_hub.faults.rate = 100_000  # ~1.3 s for shard 2, so the cut lands inside it
    fake_hub.faults.only_file = second.path
    cancel = CancelToken()

    def cut(p: Progress) -> None:
        if p.stage == "download" and p.done >= first.size + 40_000:
            cancel.cancel("cut")

    with pytest.raises(Cancelled):
        store.pull(REF, cancel=cancel, on_progress=cut)
    kept = _local(store, FILES[1] + ".part").stat().st_size
    assert 0 < kept < second.size
    assert _local(store, FILES[0]).stat().st_size == first.size  # shard 1 done and kept
    assert not _local(store, FILES[2]).exists()
    # a half-pulled set is a partial download over the whole set, never an installed model
    assert store.installed() == [] and store.get(MODEL_ID) is None
    [partial] = store.partials()
    assert (partial.id, partial.shards, partial.total) == (MODEL_ID, 3, total)
    assert partial.bytes_done == first.size + kept
    assert partial.percent == pytest.approx(100 * (first.size + kept) / total)
    for name in (REF, MODEL_ID):
        with pytest.raises(ModelNotInstalledError, match=r"only partly downloaded \(\d+%\)"):
            store.resolve(name)
    assert store.find_partial(f"hf.co/{REPO}/{FOLDER}/{STEM}.gguf") == partial
    # the next pull continues inside shard 2 and never fetches shard 1 again
    fake_hub.reset()
    model = store.pull(MODEL_ID)  # a partial Hub pull resumes by its id too
    assert model.size_bytes == total and store.partials() == []
    assert _blob_gets(fake_hub, first) == []
    assert _blob_gets(fake_hub, second) == [f"bytes={kept}-"]
    assert _blob_gets(fake_hub, third) == [None]
    assert fake_hub.stats.body_bytes == total - first.size - kept
    assert store.last_download is not None
    assert store.last_download.resumed_from == first.size + kept


def test_a_dropped_connection_in_the_second_shard_resumes_with_range(
    store: ModelStore, served: list[HubFile], fake_hub: FakeHub
) -> None:
    fake_hub.faults.drop_after = 50_000
    fake_hub.faults.only_file = served[1].path
    model = store.pull(REF)
    assert store.is_complete(model)
    assert _blob_gets(fake_hub, served[1]) == [None, "bytes=50000-"]
    assert fake_hub.stats.drops == 1
    assert fake_hub.stats.body_bytes == sum(f.size for f in served)  # nothing sent twice


def test_a_corrupt_shard_is_named_deleted_and_fetched_again(
    store: ModelStore, served: list[HubFile], fake_hub: FakeHub
) -> None:
    fake_hub.faults.corrupt = True
    fake_hub.faults.only_file = served[1].path
    with pytest.raises(VerificationError) as caught:
        store.pull(REF)
    message = caught.value.message
    assert f"Shard 2 of 3 of `{MODEL_ID}` ({FILES[1]}) failed verification: its sha256" in message
    assert "deleted" in message and "keeps the others" in (caught.value.hint or "")
    assert not _local(store, FILES[1] + ".part").exists()
    [partial] = store.partials()  # shard 1 is kept: the set is partly downloaded
    assert partial.bytes_done == served[0].size and store.installed() == []
    fake_hub.reset()
    store.pull(REF)
    assert fake_hub.stats.body_bytes == served[1].size + served[2].size


def test_a_damaged_partial_shard_is_fetched_afresh_once(
    store: ModelStore, served: list[HubFile], fake_hub: FakeHub
) -> None:
    fake_hub.faults.rate = 100_000
    fake_hub.faults.only_file = served[1].path
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        store.pull(
            REF,
            cancel=cancel,
            on_progress=lambda p: (p.done > served[0].size + 1000) and cancel.cancel("cut"),
        )
    part = _local(store, FILES[1] + ".part")
    with open(part, "r+b") as handle:  # bytes on disk went bad (not the network's fault)
        handle.write(b"\xff" * 64)
    fake_hub.reset()
    model = store.pull(REF)
    assert store.is_complete(model)
    assert _blob_gets(fake_hub, served[1])[-1] is None  # the retry started from byte 0


def test_a_shard_missing_on_the_hub_is_named(
    store: ModelStore, fake_hub: FakeHub, shards: list[Path]
) -> None:
    fake_hub.add_file(REPO, FILES[0], shards[0])
    fake_hub.add_file(REPO, FILES[2], shards[2])
    with pytest.raises(NotFoundOnHubError, match=r"Tiny-Q4_K_M-00002-of-00003\.gguf"):
        store.pull(REF)
    assert store.installed() == [] and store.partials() == []
    assert not (store.models_dir / "unsloth").exists()  # nothing written for a broken set


def test_a_shard_lost_after_install_is_named_and_the_pull_repairs_it(
    store: ModelStore, served: list[HubFile], fake_hub: FakeHub
) -> None:
    from hanlin.engine.runtime.loader import load_model

    model = store.pull(REF)
    third = _local(store, FILES[2])
    third.unlink()
    assert not store.is_complete(model)
    assert store.get(MODEL_ID) is not None  # still listed, so it can be removed or repaired
    missing = r"Shard 3 of 3 of Tiny-Q4_K_M\.gguf is missing"
    with pytest.raises(ModelFileError, match=missing) as lost:
        load_model(model.path)
    assert f"hanlin models pull hf.co/{REPO}/{FILES[0]}" in (lost.value.hint or "")
    second = _local(store, FILES[1])
    with open(second, "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(ModelFileError, match=r"Shard 2 of 3 .* is truncated"):
        load_model(model.path)
    fake_hub.reset()
    repaired = store.pull(REF)
    assert store.is_complete(repaired) and check_shard_set(repaired.path)
    assert _blob_gets(fake_hub, served[0]) == []  # kept, checked against its sha256
    assert _blob_gets(fake_hub, served[1]) == ["bytes=1000-"]
    assert _blob_gets(fake_hub, served[2]) == [None]


def test_remove_deletes_every_shard(
    store: ModelStore, served: list[HubFile], fake_hub: FakeHub
) -> None:
    store.pull(REF)
    store.remove(MODEL_ID)
    assert store.installed() == [] and not (store.models_dir / "unsloth").exists()
    # a half-pulled set: its finished shards and its .part go too
    fake_hub.faults.rate = 100_000
    fake_hub.faults.only_file = served[1].path
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        store.pull(
            REF,
            cancel=cancel,
            on_progress=lambda p: (p.done > served[0].size + 1000) and cancel.cancel("cut"),
        )
    [partial] = store.partials()
    assert len(partial.files) == 2  # shard 1 and shard 2's .part
    store.remove(MODEL_ID)
    assert store.partials() == [] and not (store.models_dir / "unsloth").exists()


def _write_user_catalog(size: int, file: str = FILES[0]) -> None:
    catalog = paths.user_catalog_file()
    catalog.parent.mkdir(parents=True, exist_ok=True)
    catalog.write_text(
        f"""
[[model]]
id = "tiny-split-q4km"
name = "Tiny split"
publisher = "unsloth"
family = "qwen2.5-coder"
parameters = "0.1B"
quantization = "Q4_K_M"
repo = "{REPO}"
file = "{file}"
context_length = 4096
roles = ["completion"]
license = "apache-2.0"
description = "A split test model."
size_bytes = {size}
""",
        encoding="utf-8",
    )


def test_a_catalog_entry_names_a_split_model_by_its_first_shard(
    served: list[HubFile], fake_hub: FakeHub
) -> None:
    total = sum(f.size for f in served)
    _write_user_catalog(total)
    store = ModelStore(options=_fast_options())
    model = store.pull("tiny-split-q4km")
    assert (model.source, model.size_bytes, len(model.files)) == ("catalog", total, 3)
    assert store.pull(f"hf.co/{REPO}/{FOLDER}/{STEM}.gguf").id == "tiny-split-q4km"
    store.remove("tiny-split-q4km")
    _write_user_catalog(total + 1)  # the pin no longer matches the Hub's set
    fake_hub.reset()
    with pytest.raises(VerificationError, match=f"hold {total} bytes, not the {total + 1}"):
        ModelStore(options=_fast_options()).pull("tiny-split-q4km")
    assert fake_hub.stats.gets() == []  # refused before any byte was fetched


# --------------------------------------------------------------------------- import


def test_import_registers_the_whole_set_or_names_the_missing_shard(
    shards: list[Path], tmp_path: Path
) -> None:
    first, second, third = _copy_set(shards, tmp_path / "mine")
    store = ModelStore()
    model = store.import_file(second)  # any shard registers the set, by its first shard
    assert (model.id, model.path, model.source) == (MODEL_ID, first, "import")
    assert model.size_bytes == sum(s.stat().st_size for s in shards)
    assert model.files == [first, second, third]
    assert store.resolve(str(third)).path == first
    store.remove(MODEL_ID)  # imported from elsewhere: only forgotten
    assert all(p.is_file() for p in (first, second, third))
    third.unlink()
    with pytest.raises(ModelFileError, match=r"Shard 3 of 3 .* is missing") as caught:
        store.import_file(first)
    assert str(third) in caught.value.message
    first.unlink()
    with pytest.raises(ModelFileError, match="first shard is missing"):
        store.import_file(second)
    assert store.installed() == []
