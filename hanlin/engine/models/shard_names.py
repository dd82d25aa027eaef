"""The names of split GGUF models: `NAME-00001-of-00003.gguf` and the set a name belongs to.

Why a module of its own: the catalog (which validates entries that name a split model), the
store (which downloads, imports, lists and removes every shard of one), Hub search (which
folds shards into one download) and the disk scan all have to agree, to the letter, on
which files make one model. The rule is llama.cpp's: `llama_split_path` writes
`{stem}-{index:05d}-of-{count:05d}.gguf` with a 1-based index, and the loader finds the
later shards from the first one's name. What is on disk (the `split.*` header keys, a
whole set) is checked by engine/store/shards.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SHARD_NAME_RE",
    "ShardName",
    "display_name",
    "find_shard_set",
    "first_shard",
    "is_sharded",
    "parse_shard_name",
    "shard_files",
]

#: `NAME-00001-of-00003.gguf`, exactly as llama.cpp's `llama_split_path` writes it
SHARD_NAME_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")



@dataclass(frozen=True)
class ShardName:
    """One shard's name: `stem` (with any sub-folders, no suffix), 1-based `index`, `count`."""

    stem: str
    index: int
    count: int

    def file(self, index: int) -> str:
        """The name of shard `index` (1-based) of this set, in the same folder."""
        return f"{self.stem}-{index:05d}-of-{self.count:05d}.gguf"

    @property
    def first(self) -> str:
        return self.file(1)

    def files(self) -> list[str]:
        return [self.file(i) for i in range(1, self.count + 1)]

    @property
    def stem_file(self) -> str:
        """`stem.gguf`: how people name the model when they do not name a shard."""
        return f"{self.stem}.gguf"


def parse_shard_name(file: str | Path) -> ShardName | None:
    """The shard a file name (or a path in a repository) denotes, or None for a plain file.

    `Q4_K_M/GLM-4.5-Air-Q4_K_M-00002-of-00002.gguf` -> stem `Q4_K_M/GLM-4.5-Air-Q4_K_M`,
    index 2, count 2. An index of 0 or past the count is not a shard name.
    """
    text = file.as_posix() if isinstance(file, Path) else file
    match = SHARD_NAME_RE.match(text)
    if match is None:
        return None
    index, count = int(match.group("index")), int(match.group("count"))
    if not 1 <= index <= count:
        return None
    return ShardName(match.group("stem"), index, count)


def shard_files(file: str) -> list[str]:
    """Every file of the model `file` names: its shard set in order, or `[file]` itself."""
    name = parse_shard_name(file)
    return name.files() if name is not None and name.count > 1 else [file]


def first_shard(file: str) -> str:
    """The file a model is known by: the first shard of a set, or the file itself."""
    name = parse_shard_name(file)
    return name.first if name is not None and name.count > 1 else file


def is_sharded(file: str) -> bool:
    name = parse_shard_name(file)
    return name is not None and name.count > 1


def display_name(file: str) -> str:
    """A model's file name without folders or the shard suffix: `GLM-4.5-Air-Q4_K_M.gguf`."""
    name = parse_shard_name(file)
    base = name.stem_file if name is not None and name.count > 1 else file
    return base.rsplit("/", 1)[-1]


def find_shard_set(stem_file: str, files: Iterable[str]) -> str | None:
    """The first shard of the set `stem_file` (`FOLDER/NAME.gguf`) names in a file list.

    For refs that name a model by its stem when the repository holds only shards. A set
    whose shards are all listed wins over an incomplete one; None when there is no set.
    """
    if not stem_file.endswith(".gguf"):
        return None
    stem = stem_file[: -len(".gguf")]
    listed = set(files)
    candidates = sorted(
        {
            name.first
            for name in (parse_shard_name(f) for f in listed)
            if name is not None and name.stem == stem and name.count > 1
        }
    )
    if not candidates:
        return None
    complete = [c for c in candidates if all(f in listed for f in shard_files(c))]
    return (complete or candidates)[0]
