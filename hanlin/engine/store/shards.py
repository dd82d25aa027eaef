"""Split GGUF models ("shard sets"): their names, the set a name belongs to, and a check
that a set on disk is whole before llama.cpp is asked to load it.

Why a module of its own: large models are published as `NAME-00001-of-00003.gguf`,
`NAME-00002-of-00003.gguf`, … (llama.cpp's `gguf-split` layout, often in a sub-folder such
as `Q4_K_M/`). Every part of Hanlin that names, downloads, lists, imports, removes or loads
a model must agree on which files make one model, and llama.cpp itself finds the later
shards only from the first shard's *name*, in the same folder. When one is missing or cut
short, llama.cpp says "failed to load GGUF split" and the loader could only guess at
"damaged or need more memory"; `check_shard_set` names the shard instead, before loading.

The layout (llama.cpp `examples/gguf-split`, gguf-py's `GGUFWriter(split_max_*)`): every
shard is a GGUF file with `split.no` (0-based), `split.count` and `split.tensors.count`;
only the first carries the model's metadata, the others hold just those keys and their
tensors. Names are `{stem}-{index:05d}-of-{count:05d}.gguf` with a 1-based index.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hanlin.engine.core import paths
from hanlin.engine.core.errors import ModelFileError
from hanlin.engine.models.gguf_info import (
    DEFAULT_ALIGNMENT,
    GGML_BLOCK_SIZES,
    GGUF_MAGIC,
    SUPPORTED_VERSIONS,
    GGUFInfo,
    read_gguf_info,
)
from hanlin.engine.models.shard_names import (
    SHARD_NAME_RE,
    ShardName,
    display_name,
    find_shard_set,
    first_shard,
    is_sharded,
    parse_shard_name,
    shard_files,
)

SPLIT_NO = "split.no"
SPLIT_COUNT = "split.count"
SPLIT_TENSORS = "split.tensors.count"


# --------------------------------------------------------------------------- on disk


@dataclass(frozen=True)
class ShardHeader:
    """What a shard's GGUF header says about its place in the set."""

    path: Path
    tensor_count: int
    split_no: int | None
    split_count: int | None
    tensors_total: int | None
    #: the file must be at least this long for its tensors to be whole
    data_end: int
    file_size: int


class _Short(Exception):
    """Internal: the header ends before a field it announces."""


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9


