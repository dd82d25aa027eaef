"""`hanlin models …`: list, pull, import, rm and use, on top of hanlin.engine.store.model_store.

Why a module of its own: the argument parsing lives in desktop/cli/main.py and
errors are mapped there; this module only turns store calls into output a
person (a table, a progress bar) or a script (`--json`, plain progress lines
when stderr is not a terminal) can read. Progress goes to stderr, results to
stdout, so `hanlin models list --json | jq` stays clean.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from hanlin.engine.core.cancel import Progress
from hanlin.engine.core.errors import HanlinError, ModelFileError
from hanlin.engine.core.units import format_bytes, format_duration, format_rate
from hanlin.engine.models.catalog import CatalogEntry
from hanlin.engine.models.gguf_info import GGUFInfo, read_gguf_info
from hanlin.engine.store.model_store import InstalledModel, ModelStore, PartialDownload
from hanlin.engine.store.shards import display_name, shard_files

FIT_LABELS = {"fits": "fits", "tight": "tight", "wont_fit": "won't"}
ROLE_LABELS = {
    ("chat",): "chat",
    ("completion",): "complete",
    ("chat", "completion"): "both",
    ("completion", "chat"): "both",
}


def run(args: argparse.Namespace) -> int:
    action = args.models_command
    store = ModelStore()
    if action == "list":
        return _list(store, as_json=bool(getattr(args, "json", False)))
    if action == "pull":
        return _pull(store, args.ref)
    if action == "import":
        return _import(store, Path(args.path), args.model_id, args.family)
    if action == "rm":
        return _rm(store, args.model_id)
    if action == "use":
        return _use(store, args.model_id, args.role)
    raise AssertionError(f"unhandled models action {action}")


# --------------------------------------------------------------------------- list


_Fitters = tuple[Callable[..., Any], Callable[..., Any], Any]


def _fit_functions() -> _Fitters:
    """The fit verdict functions and this machine's hardware.

    Imported here, not at the top: the hardware probe loads llama.cpp, which only `list` needs.
    """
    from hanlin.engine.models import fit
    from hanlin.engine.runtime import hardware

    return fit.fit_for_entry, fit.fit_for_file, hardware.detect_hardware()


def _header(model: InstalledModel | None) -> GGUFInfo | None:
    """The installed file's GGUF header, or None when not installed or damaged since.

    A damaged file is still listed (so it can be removed), without what its header would tell.
    """
    if model is None:
        return None
    try:
        return read_gguf_info(model.path)
    except ModelFileError:
        return None


def _fit(
    entry: CatalogEntry | None,
    model: InstalledModel | None,
    info: GGUFInfo | None,
    fitters: _Fitters | None,
) -> dict[str, Any] | None:
    """The verdict from the real file when installed, else from the catalog's numbers."""
    if fitters is None:
        return None
    from hanlin.engine.models.fit import default_n_ctx

    fit_entry, fit_file, hw = fitters
    if model is not None and info is not None:
        verdict = fit_file(info, model.size_bytes, hw, default_n_ctx(info.context_length))
    elif entry is not None:
        verdict = fit_entry(entry, hw)
    else:
        return None
    return asdict(verdict)


def _roles_from_header(info: GGUFInfo | None) -> list[str]:
    """Roles of a model outside the catalog: chat if it has a chat template, completion if FIM."""
    if info is None:
        return ["chat"]
    roles = ["chat"] if info.chat_template else []
    if info.has_fim:
        roles.append("completion")
    return roles or ["chat"]


def rows(store: ModelStore, *, with_fit: bool = True) -> list[dict[str, Any]]:
    """One dict per catalog entry, installed model and partial download (the JSON shape)."""
    installed = {m.id: m for m in store.installed()}
    partials = {p.id: p for p in store.partials()}
    fitters = _fit_functions() if with_fit else None
    out: list[dict[str, Any]] = []
    for entry in store.catalog:
        out.append(
            _row(
                entry.id,
                entry,
                installed.pop(entry.id, None),
                partials.pop(entry.id, None),
                fitters,
            )
        )
    for model_id, model in sorted(installed.items()):
        out.append(_row(model_id, None, model, partials.pop(model_id, None), fitters))
    for model_id, partial in sorted(partials.items()):
        out.append(_row(model_id, None, None, partial, fitters))
    return out


