"""Hub search against the tests' real local Hub server: repos, their file groups, fit, access.

`HfApi.list_models` and `HfApi.list_repo_tree` really run (huggingface_hub builds the
requests and parses the answers); the server is tests/support/fake_hub.py.
"""

from __future__ import annotations

import pytest

from hanlin.engine.core import paths
from hanlin.engine.core.errors import AuthError, NotFoundOnHubError, OfflineError, UnknownModelError
from hanlin.engine.models.catalog import load_catalog
from hanlin.engine.runtime.hardware import HardwareInfo
from hanlin.engine.store.hub_search import (
    DEFAULT_PUBLISHERS,
    HubTreeFile,
    group_gguf_files,
    guess_family_and_roles,
    list_gguf_files,
    new_from_labs,
    quantization_of,
    search_hub,
    split_shard_name,
    trusted_publishers,
)
from tests.support import fake_hub_fixtures
from tests.support.fake_hub import FakeHub, make_gguf

fake_hub = fake_hub_fixtures.fake_hub  # the fixture, visible to pytest in this module

GiB = 1 << 30

QWEN = "Qwen/Qwen3-4B-GGUF"
GLM = "unsloth/GLM-4.5-Air-GGUF"
CODER = "bartowski/Qwen2.5-Coder-1.5B-GGUF"


def _hw(ram_gib: float) -> HardwareInfo:
    ram = int(ram_gib * GiB)
    return HardwareInfo(
        cpu_name="test CPU",
        physical_cores=4,
        logical_cores=8,
        ram_total=ram,
        ram_available=ram,
        backend="cpu",
        gpu_offload_supported=False,
        gpu_name=None,
        vram_total=None,
        vram_free=None,
        build_info="",
        unified_memory=False,
    )


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_file(QWEN, "Qwen3-4B-Q4_K_M.gguf", make_gguf(60_000, seed=1))
    fake_hub.add_file(QWEN, "Qwen3-4B-Q8_0.gguf", make_gguf(90_000, seed=2))
    fake_hub.add_file(QWEN, "mmproj-Qwen3-4B-F16.gguf", make_gguf(10_000, seed=3))
    fake_hub.add_file(QWEN, "README.md", b"# Qwen3", lfs=False)
    fake_hub.set_repo_info(
        QWEN,
        downloads=5000,
        last_modified="2025-07-01T00:00:00.000Z",
        gguf={"architecture": "qwen3", "context_length": 40960},
    )
    for i in (1, 2):
        fake_hub.add_file(
            GLM, f"Q4_K_M/GLM-4.5-Air-Q4_K_M-0000{i}-of-00002.gguf", make_gguf(40_000, seed=10 + i)
        )
    fake_hub.add_file(GLM, "Q8_0/GLM-4.5-Air-Q8_0-00001-of-00003.gguf", make_gguf(9_000, seed=20))
    fake_hub.add_file(GLM, "GLM-4.5-Air-UD-Q2_K_XL.gguf", make_gguf(30_000, seed=21))
    fake_hub.set_repo_info(GLM, downloads=300, last_modified="2025-08-01T00:00:00.000Z")
    fake_hub.add_file(CODER, "Qwen2.5-Coder-1.5B-Q4_K_M.gguf", make_gguf(20_000, seed=30))
    fake_hub.set_repo_info(CODER, downloads=900, last_modified="2024-11-01T00:00:00.000Z")
    # not a GGUF repo: never in the results
    fake_hub.add_file("Qwen/Qwen3-4B", "model.safetensors", b"\0" * 1000)
    fake_hub.set_repo_info("Qwen/Qwen3-4B", downloads=10**6)
    return fake_hub


