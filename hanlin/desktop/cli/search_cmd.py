"""`hanlin models search` and `hanlin models new`: GGUF models on the Hub, ready to pull.

Why a module of its own: these commands only talk to the Hub (engine/store/hub_search.py)
and print what they found — each repo with its GGUF files grouped by quantization, the
size, whether it fits this machine, and the exact `hanlin models pull …` that gets it.
Results go to stdout (`--json` for scripts), notes and warnings to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.units import format_bytes
from hanlin.engine.store.hub_search import (
    HubFileGroup,
    HubRepo,
    files_for_repos,
    new_from_labs,
    search_hub,
)
from hanlin.engine.store.model_store import ModelStore

FIT_WORDS = {"fits": "fits", "tight": "tight", "wont_fit": "won't fit"}


def run(args: argparse.Namespace) -> int:
    from huggingface_hub.utils import logging as hf_logging

    # huggingface_hub logs each retry of an unreachable Hub to stderr; the CLI says it once
    hf_logging.set_verbosity_error()
    store = ModelStore()
    as_json = bool(getattr(args, "json", False))
    if args.models_command == "search":
        _note(f"Searching the Hub for `{args.query}`…")
        repos = search_hub(args.query, author=args.author, sort=args.sort, limit=args.limit)
        if not repos:
            if as_json:
                print("[]")
                return 0
            who = f" from `{args.author}`" if args.author else ""
            print(f"No GGUF repositories on the Hub match `{args.query}`{who}.")
            print("Try fewer words, another spelling, or drop --author.")
            return 0
        return _show(store, repos, as_json=as_json)
    if args.models_command == "new":
        _note("Looking for new GGUF models from the labs…")
        result = new_from_labs(limit=args.limit)
        for name, error in result.failed.items():
            print(f"hanlin: warning: {name}: {error}", file=sys.stderr)
        if not result.repos:
            if as_json:
                print("[]")
                return 0
            print(f"No GGUF repositories from {', '.join(result.publishers)}.")
            print("Set trusted_publishers in settings.toml to follow other publishers.")
            return 0
        return _show(store, result.repos, as_json=as_json)
    raise AssertionError(f"unhandled models action {args.models_command}")


def _note(text: str) -> None:
    if sys.stderr.isatty():
        print(text, file=sys.stderr, flush=True)


def _installed_names(store: ModelStore) -> tuple[set[tuple[str, str]], set[str]]:
    models = store.installed()
    return {(m.repo.lower(), m.file) for m in models if m.repo and m.file}, {m.id for m in models}


def _is_installed(group: HubFileGroup, names: set[tuple[str, str]], ids: set[str]) -> bool:
    return (group.repo.lower(), group.first_file) in names or (
        group.catalog_id is not None and group.catalog_id in ids
    )


def _show(store: ModelStore, repos: list[HubRepo], *, as_json: bool) -> int:
    from hanlin.engine.runtime.hardware import detect_hardware

    files = files_for_repos(repos, hw=detect_hardware(), catalog=store.catalog)
    names, ids = _installed_names(store)
    if as_json:
        out = []
        for repo in repos:
            answer = files.get(repo.repo, [])
            item: dict[str, Any] = repo.to_json()
            if isinstance(answer, HanlinError):
                item["files"] = []
                item["error"] = {"message": answer.message, "hint": answer.hint}
            else:
                item["files"] = [
                    {**g.to_json(), "installed": _is_installed(g, names, ids)} for g in answer
                ]
                item["error"] = None
            out.append(item)
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for repo in repos:
        _print_repo(repo, files.get(repo.repo, []), names, ids)
    print(
        f"{len(repos)} repositor{'y' if len(repos) == 1 else 'ies'}."
        " Get one with the `hanlin models pull …` beside it."
    )
    return 0


def _print_repo(
    repo: HubRepo,
    answer: list[HubFileGroup] | HanlinError,
    names: set[tuple[str, str]],
    ids: set[str],
) -> None:
    facts = []
    if repo.downloads is not None:
        facts.append(f"{_count(repo.downloads)} downloads")
    if repo.last_modified is not None:
        facts.append(f"updated {repo.last_modified.date().isoformat()}")
    facts.append(f"{repo.family} (guess)")
    facts.append(" + ".join(repo.roles))
    print(f"{repo.repo}  ·  {'  ·  '.join(facts)}")
    if repo.gated:
        print(f"    gated: accept the license at {repo.page_url} and set HF_TOKEN to pull")
    if isinstance(answer, HanlinError):
        print(f"    cannot list its files: {answer}")
        print()
        return
    if not answer:
        print("    no GGUF model files (only projectors or other formats)")
        print()
        return
    width = max(len(_label(g)) for g in answer)
    for group in answer:
        size = format_bytes(group.size_bytes, unknown="?")
        if not group.complete:
            note = f"incomplete on the Hub ({group.missing_text})"
            print(f"    {_label(group):<{width}}  {size:>9}  {note}")
            continue
        fit = FIT_WORDS.get(group.fit.level, group.fit.level) if group.fit else ""
        installed = _is_installed(group, names, ids)
        state = "installed" if installed else f"hanlin models pull {group.ref}"
        print(f"    {_label(group):<{width}}  {size:>9}  {fit:<9}  {state}")
    print()


def _label(group: HubFileGroup) -> str:
    return f"{group.label} ({group.shard_count} parts)" if group.sharded else group.label


def _count(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:.1f}{unit}".replace(".0", "")
    return str(n)


__all__ = ["run"]