def _row(
    model_id: str,
    entry: CatalogEntry | None,
    model: InstalledModel | None,
    partial: PartialDownload | None,
    fitters: Any,
) -> dict[str, Any]:
    status = "installed" if model else "partial" if partial else "available"
    where = model or partial
    info = _header(model)
    shards = (
        len(model.files)
        if model
        else partial.shards
        if partial
        else len(shard_files(entry.file))
        if entry
        else 1
    )
    size = (
        model.size_bytes
        if model
        else entry.size_bytes
        if entry and entry.size_bytes
        else (partial.total if partial else None)
    )
    name = (
        entry.name
        if entry
        else (
            Path(display_name(model.file or model.path.name)).stem
            if model
            else Path(display_name(partial.file or partial.part_path.name)).stem
            if partial
            else model_id
        )
    )
    return {
        "id": model_id,
        "name": name,
        "family": entry.family if entry else (model.family if model else None),
        "roles": list(entry.roles) if entry else _roles_from_header(info),
        "installed": model is not None,
        "path": str(model.path) if model else None,
        "size_bytes": size,
        "status": status,
        "percent": round(partial.percent, 1) if partial and partial.percent is not None else None,
        "bytes_done": partial.bytes_done if partial else None,
        "parameters": entry.parameters if entry else None,
        "quantization": entry.quantization if entry else None,
        "publisher": entry.publisher if entry else None,
        "repo": entry.repo if entry else (where.repo if where else None),
        "file": entry.file if entry else (where.file if where else None),
        # a split model: how many files it is (each `NAME-0000i-of-0000N.gguf`), 1 otherwise
        "shards": shards,
        "source": model.source if model else ("catalog" if entry else "hub"),
        # where `hanlin models scan` found it: hf-cache | ollama | lmstudio | folder
        "origin": getattr(model, "origin", None) if model else None,
        "context_length": entry.context_length if entry else None,
        "license": entry.license if entry else None,
        "description": entry.description if entry else None,
        "fit": _fit(entry, model, info, fitters),
    }


def _estimated_size(row: dict[str, Any]) -> str:
    """The size column: the real or pinned size, else `~` and an estimate, else `?`."""
    if row["size_bytes"] is not None:
        return format_bytes(row["size_bytes"])
    from hanlin.engine.models.fit import estimate_file_size

    est = estimate_file_size(row["parameters"] or "", row["quantization"] or "")
    return "~" + format_bytes(est) if est else "?"