def test_names_quantizations_shards_and_guesses() -> None:
    assert quantization_of("Qwen3-4B-Q4_K_M.gguf") == "Q4_K_M"
    assert quantization_of("qwen2.5-coder-1.5b-instruct-q8_0.gguf") == "Q8_0"
    assert quantization_of("Qwen3.6-35B-A3B-UD-Q4_K_M.gguf") == "UD-Q4_K_M"
    assert quantization_of("Q4_K_M/GLM-4.5-Air-Q4_K_M-00001-of-00002.gguf") == "Q4_K_M"
    assert quantization_of("model-IQ4_XS.gguf") == "IQ4_XS"
    assert quantization_of("Kimi-Linear-48B-A3B-Instruct-BF16.gguf") == "BF16"
    assert quantization_of("Qwen3-4B.gguf") is None  # no quantization named; "Qwen3" is none
    assert split_shard_name("Q4_K_M/X-Q4_K_M-00002-of-00003.gguf") == ("Q4_K_M/X-Q4_K_M", 2, 3)
    assert split_shard_name("X-Q4_K_M.gguf") is None
    assert guess_family_and_roles("Qwen/Qwen2.5-Coder-1.5B-GGUF") == (
        "qwen2.5-coder",
        ("completion",),
    )
    family, roles = guess_family_and_roles("Qwen/Qwen2.5-Coder-7B-Instruct-GGUF")
    assert (family, roles) == ("qwen2.5-coder", ("chat", "completion"))
    assert guess_family_and_roles("unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF")[0] == (
        "deepseek-r1-distill"
    )
    assert guess_family_and_roles(QWEN, architecture="qwen3")[0].startswith("qwen3")
    assert guess_family_and_roles(QWEN)[0].startswith("qwen3")  # from the name alone
    assert guess_family_and_roles(QWEN)[1] == ("chat",)


def test_groups_fold_shards_keep_subfolders_and_drop_projectors() -> None:
    files = [
        HubTreeFile("b/M-Q4_K_M-00002-of-00002.gguf", 20, "b2"),
        HubTreeFile("b/M-Q4_K_M-00001-of-00002.gguf", 30, "b1"),
        HubTreeFile("M-Q8_0.gguf", 80, "c"),
        HubTreeFile("M-Q2_K.gguf", 10, "d"),
        HubTreeFile("mmproj-M-F16.gguf", 5, "e"),
        HubTreeFile("x/M-Q6_K-00001-of-00002.gguf", 60, "f"),
        HubTreeFile("config.json", 1, None),
    ]
    groups = group_gguf_files("o/r", files)
    assert [(g.label, g.size_bytes) for g in groups] == [
        ("Q2_K", 10),
        ("Q4_K_M", 50),
        ("Q6_K", 60),
        ("Q8_0", 80),
    ]
    q4 = groups[1]
    assert q4.files == ("b/M-Q4_K_M-00001-of-00002.gguf", "b/M-Q4_K_M-00002-of-00002.gguf")
    assert q4.sha256 == ("b1", "b2") and q4.sharded and q4.complete
    assert q4.ref == "hf.co/o/r/b/M-Q4_K_M-00001-of-00002.gguf"
    q6 = groups[2]
    assert not q6.complete and q6.missing == (2,)


def test_search_finds_gguf_repos_in_the_order_asked(hub: FakeHub) -> None:
    found = search_hub("qwen")
    assert [r.repo for r in found] == [QWEN, CODER]  # by downloads; the safetensors repo is out
    qwen = found[0]
    assert (qwen.downloads, qwen.architecture, qwen.context_length) == (5000, "qwen3", 40960)
    assert qwen.last_modified is not None and qwen.last_modified.year == 2025
    assert qwen.family.startswith("qwen3") and qwen.roles == ("chat",)
    assert qwen.parameters == "4B" and qwen.gated is None and not qwen.private
    assert [r.repo for r in search_hub("qwen", sort="updated")] == [QWEN, CODER]
    assert [r.repo for r in search_hub("", author="unsloth")] == [GLM]
    assert [r.repo for r in search_hub("gguf", sort="updated")] == [GLM, QWEN, CODER]
    assert search_hub("gguf", sort="updated", limit=1)[0].repo == GLM
    assert search_hub("nothing-like-this") == []
    sent = [r for r in hub.stats.requests if r[1] == "/api/models"]
    assert sent, "the search went to the Hub's listing endpoint"


def test_a_repos_files_grouped_with_sizes_sha256_and_fit(hub: FakeHub) -> None:
    groups = list_gguf_files(GLM, hw=_hw(64))
    labels = [(g.label, g.shard_count, g.complete) for g in groups]
    assert labels == [("Q8_0", 3, False), ("UD-Q2_K_XL", 1, True), ("Q4_K_M", 2, True)]
    q4 = groups[2]
    hub_files = [hub._repos[GLM].files[f] for f in q4.files]  # what the Hub publishes
    assert q4.size_bytes == sum(f.size for f in hub_files)
    assert q4.sha256 == tuple(f.sha256 for f in hub_files)
    assert q4.fit is not None and q4.fit.level == "fits"
    assert groups[0].missing == (2, 3) and groups[0].fit is None  # never offered as a model
    # the same files on a machine with almost no memory: the verdict says so
    tiny = list_gguf_files(GLM, hw=_hw(0.1))
    assert tiny[2].fit is not None and tiny[2].fit.level == "wont_fit"
    assert "pick a smaller model" in tiny[2].fit.reason
    qwen = list_gguf_files(QWEN, hw=_hw(64))
    assert [g.label for g in qwen] == ["Q4_K_M", "Q8_0"]  # the projector is not a model
    assert qwen[0].ref == f"hf.co/{QWEN}/Qwen3-4B-Q4_K_M.gguf"
    assert any(r[1] == f"/api/models/{GLM}/tree/main" for r in hub.stats.requests)


