"""Write tiny, loadable GGUF models whose vocabularies carry real FIM special tokens.

No FIM-capable model can be downloaded in the test environment, so the FIM
paths (template detection, prompt assembly with special ids, stopping on
special tokens) are exercised on generated models: a `qwen2` (or `llama`)
architecture with a byte-level BPE vocabulary — the 256 GPT-2 byte symbols, a
few merges, and the family's special tokens as CONTROL tokens — and random
weights. llama.cpp loads and runs them like any other model; what they generate
is noise, which is all a test of the *plumbing* needs.

    python -m tests.support.tiny_fim_gguf out.gguf [--family deepseek-coder]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FAMILIES", "TinyFamily", "byte_symbols", "write_tiny_fim_gguf"]

# llama.cpp token types (gguf.TokenType): NORMAL=1, CONTROL=3
_NORMAL = 1
_CONTROL = 3


@dataclass(frozen=True)
class TinyFamily:
    """What distinguishes one generated model family: architecture, pre-tokenizer, specials."""

    arch: str
    pre: str
    specials: tuple[str, ...]
    eos: str
    bos: str | None
    add_bos: bool
    fim: tuple[str, str, str]  # prefix, suffix, middle texts
    pad: str | None = None
    repo: str | None = None
    sep: str | None = None


FAMILIES: dict[str, TinyFamily] = {
    "qwen2.5-coder": TinyFamily(
        arch="qwen2",
        pre="qwen2",
        specials=(
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|fim_prefix|>",
            "<|fim_middle|>",
            "<|fim_suffix|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
        ),
        eos="<|endoftext|>",
        bos=None,
        add_bos=False,
        fim=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
        pad="<|fim_pad|>",
        repo="<|repo_name|>",
        sep="<|file_sep|>",
    ),
    "deepseek-coder": TinyFamily(
        arch="llama",
        pre="deepseek-coder",
        specials=(
            "<｜begin▁of▁sentence｜>",
            "<｜end▁of▁sentence｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁begin｜>",
            "<｜fim▁end｜>",
            "<|EOT|>",
        ),
        eos="<｜end▁of▁sentence｜>",
        bos="<｜begin▁of▁sentence｜>",
        add_bos=True,
        fim=("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    ),
    # CodeGeeX4-ALL-9B's GLM-4 vocabulary: its chat markers and <|code_*|> FIM tokens
    # (llama.cpp's `chatglm` layout differs; the tiny model uses llama's, the vocabulary
    # and GLM's `chatglm-bpe` pre-tokenizer are what FIM detection and prompts need)
    "codegeex4": TinyFamily(
        arch="llama",
        pre="chatglm-bpe",
        specials=(
            "<|endoftext|>",
            "[MASK]",
            "[gMASK]",
            "[sMASK]",
            "<sop>",
            "<eop>",
            "<|system|>",
            "<|user|>",
            "<|assistant|>",
            "<|observation|>",
            "<|code_prefix|>",
            "<|code_middle|>",
            "<|code_suffix|>",
        ),
        eos="<|endoftext|>",
        bos=None,
        add_bos=False,
        fim=("<|code_prefix|>", "<|code_suffix|>", "<|code_middle|>"),
    ),
}

# A few merges so the vocabulary is a real BPE one (left, right) -> left+right.
_MERGES: tuple[tuple[str, str], ...] = (
    ("Ġ", "Ġ"),
    ("ĠĠ", "ĠĠ"),
    ("d", "e"),
    ("de", "f"),
    ("Ġ", "r"),
    ("Ġr", "e"),
    ("t", "u"),
    ("Ġre", "tu"),
    ("r", "n"),
    ("Ġretu", "rn"),
    ("s", "e"),
    ("l", "f"),
    ("se", "lf"),
    ("Ġ", "("),
    ("(", ")"),
    ("Ċ", "Ċ"),
)


def byte_symbols() -> list[str]:
    """GPT-2's byte-to-unicode table: the 256 printable symbols standing for bytes 0..255."""
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(0xA1, 0xAC + 1))
        + list(range(0xAE, 0xFF + 1))
    )
    codes = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            codes.append(256 + n)
            n += 1
    table = dict(zip(keep, codes, strict=True))
    return [chr(table[b]) for b in range(256)]


def _vocabulary(
    family: TinyFamily, extra_normal: tuple[str, ...] = ()
) -> tuple[list[str], list[int], list[str]]:
    tokens = byte_symbols()
    merges: list[str] = []
    have = set(tokens)
    for left, right in _MERGES:
        if left in have and right in have and left + right not in have:
            tokens.append(left + right)
            have.add(left + right)
            merges.append(f"{left} {right}")
    # "ĊĠĠĠ" must exist before its merge; add the chain Ċ+Ġ, ĊĠ+Ġ, ĊĠĠ+Ġ
    for left, right in (("Ċ", "Ġ"), ("ĊĠ", "Ġ"), ("ĊĠĠ", "Ġ"), ("ĊĠĠĠ", "Ġ")):
        if left in have and right in have and left + right not in have:
            tokens.append(left + right)
            have.add(left + right)
            merges.append(f"{left} {right}")
    tokens += [t for t in extra_normal if t not in have]
    types = [_NORMAL] * len(tokens)
    for special in family.specials:
        tokens.append(special)
        types.append(_CONTROL)
    return tokens, types, merges


