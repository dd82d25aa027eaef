"""Split a real GGUF into a real shard set (`NAME-00001-of-0000N.gguf`), as llama.cpp does.

Why: sharded models (unsloth's large repos) cannot be downloaded in the tests, and a
shard set is only trustworthy when llama.cpp itself has loaded one. The `gguf` package's
writer splits natively (`split_max_tensors`): the first shard carries all metadata plus
`split.no`, `split.count` and `split.tensors.count`, later shards carry only those three
keys and their tensors — the layout `llama-gguf-split --split` writes and llama.cpp's
loader follows from the first shard's name.

    python -m tests.support.split_gguf MODEL.gguf OUT_DIR [--shards 3] [--stem NAME]
"""

from __future__ import annotations

import argparse
import atexit
import math
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["cached_split", "split_gguf"]

_CACHE: dict[tuple[str, int, str | None], list[Path]] = {}


def split_gguf(
    source: Path, out_dir: Path, *, shards: int = 2, stem: str | None = None
) -> list[Path]:
    """Write `source` as `shards` files in `out_dir` (tensors spread evenly); return their paths."""
    import gguf

    reader = gguf.GGUFReader(str(source))
    arch_field = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    assert arch_field is not None, f"{source} has no general.architecture"
    arch = arch_field.contents()
    per_shard = max(1, math.ceil(len(reader.tensors) / shards))
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{stem or Path(source).name.removesuffix('.gguf')}.gguf"
    writer = gguf.GGUFWriter(str(out_dir / name), arch, split_max_tensors=per_shard)
    for field in reader.fields.values():
        # general.architecture is written by GGUFWriter itself; GGUF.* are the reader's own
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name.startswith("split."):
            continue
        if field.name == gguf.Keys.General.ALIGNMENT:
            writer.data_alignment = int(field.contents())
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name,
            tensor.data.shape,
            tensor.data.dtype,
            tensor.data.nbytes,
            tensor.tensor_type,
        )
    paths = writer.format_shard_names(Path(writer.path or out_dir / name))
    assert len(paths) == shards, f"{source} has too few tensors for {shards} shards"
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return paths


def cached_split(source: Path, *, shards: int = 2, stem: str | None = None) -> list[Path]:
    """`split_gguf` once per test process, into a temporary folder removed at exit.

    The files are shared by every test that asks for the same split: serve or copy them,
    never change them in place.
    """
    key = (str(source), shards, stem)
    if key not in _CACHE or not all(p.is_file() for p in _CACHE[key]):
        folder = Path(tempfile.mkdtemp(prefix="hanlin-split-"))
        atexit.register(shutil.rmtree, folder, True)
        _CACHE[key] = split_gguf(source, folder, shards=shards, stem=stem)
    return _CACHE[key]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--stem")
    args = parser.parse_args(argv)
    for path in split_gguf(args.source, args.out_dir, shards=args.shards, stem=args.stem):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
