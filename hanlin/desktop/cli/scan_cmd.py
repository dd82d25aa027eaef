"""`hanlin models scan`: register the GGUF models already on this disk, in place.

Why a module of its own: the scan (engine/store/disk_scan.py) looks in the Hugging Face
cache, Ollama's store, LM Studio's folder and the user's folders; this command prints
where it looked, what it registered (nothing is copied), what was already there, and
which files are broken and why. `--dry-run` only shows; `--add` remembers the folders
given in settings.toml (`scan_folders`) for every later scan and for the Models page.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.units import format_bytes
from hanlin.engine.store.disk_scan import (
    ORIGIN_LABELS,
    FoundModel,
    ScanReport,
    default_locations,
    register_found,
    scan_disk,
)
from hanlin.engine.store.model_store import ModelStore


def run(args: argparse.Namespace) -> int:
    from hanlin.engine.core.settings import load_settings, update_settings

    folders = [Path(f).expanduser() for f in args.folders]
    for folder in folders:
        if not folder.is_dir():
            raise HanlinError(f"{folder} is not a folder", "give a folder that holds .gguf files")
    settings = load_settings().settings
    if args.add and folders:
        wanted = [str(f.resolve()) for f in folders]
        settings = update_settings(
            scan_folders=lambda current: [*current, *(w for w in wanted if w not in current)]
        )
        print(f"Added to scan_folders: {', '.join(wanted)}", file=sys.stderr)
        folders = []  # now in the settings
    store = ModelStore()
    report = scan_disk(default_locations(settings, folders), store=store)
    registered, failed = ([], []) if args.dry_run else register_found(store, report.found)
    report.problems.extend(failed)
    done = {m.id for m in registered}
    if args.json:
        payload = report.to_json()
        for item in payload["found"]:
            item["registered"] = item["id"] in done
        payload["dry_run"] = bool(args.dry_run)
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    _print(report, done, dry_run=bool(args.dry_run))
    return 0


def _home(path: Path) -> str:
    text = str(path)
    home = str(Path.home())
    return "~" + text[len(home) :] if text == home or text.startswith(home + os.sep) else text


def _print(report: ScanReport, done: set[str], *, dry_run: bool) -> None:
    print("Looked in:")
    for loc in report.locations:
        if not loc.exists and not loc.explicit and loc.origin != "hf-cache":
            continue  # the other usual places, quietly, when absent
        state = "" if loc.exists else "  (not found)"
        print(f"  {loc.label:<19} {_home(loc.path)}{state}")
    new = [f for f in report.found if f.model_id in done or (dry_run and f.is_new)]
    if new:
        verb = "Would register" if dry_run else "Registered"
        print(f"\n{verb} {len(new)} model{'s' if len(new) != 1 else ''} in place (nothing copied):")
        _rows(new)
    already = [f for f in report.found if f.registered_as is not None]
    if already:
        print(f"\nAlready registered: {len(already)}")
        _rows(already)
    twins = [f for f in report.found if f.registered_as is None and f.duplicate_of is not None]
    if twins:
        print(f"\nSkipped {len(twins)}: Hanlin already has the same model")
        for f in twins:
            print(f"  {f.name} = {f.duplicate_of}")
    if report.problems:
        print(f"\nNot usable ({len(report.problems)}), not listed:")
        for p in report.problems:
            hint = f" — {p.hint}" if p.hint else ""
            print(f"  {p.message}{hint}")
    if not report.found and not report.problems:
        print("\nNo GGUF models found.")
        print("Add a folder that holds .gguf files: `hanlin models scan --add FOLDER`.")
        return
    if new and not dry_run:
        first = new[0].model_id
        print(f"\nChat with one: `hanlin chat {first}`. Removing one from Hanlin deletes nothing.")
        print("Wrong family? `hanlin models import PATH --id ID --family FAMILY` corrects it.")


def _rows(found: list[FoundModel]) -> None:
    width = min(40, max(len(f.model_id) for f in found))
    for f in found:
        where = ORIGIN_LABELS.get(f.origin, f.origin)
        parts = f" ({f.shard_count} parts)" if f.shard_count > 1 else ""
        print(
            f"  {f.model_id:<{width}}  {format_bytes(f.size_bytes):>9}  {f.family:<14}"
            f" {where}: {f.name}{parts}"
        )


__all__ = ["run"]