def write_tiny_fim_gguf(
    path: Path,
    family: str = "qwen2.5-coder",
    *,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 128,
    n_ctx: int = 4096,
    seed: int = 1234,
    special_logit_bias: float = -4.0,
    eager_specials: bool = False,
    extra_normal_tokens: tuple[str, ...] = (),
    chat_template: str | None = None,
    declare_fim: bool = True,
) -> Path:
    """Write a tiny random-weight model of `family` to `path` (overwritten) and return it.

    `special_logit_bias` lowers the output weights of special tokens so that greedy
    decoding produces ordinary text for a while instead of stopping at once.
    `eager_specials=True` does the opposite: ordinary tokens get all-zero output
    rows and the specials get rows +v and -v, so some special token always has the
    top logit and greedy decoding emits one at once (for "never show specials" tests).
    `extra_normal_tokens` adds ordinary (NORMAL) tokens, e.g. `</s>`, which the real
    Qwen2.5 vocabulary has as an ordinary token (id 128247) and llama.cpp promotes.
    `declare_fim=False` leaves out the `tokenizer.ggml.fim_*` keys, as in GGUFs converted
    before they existed (THUDM's 2024 CodeGeeX4 GGUFs): llama.cpp then finds the FIM
    tokens by their text.
    """
    import gguf

    fam = FAMILIES[family]
    tokens, types, merges = _vocabulary(fam, extra_normal_tokens)
    n_vocab = len(tokens)
    index = {t: i for i, t in enumerate(tokens)}
    rng = np.random.default_rng(seed)
    head_dim = n_embd // n_head

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), fam.arch)
    writer.add_name(f"tiny-{family}-fim-test")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(head_dim)
    writer.add_file_type(0)  # all F32

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(fam.pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(index[fam.eos])
    if fam.bos:
        writer.add_bos_token_id(index[fam.bos])
    writer.add_add_bos_token(fam.add_bos)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    pre, suf, mid = fam.fim
    fim_keys = (
        (gguf.Keys.Tokenizer.FIM_PRE_ID, pre),
        (gguf.Keys.Tokenizer.FIM_SUF_ID, suf),
        (gguf.Keys.Tokenizer.FIM_MID_ID, mid),
        (gguf.Keys.Tokenizer.FIM_PAD_ID, fam.pad),
        (gguf.Keys.Tokenizer.FIM_REP_ID, fam.repo),
        (gguf.Keys.Tokenizer.FIM_SEP_ID, fam.sep),
    )
    for key, text in fim_keys if declare_fim else ():
        if text:
            writer.add_uint32(key, index[text])

    def randn(*shape: int, scale: float = 0.08) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    # numpy shapes are reversed relative to ggml's ne: (rows=out, cols=in)
    writer.add_tensor("token_embd.weight", randn(n_vocab, n_embd, scale=0.5))
    for i in range(n_layer):
        p = f"blk.{i}"
        writer.add_tensor(f"{p}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{p}.attn_q.weight", randn(n_embd, n_embd))
        writer.add_tensor(f"{p}.attn_k.weight", randn(n_head_kv * head_dim, n_embd))
        writer.add_tensor(f"{p}.attn_v.weight", randn(n_head_kv * head_dim, n_embd))
        if fam.arch == "qwen2":
            writer.add_tensor(f"{p}.attn_q.bias", randn(n_embd, scale=0.02))
            writer.add_tensor(f"{p}.attn_k.bias", randn(n_head_kv * head_dim, scale=0.02))
            writer.add_tensor(f"{p}.attn_v.bias", randn(n_head_kv * head_dim, scale=0.02))
        writer.add_tensor(f"{p}.attn_output.weight", randn(n_embd, n_embd))
        writer.add_tensor(f"{p}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"{p}.ffn_gate.weight", randn(n_ff, n_embd))
        writer.add_tensor(f"{p}.ffn_up.weight", randn(n_ff, n_embd))
        writer.add_tensor(f"{p}.ffn_down.weight", randn(n_embd, n_ff))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    output = randn(n_vocab, n_embd, scale=0.5)
    if eager_specials:
        output[:] = 0.0
        v = randn(n_embd, scale=1.0)
        for k, special in enumerate(fam.specials):
            output[index[special]] = v if k % 2 == 0 else -v
    else:
        # Specials' head rows point away from typical hidden states: rarely chosen.
        for special in fam.specials:
            output[index[special]] = special_logit_bias / np.sqrt(n_embd)
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write a tiny FIM-capable GGUF for tests")
    parser.add_argument("out", type=Path)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="qwen2.5-coder")
    args = parser.parse_args(argv)
    print(write_tiny_fim_gguf(args.out, args.family))
    return 0


if __name__ == "__main__":
    sys.exit(main())