def test_a_catalog_file_is_offered_by_its_catalog_id(hub: FakeHub) -> None:
    user = paths.user_catalog_file()
    paths.ensure(user.parent)
    user.write_text(
        f"""
schema_version = 1
[[model]]
id = "coder-small"
name = "Coder small"
publisher = "bartowski"
family = "qwen2.5-coder"
parameters = "1.5B"
quantization = "Q4_K_M"
repo = "{CODER}"
file = "Qwen2.5-Coder-1.5B-Q4_K_M.gguf"
context_length = 32768
roles = ["completion"]
license = "apache-2.0"
description = "In the catalog."
""",
        encoding="utf-8",
    )
    groups = list_gguf_files(CODER, hw=_hw(64), catalog=load_catalog())
    assert groups[0].catalog_id == "coder-small" and groups[0].ref == "coder-small"


def test_new_from_the_labs_is_the_newest_of_the_trusted_publishers(hub: FakeHub) -> None:
    assert trusted_publishers() == list(DEFAULT_PUBLISHERS)  # the setting is absent
    result = new_from_labs()
    assert [r.repo for r in result.repos] == [GLM, QWEN, CODER]  # newest first
    listings = [r for r in hub.stats.requests if r[1] == "/api/models"]
    assert len(listings) == len(DEFAULT_PUBLISHERS)  # one listing per publisher
    from hanlin.engine.core.settings import update_settings

    update_settings(trusted_publishers=["unsloth"])
    assert trusted_publishers() == ["unsloth"]
    assert [r.repo for r in new_from_labs(trusted_publishers()).repos] == [GLM]
    assert new_from_labs(["nobody-publishes-here"]).repos == []
    with pytest.raises(UnknownModelError, match="No trusted publishers"):
        new_from_labs([])


def test_offline_mode_says_so_and_asks_nothing(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="Offline mode is on") as caught:
        search_hub("qwen")
    assert "HF_HUB_OFFLINE" in caught.value.hint
    with pytest.raises(OfflineError):
        new_from_labs()
    with pytest.raises(OfflineError):
        list_gguf_files(QWEN)
    assert hub.stats.requests == []


def test_gated_and_private_repos_work_with_hf_token(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    gated = "meta-lab/Gated-7B-GGUF"
    hub.add_file(gated, "Gated-7B-Q4_K_M.gguf", make_gguf(20_000, seed=40), gated_token="hf_ok")
    hidden = "acme/Private-GGUF"
    hub.add_file(hidden, "Private-Q4_K_M.gguf", make_gguf(20_000, seed=41))
    hub.set_repo_info(hidden, private_token="hf_ok")
    listed = {r.repo: r for r in search_hub("-")}
    assert listed[gated].gated == "manual" and hidden not in listed
    with pytest.raises(AuthError) as caught:
        list_gguf_files(gated)
    assert gated in caught.value.message
    assert f"accept the license at https://huggingface.co/{gated}" in caught.value.hint
    assert "set HF_TOKEN" in caught.value.hint
    with pytest.raises(NotFoundOnHubError, match=hidden) as missing:
        list_gguf_files(hidden)
    assert "set HF_TOKEN" in (missing.value.hint or "")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(AuthError) as wrong:
        list_gguf_files(gated)
    assert "your HF_TOKEN has no access" in wrong.value.hint
    monkeypatch.setenv("HF_TOKEN", "hf_ok")
    assert [g.label for g in list_gguf_files(gated)] == ["Q4_K_M"]
    assert hidden in {r.repo for r in search_hub("-")}
    assert [g.label for g in list_gguf_files(hidden)] == ["Q4_K_M"]


def test_bad_requests_are_clear_errors(hub: FakeHub) -> None:
    with pytest.raises(UnknownModelError, match="Nothing to search for"):
        search_hub("  ")
    with pytest.raises(UnknownModelError, match="Unknown sort order"):
        search_hub("qwen", sort="stars")
    with pytest.raises(NotFoundOnHubError, match="not found"):
        list_gguf_files("nobody/none-GGUF")
    with pytest.raises(UnknownModelError, match="not a valid"):
        list_gguf_files("not a repo")
