"""ModelStore.pull against a real local HTTP server that speaks the Hub protocol and misbehaves.

Each case checks what the user ends up with: files on disk (final, .part, none),
the manifest (`installed()`), partial downloads (`partials()`), and the error.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hanlin.engine.core.cancel import CancelToken, Progress
from hanlin.engine.core.errors import (
    AuthError,
    BusyError,
    Cancelled,
    DiskFullError,
    DownloadError,
    NotFoundOnHubError,
    OfflineError,
    UnknownModelError,
    VerificationError,
)
from hanlin.engine.store import hub_download, part_writer
from hanlin.engine.store.hub_download import DownloadOptions, download_to_part
from hanlin.engine.store.model_store import ModelStore
from tests.support import fake_hub_fixtures
from tests.support.fake_hub import FakeHub, HubFile, make_gguf

fake_hub = fake_hub_fixtures.fake_hub  # the fixture, visible to pytest in this module

MODEL_ID = "qwen2.5-coder-1.5b-base-q4km"
REPO = "Qwen/Qwen2.5-Coder-1.5B-GGUF"
FILE = "qwen2.5-coder-1.5b-q4_k_m.gguf"
SIZE = 4 * 1024 * 1024


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


@pytest.fixture
def served(fake_hub: FakeHub) -> HubFile:
    data = make_gguf(SIZE, architecture="qwen2", name="Qwen2.5 Coder 1.5B")
    return fake_hub.add_file(REPO, FILE, data)


@pytest.fixture
def store() -> ModelStore:
    return ModelStore(options=_fast_options(), lock_wait=0.3)


def _final(store: ModelStore) -> Path:
    return store.models_dir / "Qwen" / "Qwen2.5-Coder-1.5B-GGUF" / FILE


def _assert_installed(store: ModelStore, served: HubFile) -> None:
    final = _final(store)
    assert final.is_file() and final.stat().st_size == served.size
    assert not final.with_name(FILE + ".part").exists()
    model = store.get(MODEL_ID)
    assert model is not None and model.sha256 == served.sha256
    assert store.partials() == []


def test_pull_catalog_model(store: ModelStore, served: HubFile, fake_hub: FakeHub) -> None:
    events: list[Progress] = []
    model = store.pull(MODEL_ID, on_progress=events.append)
    assert model.path == _final(store)
    assert (model.repo, model.file, model.commit) == (REPO, FILE, served.commit)
    assert model.family == "qwen2.5-coder" and model.source == "catalog"
    _assert_installed(store, served)
    stages = [e.stage for e in events]
    assert stages[0] == "download" and stages[-1] == "verify"
    assert events[-2].stage == "verify" or events[-1].done == 1.0
    downloads = [e for e in events if e.stage == "download"]
    assert downloads[-1].done == downloads[-1].total == served.size
    assert fake_hub.stats.body_bytes == served.size
    # A second pull is a no-op: already installed, nothing fetched.
    fake_hub.reset()
    assert store.pull(MODEL_ID).path == model.path
    assert fake_hub.stats.requests == []


def test_progress_is_throttled(fake_hub: FakeHub, served: HubFile) -> None:
    fake_hub.faults.rate = 8 * 1024 * 1024  # ~0.5 s for 4 MiB, many 64 KiB pieces
    events: list[Progress] = []
    ModelStore(options=_fast_options(progress_interval=0.2)).pull(
        MODEL_ID, on_progress=events.append
    )
    downloads = [e for e in events if e.stage == "download"]
    assert 2 <= len(downloads) <= 12  # not one per chunk (there are 64 of them)
    assert any(e.rate and e.eta is not None for e in downloads)


def test_pull_by_hub_name_records_repo_file_commit(store: ModelStore, fake_hub: FakeHub) -> None:
    data = make_gguf(200_000, architecture="qwen3", name="Qwen3 0.6B")
    hub_file = fake_hub.add_file("someone/Qwen3-Mini-GGUF", "sub/Qwen3-Mini-Q4_K_M.gguf", data)
    model = store.pull("hf.co/someone/Qwen3-Mini-GGUF/sub/Qwen3-Mini-Q4_K_M.gguf")
    assert model.id == "qwen3-mini-q4_k_m"
    assert (model.repo, model.file, model.commit) == (
        "someone/Qwen3-Mini-GGUF",
        "sub/Qwen3-Mini-Q4_K_M.gguf",
        hub_file.commit,
    )
    assert model.source == "hub" and model.family == "qwen3"
    assert model.path == store.models_dir / "someone" / "Qwen3-Mini-GGUF" / "sub" / (
        "Qwen3-Mini-Q4_K_M.gguf"
    )
    assert store.resolve("hf.co/someone/Qwen3-Mini-GGUF/sub/Qwen3-Mini-Q4_K_M.gguf").id == model.id
    # The same file by catalog repo/file maps to the catalog id.
    fake_hub.add_file(REPO, FILE, make_gguf(100_000))
    assert store.pull(f"hf.co/{REPO}/{FILE}").id == MODEL_ID


def test_dropped_connection_resumes_within_one_pull(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.drop_after = SIZE // 3  # per response: drops at 1/3 and at 2/3
    fake_hub.faults.drop_times = 2
    store.pull(MODEL_ID)
    _assert_installed(store, served)
    assert fake_hub.stats.drops == 2
    ranges = [r[2] for r in fake_hub.stats.gets()]
    assert ranges[0] is None and all(r and r.startswith("bytes=") for r in ranges[1:])
    resent = fake_hub.stats.body_bytes - served.size
    assert resent <= 1 << 20, f"{resent} bytes sent twice"


def test_stall_is_detected_and_retried(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.stall_after = SIZE // 3
    fake_hub.faults.stall_seconds = 20
    started = time.monotonic()
    store.pull(MODEL_ID)
    assert time.monotonic() - started < 10
    assert fake_hub.stats.stalls == 1
    _assert_installed(store, served)
    assert store.last_download is not None and store.last_download.retries >= 1


def _cancel_at_half(store: ModelStore) -> None:
    token = CancelToken()

    def on_progress(p: Progress) -> None:
        if p.stage == "download" and p.total and p.done >= p.total / 2:
            token.cancel("test")

    with pytest.raises(Cancelled):
        store.pull(MODEL_ID, cancel=token, on_progress=on_progress)


def _cancel_when_complete(store: ModelStore, ref: str) -> None:
    """A pull whose every byte is in the .part, stopped before it was verified (a crash there)."""
    token = CancelToken()

    def on_progress(p: Progress) -> None:
        if p.stage == "download" and p.total and p.done >= p.total:
            token.cancel("test")

    with pytest.raises(Cancelled):
        store.pull(ref, cancel=token, on_progress=on_progress)


def test_complete_part_of_unannounced_size_is_finished_on_416(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    # The Hub publishes no size, so the store cannot tell that the .part is complete: it asks
    # for `bytes=SIZE-` and the CDN answers 416 with `Content-Range: bytes */SIZE`.
    fake_hub.faults.hide_size = True
    _cancel_when_complete(store, MODEL_ID)
    [partial] = store.partials()
    assert partial.bytes_done == served.size and partial.total is None
    fake_hub.reset()
    fake_hub.faults.hide_size = True
    store.pull(MODEL_ID)
    _assert_installed(store, served)
    assert [(r[2], r[3]) for r in fake_hub.stats.gets()] == [(f"bytes={served.size}-", 416)]
    assert fake_hub.stats.body_bytes == 0
    assert store.last_download is not None and store.last_download.resumed_from == served.size


def test_part_longer_than_a_file_of_unannounced_size_restarts_on_416(
    served: HubFile, fake_hub: FakeHub, tmp_path: Path
) -> None:
    fake_hub.faults.hide_size = True
    remote = hub_download.resolve_remote(REPO, FILE, options=_fast_options())
    assert remote.size is None
    part = tmp_path / "x.gguf.part"
    part.write_bytes(b"\xff" * (served.size + 1000))  # not a prefix of this file
    result = download_to_part(remote, part, options=_fast_options())
    assert result.size == served.size and result.sha256 == served.sha256
    assert result.restarts == 1 and part.stat().st_size == served.size
    assert [(r[2], r[3]) for r in fake_hub.stats.gets()] == [
        (f"bytes={served.size + 1000}-", 416),
        (None, 200),
    ]


def test_416_without_a_usable_content_range_restarts_the_file(
    served: HubFile, fake_hub: FakeHub, tmp_path: Path
) -> None:
    # Same size as the file but the server cannot confirm it: start afresh, never trust it.
    fake_hub.faults.hide_size = True
    remote = hub_download.resolve_remote(REPO, FILE, options=_fast_options())
    part = tmp_path / "x.gguf.part"
    part.write_bytes(b"\xff" * served.size)
    fake_hub.faults.status = 416  # a bare 416 (no Content-Range), once
    fake_hub.faults.status_times = 1
    result = download_to_part(remote, part, options=_fast_options())
    assert result.sha256 == served.sha256 and result.restarts == 1


def test_bug_in_the_metadata_call_is_not_disguised_as_a_download_error(
    store: ModelStore, served: HubFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug, not a network problem")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", broken)
    with pytest.raises(TypeError, match="a bug"):
        store.pull(MODEL_ID)


def test_cancel_keeps_partial_and_next_pull_resumes(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.rate = 16 * 1024 * 1024
    _cancel_at_half(store)
    assert store.get(MODEL_ID) is None and not _final(store).exists()
    [partial] = store.partials()
    assert partial.id == MODEL_ID and partial.total == served.size
    assert 40 <= (partial.percent or 0) < 100
    kept = partial.bytes_done
    fake_hub.reset()
    store.pull(MODEL_ID)
    _assert_installed(store, served)
    assert store.last_download is not None and store.last_download.resumed_from == kept
    # (the cancelled response's last 64 KiB piece may land after the reset)
    assert 0 <= fake_hub.stats.body_bytes - (served.size - kept) <= 128 * 1024
    assert fake_hub.stats.gets()[0][2] == f"bytes={kept}-"


def test_server_ignoring_range_restarts_cleanly(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.rate = 16 * 1024 * 1024
    _cancel_at_half(store)
    fake_hub.reset()
    fake_hub.faults.ignore_range = True
    store.pull(MODEL_ID)
    _assert_installed(store, served)
    assert store.last_download is not None and store.last_download.restarts == 1


def test_corrupt_bytes_are_deleted_not_installed(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.corrupt = True
    with pytest.raises(VerificationError) as err:
        store.pull(MODEL_ID)
    assert "sha256" in str(err.value) and "deleted" in str(err.value)
    assert "pull" in (err.value.hint or "")
    folder = _final(store).parent
    assert not any(folder.iterdir()) if folder.exists() else True
    assert store.installed() == [] and store.partials() == []
    fake_hub.reset()
    store.pull(MODEL_ID)  # a clean retry works
    _assert_installed(store, served)


def test_changed_file_on_the_hub_discards_stale_partial(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.rate = 16 * 1024 * 1024
    _cancel_at_half(store)
    fake_hub.reset()
    new = fake_hub.add_file(REPO, FILE, make_gguf(SIZE, seed=7), commit="b" * 40)
    model = store.pull(MODEL_ID)
    assert model.sha256 == new.sha256 and model.commit == "b" * 40
    assert store.last_download is not None and store.last_download.resumed_from == 0


@pytest.mark.parametrize("status", [404, 401, 403])
def test_http_errors_say_what_to_do(
    store: ModelStore, served: HubFile, fake_hub: FakeHub, status: int
) -> None:
    fake_hub.faults.status = status
    expected = NotFoundOnHubError if status == 404 else AuthError
    with pytest.raises(expected) as err:
        store.pull(MODEL_ID)
    if status != 404:
        assert "HF_TOKEN" in str(err.value)
    assert store.installed() == [] and not _final(store).exists()


def test_missing_repo_file_and_revision(store: ModelStore, fake_hub: FakeHub) -> None:
    fake_hub.add_file("owner/Repo-GGUF", "a.gguf", make_gguf(10_000))
    with pytest.raises(NotFoundOnHubError, match=r"`b\.gguf` is not in `owner/Repo-GGUF`"):
        store.pull("hf.co/owner/Repo-GGUF/b.gguf")
    with pytest.raises(NotFoundOnHubError, match="Repository `owner/Nope` was not found"):
        store.pull("hf.co/owner/Nope/a.gguf")
    with pytest.raises(NotFoundOnHubError, match="Revision `v9`"):
        store.pull("hf.co/owner/Repo-GGUF/a.gguf@v9")
    with pytest.raises(UnknownModelError, match="not a GGUF"):
        store.pull("hf.co/owner/Repo-GGUF/config.json")
    with pytest.raises(UnknownModelError) as err:
        store.pull("qwen2.5-coder-1.5b-base")
    assert MODEL_ID in str(err.value)


def test_gated_repo_needs_a_token(
    store: ModelStore, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.add_file("corp/Gated-GGUF", "g.gguf", make_gguf(20_000), gated_token="hf_secret")
    with pytest.raises(AuthError) as err:
        store.pull("hf.co/corp/Gated-GGUF/g.gguf")
    assert "license" in str(err.value) and "HF_TOKEN" in str(err.value)
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(AuthError):
        store.pull("hf.co/corp/Gated-GGUF/g.gguf")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert store.pull("hf.co/corp/Gated-GGUF/g.gguf").path.is_file()


def test_transient_500s_retry_then_succeed(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.status = 503
    fake_hub.faults.status_times = 2
    fake_hub.faults.resolve_status = 500
    fake_hub.faults.resolve_status_times = 1
    store.pull(MODEL_ID)
    _assert_installed(store, served)


def test_persistent_500_gives_up_and_keeps_partial(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.drop_after = SIZE // 4
    fake_hub.faults.drop_times = 1

    def fail_after_first(p: Progress) -> None:
        if p.done:  # once bytes arrived, every later request answers 500
            fake_hub.faults.status = 500

    with pytest.raises(DownloadError) as err:
        store.pull(MODEL_ID, on_progress=fail_after_first)
    assert "run the pull again" in str(err.value)
    [partial] = store.partials()
    assert partial.bytes_done > 0 and store.installed() == []


def test_offline_mode(
    store: ModelStore, served: HubFile, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.pull(MODEL_ID)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert store.resolve(MODEL_ID).path.is_file()  # installed models work offline
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        store.pull("hf.co/x/y/z.gguf")


def test_unreachable_hub_is_reported_as_offline(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(OfflineError, match="Cannot reach"):
        store.pull(MODEL_ID)


def test_free_space_is_checked_before_downloading(
    store: ModelStore, served: HubFile, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil as real_shutil

    from hanlin.engine.store import model_store as store_module

    usage = real_shutil.disk_usage("/")
    monkeypatch.setattr(
        store_module.shutil, "disk_usage", lambda _p: usage._replace(free=SIZE // 2)
    )
    with pytest.raises(DiskFullError, match="needs"):
        store.pull(MODEL_ID)
    assert fake_hub.stats.gets() == []
    assert store.installed() == []


def test_full_disk_mid_transfer_keeps_partial_and_other_models(
    store: ModelStore, served: HubFile, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = fake_hub.add_file("owner/Other-GGUF", "other.gguf", make_gguf(300_000))
    store.pull("hf.co/owner/Other-GGUF/other.gguf")
    real_write = part_writer._write_all
    written = {"n": 0}

    def write_until_full(handle, data: bytes) -> None:  # type: ignore[no-untyped-def]
        if written["n"] + len(data) > SIZE // 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(handle, data)
        written["n"] += len(data)

    monkeypatch.setattr(part_writer, "_write_all", write_until_full)
    with pytest.raises(DiskFullError) as err:
        store.pull(MODEL_ID)
    assert "partial file is kept" in str(err.value)
    [partial] = store.partials()
    assert partial.bytes_done == written["n"] > 0
    survivor = store.get("other")
    assert survivor is not None and survivor.path.stat().st_size == other.size
    monkeypatch.setattr(part_writer, "_write_all", real_write)
    fake_hub.reset()
    store.pull(MODEL_ID)
    _assert_installed(store, served)
    assert fake_hub.stats.body_bytes == served.size - written["n"]


def test_second_pull_of_the_same_model_is_refused(served: HubFile, fake_hub: FakeHub) -> None:
    fake_hub.faults.rate = 4 * 1024 * 1024  # ~1 s
    first = ModelStore(options=_fast_options())
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(errors, lambda: first.pull(MODEL_ID)))
    thread.start()
    deadline = time.monotonic() + 5
    while not fake_hub.stats.gets() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = ModelStore(options=_fast_options(), lock_wait=0.2)
    with pytest.raises(BusyError) as err:
        second.pull(MODEL_ID)
    assert "already in progress" in str(err.value) and "process" in str(err.value)
    with pytest.raises(BusyError):
        second.remove(MODEL_ID)  # nor can it delete the partial under the running pull
    thread.join(30)
    assert errors == []
    _assert_installed(second, served)


def _catch(errors: list[BaseException], fn) -> None:  # type: ignore[no-untyped-def]
    try:
        fn()
    except BaseException as exc:
        errors.append(exc)


def test_remove_deletes_file_and_partials(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    fake_hub.faults.rate = 16 * 1024 * 1024
    _cancel_at_half(store)
    store.remove(MODEL_ID)
    assert store.partials() == [] and not _final(store).parent.exists()
    fake_hub.reset()
    store.pull(MODEL_ID)
    store.remove(MODEL_ID)
    assert store.installed() == [] and not _final(store).exists()
    assert not (store.models_dir / "Qwen").exists()


def test_unrecorded_file_in_place_is_verified_not_downloaded_again(
    store: ModelStore, served: HubFile, fake_hub: FakeHub
) -> None:
    store.pull(MODEL_ID)
    store.manifest_path.unlink()  # the list is lost, the file is still there
    assert store.installed() == []
    fake_hub.reset()
    model = store.pull(MODEL_ID)
    assert model.sha256 == served.sha256 and fake_hub.stats.gets() == []
    _assert_installed(store, served)


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 12 MiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_real_full_disk_mid_transfer(small_disk: Path, served: HubFile, fake_hub: FakeHub) -> None:
    store = ModelStore(models_dir=small_disk / "models", options=_fast_options())
    store.free_space_margin = 0
    other = fake_hub.add_file("owner/Other-GGUF", "other.gguf", make_gguf(1024 * 1024))
    store.pull("hf.co/owner/Other-GGUF/other.gguf")
    filler = small_disk / "filler.bin"

    def fill_the_disk(p: Progress) -> None:
        if p.stage == "download" and p.done >= 1024 * 1024 and not filler.exists():
            with open(filler, "wb") as handle:  # another program takes the rest
                try:
                    while True:
                        handle.write(b"\0" * 65536)
                        handle.flush()
                except OSError:
                    pass

    fake_hub.faults.rate = 8 * 1024 * 1024
    with pytest.raises(DiskFullError) as err:
        store.pull(MODEL_ID, on_progress=fill_the_disk)
    assert "partial file is kept" in str(err.value)
    [partial] = store.partials()
    assert 0 < partial.bytes_done < served.size
    survivor = store.get("other")
    assert survivor is not None and survivor.path.stat().st_size == other.size
    filler.unlink()
    fake_hub.reset()
    store.pull(MODEL_ID)
    assert store.get(MODEL_ID) is not None and store.partials() == []
    assert (
        store.last_download is not None and store.last_download.resumed_from == partial.bytes_done
    )
