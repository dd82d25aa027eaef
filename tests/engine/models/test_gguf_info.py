"""engine.models.gguf_info against the real SmolLM2 GGUF, GGUFs written with the `gguf` package,
and broken files (not GGUF, wrong version, truncated header, truncated tensor data)."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from hanlin.engine.core.errors import ModelFileError
from hanlin.engine.models.fit import kv_cache_bytes_of as kv_cache_bytes
from hanlin.engine.models.gguf_info import (
    GGML_BLOCK_SIZES,
    ArraySummary,
    read_gguf_info,
    read_metadata_array,
)
from tests.support.fake_hub import gguf_header, make_gguf


def test_reads_smollm2_header(smollm2_path: Path) -> None:
    info = read_gguf_info(smollm2_path)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.n_layers == 30
    assert info.n_heads == 9
    assert info.n_kv_heads == 3
    assert info.embedding_length == 576
    assert info.key_length == info.value_length == 64
    assert info.context_length == 8192
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.fim_pre_id is None and not info.has_fim
    assert info.data_end == smollm2_path.stat().st_size
    tokens = info.metadata["tokenizer.ggml.tokens"]
    assert isinstance(tokens, ArraySummary) and tokens.length == 49152
    assert info.metadata["tokenizer.ggml.eos_token_id"] == 2


@pytest.mark.slow
def test_agrees_with_the_gguf_package(smollm2_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(smollm2_path)
    info = read_gguf_info(smollm2_path)
    assert info.tensor_count == len(reader.tensors)
    last = max(reader.tensors, key=lambda t: t.data_offset)
    assert info.data_end == last.data_offset + last.n_bytes
    for qtype, sizes in gguf.GGML_QUANT_SIZES.items():
        assert GGML_BLOCK_SIZES[int(qtype)] == sizes, qtype.name


def test_kv_cache_bytes(smollm2_path: Path) -> None:
    info = read_gguf_info(smollm2_path)
    assert kv_cache_bytes(info, 2048) == 30 * 3 * (64 + 64) * 2 * 2048


def test_fim_ids_and_qwen2_metadata(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    import numpy as np

    path = tmp_path / "tiny-qwen2.gguf"
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("Tiny Qwen2.5 Coder")
    writer.add_block_count(2)
    writer.add_context_length(32768)
    writer.add_embedding_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_uint32("tokenizer.ggml.fim_pre_token_id", 151659)
    writer.add_uint32("tokenizer.ggml.fim_suf_token_id", 151661)
    writer.add_uint32("tokenizer.ggml.fim_mid_token_id", 151660)
    writer.add_tensor("token_embd.weight", np.ones((8, 128), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones((128,), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    info = read_gguf_info(path)
    assert info.architecture == "qwen2"
    assert info.name == "Tiny Qwen2.5 Coder"
    assert (info.fim_pre_id, info.fim_suf_id, info.fim_mid_id) == (151659, 151661, 151660)
    assert info.has_fim
    assert info.key_length == 32  # embedding / heads when the key length is not stated
    assert info.tensor_count == 2
    assert info.data_end == path.stat().st_size
    assert kv_cache_bytes(info, 100) == 2 * 2 * (32 + 32) * 2 * 100


def test_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b'{"__metadata__": {}}' + b"\0" * 100)
    with pytest.raises(ModelFileError) as err:
        read_gguf_info(path)
    assert str(path) in str(err.value) and "not a GGUF" in str(err.value)


@pytest.mark.parametrize("version", [1, 4, 99])
def test_unsupported_version(tmp_path: Path, version: int) -> None:
    data = bytearray(make_gguf(4096))
    data[4:8] = struct.pack("<I", version)
    path = tmp_path / "v.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as err:
        read_gguf_info(path)
    assert f"version {version}" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("cut", [0, 3, 10, 30, 200])
def test_truncated_header(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(make_gguf(4096)[:cut])
    with pytest.raises(ModelFileError) as err:
        read_gguf_info(path)
    message = str(err.value)
    assert str(path) in message
    assert "truncated" in message or "not a GGUF" in message


def test_truncated_tensor_data(tmp_path: Path, smollm2_path: Path) -> None:
    path = tmp_path / "half.gguf"
    size = smollm2_path.stat().st_size
    with open(smollm2_path, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
        dst.truncate(size // 2)
    with pytest.raises(ModelFileError) as err:
        read_gguf_info(path)
    assert "truncated" in str(err.value)
    assert f"need {size} bytes" in str(err.value)


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        read_gguf_info(tmp_path / "nope.gguf")
    with pytest.raises(ModelFileError, match="folder"):
        read_gguf_info(tmp_path)


def test_huge_sparse_file_reads_only_the_header(tmp_path: Path) -> None:
    """A 20 GB (sparse) model: only the header is read, so this is instant."""
    n_floats = 5_000_000_000
    header = gguf_header(n_floats, architecture="qwen3moe", name="Big")
    path = tmp_path / "big.gguf"
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + n_floats * 4)
    info = read_gguf_info(path)
    assert info.architecture == "qwen3moe"
    assert info.data_end == len(header) + n_floats * 4
    os.truncate(path, info.data_end - 1)
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf_info(path)


def test_reads_one_metadata_array_in_full(smollm2_path: Path, tmp_path: Path) -> None:
    """The declared token types (the completion filters' "is it special?" needs them)."""
    types = read_metadata_array(smollm2_path, "tokenizer.ggml.token_type")
    assert types is not None and len(types) == 49152
    assert set(types) == {1, 3} and types.count(3) == 17  # NORMAL and 17 CONTROL tokens
    tokens = read_metadata_array(smollm2_path, "tokenizer.ggml.tokens")
    assert tokens is not None and tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert read_metadata_array(smollm2_path, "general.architecture") is None  # not an array
    assert read_metadata_array(smollm2_path, "no.such.key") is None
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_bytes(b"# just some text, not a model\n" * 4)
    with pytest.raises(ModelFileError, match="not a GGUF"):
        read_metadata_array(not_gguf, "tokenizer.ggml.token_type")
    cut = tmp_path / "cut.gguf"
    with open(smollm2_path, "rb") as src:
        cut.write_bytes(src.read(200_000))  # ends inside the token list
    with pytest.raises(ModelFileError, match="truncated"):
        read_metadata_array(cut, "tokenizer.ggml.token_type")