class _HeaderReader:
    """Bounds-checked little-endian reads of a GGUF header (later shards' headers are tiny)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    def take(self, fmt: str) -> object:
        n = struct.calcsize(fmt)
        raw = self.handle.read(n)
        if len(raw) < n:
            raise _Short
        return struct.unpack(fmt, raw)[0]

    def skip(self, n: int) -> None:
        if self.handle.tell() + n > self.size:
            raise _Short
        self.handle.seek(n, os.SEEK_CUR)

    def string(self) -> bytes:
        n = int(self.take("<Q"))  # type: ignore[arg-type]
        if self.handle.tell() + n > self.size:
            raise _Short
        return self.handle.read(n)

    def value(self, vtype: int) -> object:
        fmt = _SCALARS.get(vtype)
        if fmt is not None:
            return self.take(fmt)
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item = int(self.take("<I"))  # type: ignore[arg-type]
            length = int(self.take("<Q"))  # type: ignore[arg-type]
            item_fmt = _SCALARS.get(item)
            if item_fmt is not None:
                self.skip(struct.calcsize(item_fmt) * length)
            elif item == _STRING:
                for _ in range(length):
                    self.skip(int(self.take("<Q")))  # type: ignore[arg-type]
            else:
                raise ValueError(f"an unknown metadata array type {item}")
            return None
        raise ValueError(f"an unknown metadata value type {vtype}")


def read_shard_header(path: Path) -> ShardHeader:
    """Parse a shard's header: its split keys and where its tensor data ends.

    Later shards carry no `general.architecture`, so `read_gguf_info` (which needs one)
    cannot read them. Raises ModelFileError naming the file and the reason.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist", "check the path") from None
    except OSError as exc:
        raise ModelFileError(
            f"Cannot open {path}: {exc.strerror or exc}", "check permissions"
        ) from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        r = _HeaderReader(handle, size)
        try:
            if handle.read(4) != GGUF_MAGIC:
                raise ModelFileError(
                    f"{path} is not a GGUF file", "the shard is damaged: download it again"
                )
            version = int(r.take("<I"))  # type: ignore[arg-type]
            if version not in SUPPORTED_VERSIONS:
                raise ModelFileError(
                    f"{path} uses GGUF version {version}",
                    "the shard is damaged or from another conversion: download it again",
                )
            tensor_count = int(r.take("<Q"))  # type: ignore[arg-type]
            kv_count = int(r.take("<Q"))  # type: ignore[arg-type]
            if kv_count * 12 + tensor_count * 24 > size:
                raise _Short
            meta: dict[str, object] = {}
            for _ in range(kv_count):
                key = r.string().decode("utf-8", "replace")
                meta[key] = r.value(int(r.take("<I")))  # type: ignore[arg-type]
            alignment = meta.get("general.alignment")
            align = alignment if isinstance(alignment, int) and alignment > 0 else DEFAULT_ALIGNMENT
            end = 0
            for _ in range(tensor_count):
                r.skip(int(r.take("<Q")))  # type: ignore[arg-type]
                n_dims = int(r.take("<I"))  # type: ignore[arg-type]
                if n_dims > 8:
                    raise ValueError(f"a tensor with {n_dims} dimensions")
                dims = [int(r.take("<Q")) for _ in range(n_dims)]  # type: ignore[call-overload]
                ggml_type = int(r.take("<I"))  # type: ignore[arg-type]
                offset = int(r.take("<Q"))  # type: ignore[arg-type]
                block, type_size = GGML_BLOCK_SIZES.get(ggml_type, (1, 0))
                count = 1
                for d in dims:
                    count *= d
                end = max(end, offset + count // block * type_size)
        except _Short:
            raise ModelFileError(
                f"{path} is truncated: its GGUF header ends early ({size} bytes on disk)",
                "the download or copy did not finish; download it again",
            ) from None
        except ValueError as exc:
            raise ModelFileError(f"{path} is damaged: it has {exc}", "download it again") from None
        header_end = handle.tell()
    data_start = (header_end + align - 1) // align * align
    return ShardHeader(
        path=path,
        tensor_count=tensor_count,
        split_no=_as_int(meta.get(SPLIT_NO)),
        split_count=_as_int(meta.get(SPLIT_COUNT)),
        tensors_total=_as_int(meta.get(SPLIT_TENSORS)),
        data_end=data_start + end if tensor_count else header_end,
        file_size=size,
    )


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def split_count_of(info: GGUFInfo) -> int:
    """How many files the model whose first file `info` describes is split into (1: none)."""
    count = _as_int(info.metadata.get(SPLIT_COUNT))
    return count if count and count > 1 else 1


def shard_paths(path: Path) -> list[Path]:
    """The files of the set whose first shard is `path`, by name (or `[path]`)."""
    name = parse_shard_name(path.name)
    if name is None or name.count <= 1:
        return [path]
    return [path.with_name(f) for f in name.files()]


def check_shard_set(
    path: Path | str, info: GGUFInfo | None = None, *, model_id: str | None = None
) -> list[Path]:
    """Check that every shard of the model `path` names is present and whole; its files.

    A plain GGUF returns `[path]` at once (no extra reads). For a split model: `path` must
    be the first shard and keep llama.cpp's name, and each later shard must sit beside it,
    be a GGUF whose `split.no`/`split.count` put it at its place, and be as long as its
    tensors; the shards together hold `split.tensors.count` tensors. Raises ModelFileError
    naming the shard and the reason. `model_id` makes the hint say which model to pull.
    """
    path = Path(path)
    info = info or read_gguf_info(path)
    name = parse_shard_name(path.name)
    count = split_count_of(info)
    if count == 1:
        if name is not None and name.count > 1:
            raise ModelFileError(
                f"{path} is named as shard 1 of {name.count}, but its header says it is not split",
                "the file was renamed or replaced: download the model again",
            )
        return [path]
    repair = _repair_hint(path, model_id)
    split_no = _as_int(info.metadata.get(SPLIT_NO))
    if split_no not in (None, 0) or (name is not None and name.index != 1):
        raise _not_first(path, name, split_no)
    if name is None or name.count != count:
        expected = f"-00001-of-{count:05d}.gguf"
        raise ModelFileError(
            f"{path} is the first of {count} shards, but its name does not end in `{expected}`:"
            " llama.cpp finds the other shards by that name",
            f"rename it to end in `{expected}` (and keep the others' names)",
        )
    paths = shard_paths(path)
    tensors = info.tensor_count
    for index, shard in enumerate(paths[1:], start=2):
        label = f"Shard {index} of {count} of {display_name(path.name)}"
        if not shard.is_file():
            raise ModelFileError(f"{label} is missing: {shard} does not exist", repair)
        try:
            header = read_shard_header(shard)
        except ModelFileError as exc:
            raise ModelFileError(f"{label} is unusable: {exc.message}", repair) from None
        if header.split_no != index - 1 or header.split_count != count:
            found = (
                f"shard {header.split_no + 1} of {header.split_count}"
                if header.split_no is not None and header.split_count
                else "not a shard"
            )
            raise ModelFileError(
                f"{label} is the wrong file: {shard} says it is {found}",
                f"it belongs to another model or conversion; {repair}",
            )
        if header.file_size < header.data_end:
            raise ModelFileError(
                f"{label} is truncated: {shard} has {header.file_size} bytes, its tensors"
                f" need {header.data_end}",
                repair,
            )
        tensors += header.tensor_count
    announced = _as_int(info.metadata.get(SPLIT_TENSORS))
    if announced is not None and announced != tensors:
        raise ModelFileError(
            f"The {count} shards of {display_name(path.name)} hold {tensors} tensors, but the"
            f" first shard announces {announced}",
            f"the shards come from different conversions; {repair}",
        )
    return paths


def _repair_hint(path: Path, model_id: str | None) -> str:
    """What to do about a broken set: pull it again when Hanlin pulled it, else put it back."""
    if model_id:
        return f"run `hanlin models pull {model_id}`: it fetches what is missing and keeps the rest"
    try:
        inside = path.resolve().relative_to(paths.models_dir().resolve())
    except (OSError, ValueError):
        inside = None
    if inside is not None and len(inside.parts) >= 3:  # OWNER/REPO/[FOLDER/]FILE: a pull
        ref = f"hf.co/{inside.as_posix()}"
        return f"run `hanlin models pull {ref}`: it fetches only what is missing"
    return "put the shard back beside the first one (llama.cpp looks for it there)"


def _not_first(path: Path, name: ShardName | None, split_no: int | None = None) -> ModelFileError:
    index = name.index if name is not None else (split_no or 0) + 1
    first = path.with_name(Path(name.first).name) if name is not None else None
    where = f": load the first shard, {first}" if first is not None else ""
    return ModelFileError(
        f"{path} is shard {index} of a split model, not its first shard",
        f"a split model is loaded by its first shard{where}",
    )


def read_model_info(path: Path | str, *, model_id: str | None = None) -> GGUFInfo:
    """The header of the model file `path`, after checking that its shard set is whole.

    What a loader calls instead of `read_gguf_info`: a later shard is refused with the name
    of the first one (it has no model metadata of its own), and a split model's missing,
    cut or foreign shard is named before llama.cpp is asked to load it.
    """
    path = Path(path)
    name = parse_shard_name(path.name)
    if name is not None and name.index > 1 and path.is_file():
        try:
            header = read_shard_header(path)
        except ModelFileError:
            header = None
        if header is None or (header.split_no or 0) > 0:
            raise _not_first(path, name, header.split_no if header else None)
    info = read_gguf_info(path)
    check_shard_set(path, info, model_id=model_id)
    return info


def first_shard_path(path: Path) -> Path:
    """The first shard beside a later shard's path (by name), or `path` itself."""
    name = parse_shard_name(path.name)
    if name is None or name.count <= 1 or name.index == 1:
        return path
    return path.with_name(name.first)


__all__ = [
    "SHARD_NAME_RE",
    "ShardHeader",
    "ShardName",
    "check_shard_set",
    "display_name",
    "find_shard_set",
    "first_shard",
    "first_shard_path",
    "is_sharded",
    "parse_shard_name",
    "read_model_info",
    "read_shard_header",
    "shard_files",
    "shard_paths",
    "split_count_of",
]