def _list(store: ModelStore, *, as_json: bool) -> int:
    data = rows(store)
    from hanlin.desktop.cli.remote_cmd import print_remote_rows, remote_rows

    remote, problems = remote_rows()  # the models of `hanlin remote add` servers
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if as_json:
        json.dump(data + remote, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = 36
    header = f"{'ID':<{width}} {'SIZE':>7} {'QUANT':<7} {'ROLE':<8} {'FIT':<6} STATUS"
    print(header)
    family = object()
    for row in data:
        if row["family"] != family:
            family = row["family"]
            print(f"— {family or 'other'}")
        status = row["status"]
        if status == "partial":
            status = f"partial {row['percent']:.0f}%" if row["percent"] is not None else "partial"
        elif status == "available":
            status = "-"
        elif row.get("origin"):
            status = f"installed ({row['origin']})"
        fit = FIT_LABELS.get((row["fit"] or {}).get("level", ""), "")
        role = ROLE_LABELS.get(tuple(row["roles"]), ",".join(row["roles"]))
        ident = row["id"] if len(row["id"]) <= width else row["id"][: width - 1] + "…"
        print(
            f"{ident:<{width}} {_estimated_size(row):>7} {row['quantization'] or '':<7}"
            f" {role:<8} {fit:<6} {status}"
        )
    print_remote_rows(remote, width)
    installed = sum(1 for r in data if r["installed"])
    print(
        f"\n{installed} installed. Download one with `hanlin models pull ID`;"
        " any GGUF on the Hub: `hanlin models pull hf.co/OWNER/REPO/FILE.gguf`."
    )
    return 0


# --------------------------------------------------------------------------- pull


def _eta(seconds: float | None) -> str:
    return format_duration(seconds, unknown="--:--")


#: what the store's progress says while a split model's shard arrives: "(shard 2 of 3)"
_SHARD_DETAIL = re.compile(r"\(shard (\d+) of (\d+)\)")


class ProgressPrinter:
    """A redrawn bar on a terminal; a plain line every few seconds otherwise."""

    def __init__(
        self, stream: TextIO, label: str, *, tty: bool | None = None, line_interval: float = 5.0
    ) -> None:
        self.stream = stream
        self.label = label
        self.tty = stream.isatty() if tty is None else tty
        self.line_interval = line_interval
        self._last_line = 0.0
        self._drawn = False
        self.last: Progress | None = None

    def __call__(self, p: Progress) -> None:
        if self.last is None and p.stage == "download":
            # first report: the ref resolved and the Hub answered
            self.stream.write(f"Pulling {self.label}\n")
        self.last = p if p.stage == "download" else self.last
        if p.stage == "verify":
            self._finish_bar()
            if p.done == 0:
                self.stream.write(f"Verifying {self.label} (size, sha256, GGUF header)…\n")
                self.stream.flush()
            return
        done, total = p.done, p.total
        pct = f"{100 * done / total:5.1f}%" if total else "   ?  "
        amount = f"{format_bytes(done)}/{format_bytes(total)}" if total else format_bytes(done)
        rate = format_rate(p.rate) or "-- /s"
        # a split model: one bar over all shards, and which shard is arriving now
        shard = _SHARD_DETAIL.search(p.detail or "")
        if self.tty:
            cols = shutil.get_terminal_size((80, 20)).columns
            text = f" {pct}  {amount}  {rate}  ETA {_eta(p.eta)}"
            if shard:
                text += f"  shard {shard.group(1)}/{shard.group(2)}"
            bar_w = max(10, min(40, cols - len(text) - 4))
            filled = int(bar_w * (done / total)) if total else 0
            bar = "█" * filled + "░" * (bar_w - filled)
            self.stream.write(f"\r[{bar}]{text}"[: cols - 1])
            self._drawn = True
        else:
            now = time.monotonic()
            finished = total is not None and done >= total
            if now - self._last_line < self.line_interval and not finished and done:
                return
            self._last_line = now
            where = f", shard {shard.group(1)} of {shard.group(2)}" if shard else ""
            self.stream.write(
                f"{self.label}: {pct.strip()} ({amount}) at {rate}, ETA {_eta(p.eta)}{where}\n"
            )
        self.stream.flush()

    def _finish_bar(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False

    def close(self) -> None:
        self._finish_bar()
        self.stream.flush()


def _pull(store: ModelStore, ref: str) -> int:
    label = ref
    existing = store.resolve(ref) if _is_installed(store, ref) else None
    if existing is not None:
        print(f"{existing.id} is already installed: {existing.path}")
        return 0
    printer = ProgressPrinter(sys.stderr, label)
    try:
        model = store.pull(ref, on_progress=printer)
    except KeyboardInterrupt:
        printer.close()
        kept = ""
        partial = store.find_partial(ref)
        if partial is not None:
            total = f" of {format_bytes(partial.total)}" if partial.total else ""
            where = (
                f"{partial.part_path.parent} ({partial.shards} shards)"
                if partial.shards > 1
                else str(partial.part_path)
            )
            kept = f" {format_bytes(partial.bytes_done)}{total} kept in {where}."
        print(
            f"Interrupted.{kept} Run `hanlin models pull {ref}` again to resume.", file=sys.stderr
        )
        return 130
    finally:
        printer.close()
    result = store.last_download
    if result is not None and result.resumed_from:
        print(f"Resumed from {format_bytes(result.resumed_from)}.", file=sys.stderr)
    shards = f", {len(model.files)} shards" if len(model.files) > 1 else ""
    print(f"Installed {model.id} ({format_bytes(model.size_bytes)}{shards}): {model.path}")
    return 0


def _is_installed(store: ModelStore, ref: str) -> bool:
    try:
        model = store.resolve(ref)
    except HanlinError:  # not installed, unknown, a bad ref: the pull says which
        return False
    if model.source == "import" and store.get(model.id) is None:
        return False
    return store.is_complete(model)  # a split model missing a shard: the pull repairs it


# --------------------------------------------------------------------------- import / rm / use


def _import(store: ModelStore, path: Path, model_id: str | None, family: str | None) -> int:
    model = store.import_file(path, model_id=model_id, family=family)
    print(
        f"Imported {model.id} (family {model.family}, {format_bytes(model.size_bytes)})"
        f" from {model.path}"
    )
    print(f"Chat with it: `hanlin chat {model.id}`")
    return 0


def _rm(store: ModelStore, model_id: str) -> int:
    model = store.get(model_id)
    partial = store.partial(model_id)
    store.remove(model_id)
    if model is not None:
        shards = f"{len(model.files)} shards, " if len(model.files) > 1 else ""
        if store.owns_path(model.path):
            print(f"Removed {model_id} ({shards}{format_bytes(model.size_bytes)} freed)")
        else:
            where = (
                f"files stay where they were (first shard: {model.path})"
                if shards
                else f"file stays where it was: {model.path}"
            )
            print(f"Unregistered {model_id}; the {where}")
    if partial is not None:
        shards = f"{partial.shards} shards, " if partial.shards > 1 else ""
        print(
            f"Removed the partial download of {model_id}"
            f" ({shards}{format_bytes(partial.bytes_done)})"
        )
    return 0


def _use(store: ModelStore, model_id: str, role: str) -> int:
    from hanlin.desktop.cli.remote_cmd import use_remote
    from hanlin.engine.core.settings import update_settings

    if use_remote(model_id, role):  # NAME/MODEL of a `hanlin remote add` server
        return 0
    model = store.resolve(model_id)  # ModelNotInstalledError says how to pull it
    value = model.id if store.get(model.id) is not None else str(model.path)
    entry = model.catalog_entry or store.catalog.find(model.id)
    if entry is not None and role not in entry.roles:
        other = "completion" if role == "chat" else "chat"
        print(
            f"Note: {entry.id} is meant for {other}; it may do poorly at {role}.", file=sys.stderr
        )
    key = "chat_model" if role == "chat" else "completion_model"
    update_settings(**{key: value})
    print(f"{role.capitalize()} model set to {value}")
    return 0


__all__ = ["ProgressPrinter", "rows", "run"]
