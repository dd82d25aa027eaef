"""A disk that already holds models: a Hugging Face cache, an Ollama store, LM Studio, a folder.

Why: `hanlin models scan` is only trustworthy when it has met the real layouts, with real
GGUF files in them (tiny, loadable models from tests/support/tiny_fim_gguf.py, and a real
split set from tests/support/split_gguf.py) and the broken files users really have: a
cache link whose blob is gone, a truncated Ollama blob, a `.gguf` that is not one.

    disk = build_fake_disk(tmp_path)        # writes everything under tmp_path
    disk.apply(monkeypatch)                  # HOME, HF_HUB_CACHE, scan_folders in settings
    disk.env()                               # the same, for a subprocess

`EXPECTED` names what a scan must find (id -> origin) and `BROKEN` what it must report.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.split_gguf import split_gguf
from tests.support.tiny_fim_gguf import write_tiny_fim_gguf

#: id -> origin of every model a scan of the fake disk finds
EXPECTED = {
    "tiny-chat-q8_0": "hf-cache",
    "tiny-coder": "ollama",
    "tiny-split-q8_0": "lmstudio",
    "tiny-folder-q8_0": "folder",
}
#: words of the problems a scan reports (one each): a missing blob, a truncated blob, not GGUF
BROKEN = ("missing blob", "truncated", "not a GGUF")

HF_REPO = "acme/Tiny-Chat-GGUF"
HF_FILE = "Tiny-Chat-Q8_0.gguf"


@dataclass
class FakeDisk:
    root: Path
    home: Path
    hf_cache: Path
    ollama: Path
    lmstudio: Path
    folder: Path
    #: the files a scan registers (id -> path as registered)
    paths: dict[str, Path]

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process at the fake disk (and write scan_folders to settings.toml)."""
        for key, value in self.env_changes().items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        self.write_settings()

    def env_changes(self) -> dict[str, str | None]:
        return {
            "HOME": str(self.home),
            "HF_HUB_CACHE": str(self.hf_cache),
            "HF_HOME": None,
            "HUGGINGFACE_HUB_CACHE": None,
            "XDG_CACHE_HOME": None,
            "OLLAMA_MODELS": None,
        }

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.env_changes().items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def write_settings(self) -> None:
        from hanlin.engine.core.settings import update_settings

        update_settings(scan_folders=[str(self.folder)])


def _blob(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_fake_disk(root: Path) -> FakeDisk:
    """Write the whole fake disk under `root` (about 2 MB, a fraction of a second)."""
    home = root / "home"
    hf = root / "hf-cache"
    ollama = home / ".ollama" / "models"
    lmstudio = home / ".lmstudio" / "models"
    folder = root / "my-models"
    work = root / "work"
    work.mkdir(parents=True)
    paths: dict[str, Path] = {}

    # --- Hugging Face cache: two revisions (main is the newer), a link to a lost blob,
    # and a vision projector
    repo = hf / f"models--{HF_REPO.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    old, new = "1" * 40, "2" * 40
    for revision, seed in ((old, 1), (new, 2)):
        data = write_tiny_fim_gguf(work / f"chat-{seed}.gguf", seed=seed).read_bytes()
        sha = _blob(data)
        (repo / "blobs" / sha).write_bytes(data)
        snapshot = repo / "snapshots" / revision
        snapshot.mkdir(parents=True)
        (snapshot / HF_FILE).symlink_to(f"../../blobs/{sha}")
    lost = repo / "snapshots" / new / "Tiny-Chat-Q4_K_M.gguf"
    lost.symlink_to(f"../../blobs/{'f' * 64}")
    projector = write_tiny_fim_gguf(work / "mmproj.gguf", seed=3).read_bytes()
    (repo / "blobs" / _blob(projector)).write_bytes(projector)
    (repo / "snapshots" / new / "mmproj-Tiny-F16.gguf").symlink_to(
        f"../../blobs/{_blob(projector)}"
    )
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(new)
    paths["tiny-chat-q8_0"] = repo / "snapshots" / new / HF_FILE

    # --- Ollama: a good model (with a projector layer beside it) and a truncated blob
    (ollama / "blobs").mkdir(parents=True)
    coder = write_tiny_fim_gguf(work / "coder.gguf", "deepseek-coder", seed=4).read_bytes()
    whole = write_tiny_fim_gguf(work / "whole.gguf", seed=5).read_bytes()
    cut = whole[: len(whole) // 2]
    for name, tag, data in (("tiny-coder", "latest", coder), ("broken", "7b", cut)):
        digest = _blob(data)
        (ollama / "blobs" / f"sha256-{digest}").write_bytes(data)
        manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / name / tag
        manifest.parent.mkdir(parents=True)
        layers = [
            {
                "mediaType": "application/vnd.ollama.image.model",
                "digest": f"sha256:{digest}",
                "size": len(data),
            },
            {
                "mediaType": "application/vnd.ollama.image.projector",
                "digest": f"sha256:{_blob(projector)}",
                "size": len(projector),
            },
            {
                "mediaType": "application/vnd.ollama.image.template",
                "digest": "sha256:" + "0" * 64,
                "size": 10,
            },
        ]
        manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
        if name == "tiny-coder":
            paths["tiny-coder"] = ollama / "blobs" / f"sha256-{digest}"

    # --- LM Studio: PUBLISHER/REPO/FILE, a split set, and a projector
    lm_repo = lmstudio / "lmstudio-community" / "Tiny-Split-GGUF"
    source = write_tiny_fim_gguf(work / "split-source.gguf", seed=6)
    parts = split_gguf(source, lm_repo, shards=2, stem="Tiny-Split-Q8_0")
    shutil.copyfile(work / "mmproj.gguf", lm_repo / "mmproj-Tiny-Split-F16.gguf")
    paths["tiny-split-q8_0"] = parts[0]

    # --- a folder of the user's: a model in a sub-folder, a `.gguf` that is not one, a note
    (folder / "sub").mkdir(parents=True)
    paths["tiny-folder-q8_0"] = write_tiny_fim_gguf(
        folder / "sub" / "Tiny-Folder-Q8_0.gguf", seed=7
    )
    (folder / "garbage.gguf").write_bytes(b"<html>404 Not Found</html>" * 40)
    (folder / "notes.txt").write_text("my models")
    shutil.rmtree(work)
    return FakeDisk(root, home, hf, ollama, lmstudio, folder, paths)


__all__ = ["BROKEN", "EXPECTED", "HF_FILE", "HF_REPO", "FakeDisk", "build_fake_disk"]
