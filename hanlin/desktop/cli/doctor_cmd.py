"""`hanlin doctor [--json]`: what this machine can run, and where Hanlin keeps things.

Shows the CPU, RAM, the GPU backend llama.cpp was built with (and VRAM where
readable), the llama.cpp build, Hanlin's folders, any problem with the
settings file, and for every catalog model whether it fits (with the reason).

It also compares the build with the hardware: the GPUs the machine has (whatever
this build can use) and, when a GPU is there that this build cannot drive (an
NVIDIA card seen by `nvidia-smi` with a CPU-only build, say), the one command that
gets the matching build (engine/runtime/builds.py). In the frozen bundle it says
which bundle this is.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from typing import Any

from hanlin.engine.core import paths
from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.settings import load_settings
from hanlin.engine.core.units import format_bytes
from hanlin.engine.models.fit import DEFAULT_N_CTX, fit_for_entry
from hanlin.engine.runtime.builds import advise, bundle_info
from hanlin.engine.runtime.hardware import HardwareInfo, detect_gpu_hardware, detect_hardware

__all__ = ["collect", "run"]

_NOT_CHOSEN = "(not chosen: `hanlin models use ID --for {}`)"
_LEVEL_TEXT = {"fits": "fits", "tight": "tight", "wont_fit": "won't fit"}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _installed_ids() -> tuple[set[str], str | None]:
    try:
        from hanlin.engine.store.model_store import ModelStore

        return {m.id for m in ModelStore().installed()}, None
    except HanlinError as exc:
        return set(), str(exc)


def collect() -> dict[str, Any]:
    """Everything the doctor reports, as plain data (the --json output)."""
    from hanlin.engine.models.catalog import load_catalog

    hw = detect_hardware(refresh=True)
    gpus = detect_gpu_hardware()
    advice = advise(hw, gpus)
    loaded = load_settings()
    installed, store_problem = _installed_ids()
    problems = [p for p in (loaded.problem, store_problem, *loaded.warnings) if p]
    models: list[dict[str, Any]] = []
    try:
        catalog = load_catalog()
    except HanlinError as exc:
        problems.append(str(exc))
        catalog = None
    for entry in catalog.entries if catalog else []:
        verdict = fit_for_entry(entry, hw)
        models.append(
            {
                "id": entry.id,
                "name": entry.name,
                "family": entry.family,
                "roles": list(entry.roles),
                "fit": verdict.level,
                "need_bytes": verdict.need_bytes,
                "estimated": verdict.estimated,
                "reason": verdict.reason,
                "installed": entry.id in installed,
            }
        )
    return {
        "hardware": hw.to_dict(),
        "versions": {
            "hanlin": _version("hanlin") or "0.1.0 (not installed)",
            "llama_cpp_python": _version("llama_cpp_python"),
            "python": sys.version.split()[0],
        },
        "paths": {
            "config": str(paths.config_dir()),
            "data": str(paths.data_dir()),
            "models": str(paths.models_dir()),
            "logs": str(paths.log_dir()),
        },
        "settings": {
            "chat_model": loaded.settings.chat_model,
            "completion_model": loaded.settings.completion_model,
        },
        "backend": {
            "build": hw.backend,
            "gpus": [g.to_dict() for g in gpus],
            "usable": list(dict.fromkeys(b for g in gpus for b in g.backends)),
            "advice": advice.to_dict() if advice else None,
        },
        "bundle": bundle_info(),
        "fit_context_tokens": DEFAULT_N_CTX,
        "models": models,
        "problems": problems,
    }


def _gpu_line(hw: HardwareInfo) -> str:
    if hw.backend == "cpu":
        if hw.gpu_offload_supported:
            return "llama.cpp can offload, but no GPU backend was recognised; running on the CPU"
        return "none: this llama.cpp build is CPU-only"
    name = hw.gpu_name or "GPU"
    if hw.unified_memory:
        return f"{hw.backend.upper()}: {name} (unified memory, shares the RAM)"
    if hw.vram_total:
        free, total = format_bytes(hw.vram_free), format_bytes(hw.vram_total)
        return f"{hw.backend.upper()}: {name}, {free} free of {total}"
    return f"{hw.backend.upper()}: {name} (memory size not readable)"


def _backend_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The GPUs seen, and the command for the build that can use them (if this one cannot)."""
    backend = report["backend"]
    rows: list[tuple[str, str]] = []
    advice = backend["advice"]
    for gpu in backend["gpus"]:
        if backend["build"] in gpu["backends"]:
            usable = "this build uses it"
        elif advice is not None and advice["backend"] in gpu["backends"]:
            usable = f"this build cannot use it; a {advice['label']} build can"
        else:
            usable = "this build cannot use it"
        rows.append(("GPU found", f"{gpu['name']} ({gpu['source']}): {usable}"))
    if advice is not None and advice.get("note"):  # the bundle: a download, or a build
        rows.append((f"Get {advice['label']}", advice["note"]))
        rows.append(("", f"or build it from a source checkout: {advice['command']}"))
        rows.append(("", f"(building needs {advice['requires']})"))
    elif advice is not None:
        rows.append((f"Get {advice['label']}", advice["command"]))
        rows.append(("", f"(needs {advice['requires']})"))
    bundle = report.get("bundle")
    if bundle:
        rows.append(
            (
                "Bundle",
                f"Hanlin {bundle.get('hanlin', '?')} {bundle.get('platform', '')}, "
                f"{bundle.get('backend') or 'unknown'} build, in {bundle['path']}",
            )
        )
    return rows


def _print_text(report: dict[str, Any]) -> None:
    hw = HardwareInfo(**report["hardware"])
    v = report["versions"]
    rows = [
        ("CPU", f"{hw.cpu_name} ({hw.physical_cores} physical cores, {hw.logical_cores} threads)"),
        ("RAM", f"{format_bytes(hw.ram_available)} available of {format_bytes(hw.ram_total)}"),
        ("GPU", _gpu_line(hw)),
        ("llama.cpp", f"llama-cpp-python {v['llama_cpp_python']}; {hw.build_info}"),
        ("Models", report["paths"]["models"]),
        ("Settings", report["paths"]["config"]),
        ("Chat model", report["settings"]["chat_model"] or _NOT_CHOSEN.format("chat")),
        ("Completion", report["settings"]["completion_model"] or _NOT_CHOSEN.format("completion")),
    ]
    rows[3:3] = _backend_rows(report)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key + ':' if key else '':<{width + 2}}{value}")
    for problem in report["problems"]:
        print(f"Problem: {problem}")
    models = report["models"]
    if not models:
        return
    print()
    print(f"Catalog models on this machine (context {report['fit_context_tokens']} tokens):")
    id_w = max(len(m["id"]) for m in models)
    for m in models:
        mark = "*" if m["installed"] else " "
        need = f"{format_bytes(m['need_bytes'])}{' est.' if m['estimated'] else ''}"
        line = f" {mark} {m['id']:<{id_w}}  {_LEVEL_TEXT[m['fit']]:<9}  {need:>13}"
        if m["fit"] != "fits":
            line += f"  {m['reason'].split('; ', 1)[-1]}"
        print(line)
    if any(m["installed"] for m in models):
        print(" * installed")


def run(args: argparse.Namespace) -> int:
    report = collect()
    if getattr(args, "json", False):
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(report)
    return 0
