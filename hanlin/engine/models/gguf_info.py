"""Read a GGUF file's header and metadata without loading the model.

Why: the store must check that a download is a real, complete GGUF before it is
renamed into place, the fit verdict needs layer and head counts, and the
completion engine needs the FIM token ids — all before (or without) asking
llama.cpp to map gigabytes. This reader is pure Python (`struct`, no numpy),
reads only the header, metadata and tensor table (a few MiB even for a 30B
model), and checks that the file is at least as long as its tensor data claims,
so a truncated download fails here with a clear message instead of crashing
llama.cpp later.

Format reference: ggml's `docs/gguf.md` (versions 2 and 3; version 1 used
32-bit counts and has been unsupported by llama.cpp since 2023).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from hanlin.engine.core.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL = range(8)
_STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = 8, 9, 10, 11, 12

_SCALAR_FORMATS: dict[int, str] = {
    _UINT8: "<B",
    _INT8: "<b",
    _UINT16: "<H",
    _INT16: "<h",
    _UINT32: "<I",
    _INT32: "<i",
    _FLOAT32: "<f",
    _BOOL: "<?",
    _UINT64: "<Q",
    _INT64: "<q",
    _FLOAT64: "<d",
}
_TYPE_NAMES: dict[int, str] = {
    _UINT8: "uint8",
    _INT8: "int8",
    _UINT16: "uint16",
    _INT16: "int16",
    _UINT32: "uint32",
    _INT32: "int32",
    _FLOAT32: "float32",
    _BOOL: "bool",
    _STRING: "string",
    _ARRAY: "array",
    _UINT64: "uint64",
    _INT64: "int64",
    _FLOAT64: "float64",
}

#: ggml tensor type -> (elements per block, bytes per block); from ggml's type traits.
GGML_BLOCK_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 40),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
    39: (32, 17),
    40: (64, 36),
    41: (128, 18),
}

_TOK = "tokenizer.ggml"

#: Arrays up to this many numbers are kept whole in `metadata` (per-layer head counts).
_SMALL_ARRAY = 512


@dataclass(frozen=True, slots=True)
class ArraySummary:
    """Stands in for a large metadata array (a vocabulary, merges) in `GGUFInfo.metadata`."""

    item_type: str
    length: int


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    tensor_count: int
    architecture: str
    name: str | None
    context_length: int | None
    n_layers: int | None
    n_heads: int | None
    n_kv_heads: int | None
    embedding_length: int | None
    key_length: int | None
    value_length: int | None
    file_type: int | None
    chat_template: str | None
    fim_pre_id: int | None
    fim_suf_id: int | None
    fim_mid_id: int | None
    #: every scalar key/value; small numeric arrays as lists, large arrays as ArraySummary
    metadata: dict[str, object] = field(repr=False)
    #: byte offset where tensor data ends (the file must be at least this long)
    data_end: int = 0
    file_size: int = 0

    @property
    def has_fim(self) -> bool:
        return None not in (self.fim_pre_id, self.fim_suf_id, self.fim_mid_id)


class _Truncated(Exception):
    """Internal: the header ends before a field it announces."""


class _Reader:
    """Little-endian reads over a file, through a growing in-memory window.

    Vocabulary arrays hold ~150k short strings; one `file.read` per string would
    dominate, so the reader pulls 1 MiB blocks and unpacks from memory.
    """

    _BLOCK = 1 << 20

    def __init__(self, handle: BinaryIO, file_size: int) -> None:
        self._f = handle
        self._size = file_size
        self._buf = b""
        self._pos = 0  # position inside _buf
        self._base = 0  # file offset of _buf[0]

    @property
    def offset(self) -> int:
        return self._base + self._pos

    def _need(self, n: int) -> None:
        if self._pos + n <= len(self._buf):
            return
        if self.offset + n > self._size:
            raise _Truncated
        rest = self._buf[self._pos :]
        self._base += self._pos
        self._pos = 0
        more = self._f.read(max(self._BLOCK, n - len(rest)))
        self._buf = rest + more
        if len(self._buf) < n:
            raise _Truncated

    def unpack(self, fmt: str, size: int) -> object:
        self._need(size)
        (value,) = struct.unpack_from(fmt, self._buf, self._pos)
        self._pos += size
        return value

    def u32(self) -> int:
        return self.unpack("<I", 4)  # type: ignore[return-value]

    def u64(self) -> int:
        return self.unpack("<Q", 8)  # type: ignore[return-value]

    def string(self) -> str:
        n = self.u64()
        if self.offset + n > self._size:
            raise _Truncated
        self._need(n)
        raw = self._buf[self._pos : self._pos + n]
        self._pos += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.u64()
        if self.offset + n > self._size:
            raise _Truncated
        self._need(n)
        self._pos += n

    def skip(self, n: int) -> None:
        if self.offset + n > self._size:
            raise _Truncated
        self._need(n)
        self._pos += n


def _read_value(r: _Reader, vtype: int, path: Path, key: str) -> object:
    fmt = _SCALAR_FORMATS.get(vtype)
    if fmt is not None:
        return r.unpack(fmt, struct.calcsize(fmt))
    if vtype == _STRING:
        return r.string()
    if vtype == _ARRAY:
        item_type = r.u32()
        length = r.u64()
        item_fmt = _SCALAR_FORMATS.get(item_type)
        if item_fmt is not None:
            item_size = struct.calcsize(item_fmt)
            if length <= _SMALL_ARRAY:
                return [r.unpack(item_fmt, item_size) for _ in range(length)]
            r.skip(item_size * length)
        elif item_type == _STRING:
            for _ in range(length):
                r.skip_string()
        elif item_type == _ARRAY:
            raise ModelFileError(
                f"{path} has a nested array in metadata key {key!r}",
                "the file is not a GGUF llama.cpp can load",
            )
        else:
            raise ModelFileError(
                f"{path} has an unknown metadata array type {item_type} in {key!r}",
                "the file is corrupt or from an unsupported GGUF writer",
            )
        return ArraySummary(_TYPE_NAMES.get(item_type, str(item_type)), length)
    raise ModelFileError(
        f"{path} has an unknown metadata value type {vtype} in {key!r}",
        "the file is corrupt or from an unsupported GGUF writer",
    )


def _tensor_nbytes(ggml_type: int, dims: list[int]) -> int | None:
    sizes = GGML_BLOCK_SIZES.get(ggml_type)
    if sizes is None:
        return None
    block, type_size = sizes
    n = 1
    for d in dims:
        n *= d
    return (n // block) * type_size


def _int(meta: dict[str, object], key: str) -> int | None:
    value = meta.get(key)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return max(value)  # per-layer counts (e.g. OpenELM): the largest is the safe bound
    return None


def _str(meta: dict[str, object], key: str) -> str | None:
    value = meta.get(key)
    return value if isinstance(value, str) else None


def read_gguf_info(path: Path | str) -> GGUFInfo:
    """Parse the header of `path`. Raises ModelFileError naming the file and the reason."""
    path = Path(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist", "check the path") from None
    except IsADirectoryError:
        raise ModelFileError(
            f"{path} is a folder, not a GGUF file", "give the .gguf file inside it"
        ) from None
    except OSError as exc:
        raise ModelFileError(
            f"Cannot open {path}: {exc.strerror or exc}", "check the permissions"
        ) from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            return _parse(handle, path, size)
        except _Truncated:
            raise ModelFileError(
                f"{path} is truncated: its GGUF header ends early ({size} bytes on disk)",
                "the download or copy did not finish; download it again",
            ) from None
        except OSError as exc:
            raise ModelFileError(
                f"Cannot read {path}: {exc.strerror or exc}", "check the disk"
            ) from exc


def _parse(handle: BinaryIO, path: Path, size: int) -> GGUFInfo:
    r = _Reader(handle, size)
    try:
        r._need(4)
    except _Truncated:
        raise ModelFileError(
            f"{path} is not a GGUF model file (it is only {size} bytes)",
            "choose a .gguf file; other formats (safetensors, .bin, .pt) must be converted first",
        ) from None
    magic = r._buf[:4]
    r.skip(4)
    if magic != GGUF_MAGIC:
        raise ModelFileError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF')",
            "choose a .gguf file; other formats (safetensors, .bin, .pt) must be converted first",
        )
    version = r.u32()
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"{path} uses GGUF version {version}, which Hanlin does not support"
            f" (supported: {', '.join(map(str, SUPPORTED_VERSIONS))})",
            "download a newer conversion of this model",
        )
    tensor_count = r.u64()
    kv_count = r.u64()
    # Each KV needs >= 12 bytes and each tensor info >= 24: bound the counts by the file size
    # so a corrupt header fails fast instead of looping for hours.
    if kv_count * 12 + tensor_count * 24 > size:
        raise _Truncated
    meta: dict[str, object] = {}
    for _ in range(kv_count):
        key = r.string()
        vtype = r.u32()
        meta[key] = _read_value(r, vtype, path, key)

    alignment = _int(meta, "general.alignment") or DEFAULT_ALIGNMENT
    if alignment <= 0 or alignment & (alignment - 1):
        raise ModelFileError(
            f"{path} declares an invalid alignment {alignment}", "the file is corrupt"
        )
    max_end = 0
    for _ in range(tensor_count):
        r.skip_string()
        n_dims = r.u32()
        if n_dims > 8:
            raise ModelFileError(
                f"{path} has a tensor with {n_dims} dimensions", "the file is corrupt"
            )
        dims = [r.u64() for _ in range(n_dims)]
        ggml_type = r.u32()
        offset = r.u64()
        nbytes = _tensor_nbytes(ggml_type, dims)
        max_end = max(max_end, offset + (nbytes or 0))
    header_end = r.offset
    data_start = (header_end + alignment - 1) // alignment * alignment
    data_end = data_start + max_end if tensor_count else header_end
    if size < data_end:
        raise ModelFileError(
            f"{path} is truncated: {size} bytes on disk but its tensors need {data_end} bytes",
            "the download or copy did not finish; download it again",
        )

    arch = _str(meta, "general.architecture")
    if not arch:
        raise ModelFileError(
            f"{path} has no general.architecture in its metadata",
            "the file is not a model GGUF (maybe a LoRA or vocab-only file)",
        )
    n_heads = _int(meta, f"{arch}.attention.head_count")
    n_kv_heads = _int(meta, f"{arch}.attention.head_count_kv") or n_heads
    embedding = _int(meta, f"{arch}.embedding_length")
    head_dim = embedding // n_heads if embedding and n_heads else None
    return GGUFInfo(
        path=path,
        version=version,
        tensor_count=tensor_count,
        architecture=arch,
        name=_str(meta, "general.name"),
        context_length=_int(meta, f"{arch}.context_length"),
        n_layers=_int(meta, f"{arch}.block_count"),
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        embedding_length=embedding,
        key_length=_int(meta, f"{arch}.attention.key_length") or head_dim,
        value_length=_int(meta, f"{arch}.attention.value_length") or head_dim,
        file_type=_int(meta, "general.file_type"),
        chat_template=_str(meta, "tokenizer.chat_template"),
        fim_pre_id=_first_int(meta, f"{_TOK}.fim_pre_token_id", f"{_TOK}.prefix_token_id"),
        fim_suf_id=_first_int(meta, f"{_TOK}.fim_suf_token_id", f"{_TOK}.suffix_token_id"),
        fim_mid_id=_first_int(meta, f"{_TOK}.fim_mid_token_id", f"{_TOK}.middle_token_id"),
        metadata=meta,
        data_end=data_end,
        file_size=size,
    )


def read_metadata_array(path: Path | str, key: str) -> list[object] | None:
    """One metadata array in full, or None if the file has no array `key`.

    `read_gguf_info` summarises large arrays to stay fast; this reads one of them,
    stopping at it: e.g. `tokenizer.ggml.token_type`, the token types the file
    declares (llama.cpp overrides some at load, such as Qwen's ordinary `</s>`
    token, which it makes a control token because of its text).
    Raises ModelFileError for a file that cannot be read as GGUF.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ModelFileError(
            f"Cannot open {path}: {exc.strerror or exc}", "check the path"
        ) from exc
    with handle:
        size = os.fstat(handle.fileno()).st_size
        r = _Reader(handle, size)
        try:
            r._need(4)
            magic = r._buf[:4]
            r.skip(4)
            if magic != GGUF_MAGIC or r.u32() not in SUPPORTED_VERSIONS:
                raise ModelFileError(
                    f"{path} is not a GGUF file Hanlin can read", "choose a .gguf model file"
                )
            r.u64()  # tensor count
            for _ in range(r.u64()):
                name = r.string()
                vtype = r.u32()
                if name != key or vtype != _ARRAY:
                    _read_value(r, vtype, path, name)
                    continue
                item_type = r.u32()
                length = r.u64()
                if item_type == _STRING:
                    return [r.string() for _ in range(length)]
                fmt = _SCALAR_FORMATS.get(item_type)
                if fmt is None:
                    return None
                nbytes = struct.calcsize(fmt) * length
                if r.offset + nbytes > size:
                    raise _Truncated
                r._need(nbytes)
                values = struct.unpack_from(f"<{length}{fmt[1:]}", r._buf, r._pos)
                r._pos += nbytes
                return list(values)
        except _Truncated:
            raise ModelFileError(
                f"{path} is truncated: its GGUF header ends early ({size} bytes on disk)",
                "the download or copy did not finish; download it again",
            ) from None
    return None


def _first_int(meta: dict[str, object], *keys: str) -> int | None:
    for key in keys:
        value = _int(meta, key)
        if value is not None:
            return value
    return None


__all__ = [
    "GGML_BLOCK_SIZES",
    "ArraySummary",
    "GGUFInfo",
    "read_gguf_info",
    "read_metadata_array",
]
