"""`hanlin remote add|list|rm`: the OpenAI-compatible servers Hanlin may use (`[[remote]]`).

Why a command of its own: a team's vLLM box, a llama-server on another machine, an
Ollama or another `hanlin serve` are added once, by name, and then used everywhere —
`hanlin chat NAME/MODEL`, the window's model picker, the editor (`hanlin.endpoint`).

Keys: `--key-env VAR` stores the *name* of an environment variable, read each time a
request is made, so no secret lands in settings.toml or in the shell's history. There
is deliberately no `--api-key`: a key typed on a command line is saved by the shell.
Storing the key itself in settings.toml (plain text) is possible from the window's
Remote servers dialog, which asks for that choice explicitly.

`add` saves first and then tries the server (a laptop may add the office server from
home); what it finds — the models, or why it could not reach it — is printed either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from hanlin.engine.core.errors import SettingsError, UnknownModelError
from hanlin.engine.core.settings import RemoteEndpoint, load_settings, update_settings
from hanlin.engine.models.catalog import did_you_mean
from hanlin.engine.remote.endpoint import check_env_name, check_name, normalize_url

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    action = args.remote_command
    if action == "add":
        return _add(args.name, args.url, args.key_env)
    if action == "list":
        return _list(as_json=bool(args.json), check=not args.no_check)
    if action == "rm":
        return _rm(args.name)
    raise AssertionError(f"unhandled remote action {action}")


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _add(name: str, url: str, key_env: str | None) -> int:
    check_name(name)
    url = normalize_url(url)
    if key_env is not None:
        check_env_name(key_env)

    def add(current: list[RemoteEndpoint]) -> list[RemoteEndpoint]:
        if any(r.name == name for r in current):
            raise SettingsError(
                f"A remote server is already named {name!r}",
                f"remove it first (`hanlin remote rm {name}`) or choose another name",
            )
        return [*current, RemoteEndpoint(name=name, url=url, key_env=key_env)]

    update_settings(remote=add)
    print(f"Added {name}: {url}" + (f" (key from ${key_env})" if key_env else ""))
    if key_env and not os.environ.get(key_env):
        _err(f"note: ${key_env} is not set in this shell; export it before using {name}")
    listing = _listings([name])[0]
    if listing.error is not None:
        _err(f"warning: {listing.error} (saved anyway)")
    elif not listing.models:
        _err(f"warning: {name} answers but serves no models yet")
    else:
        ids = [m.id for m in listing.models]
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        print(f"{len(ids)} model{'s' if len(ids) != 1 else ''}: {shown}")
        print(f"Chat with it: `hanlin chat {name}/{ids[0]}`")
    return 0


def _listings(names: list[str] | None = None) -> list[Any]:
    from hanlin.engine.remote.listing import list_remote_models

    remotes = load_settings().settings.remote
    if names is not None:
        remotes = [r for r in remotes if r.name in names]
    return list_remote_models(remotes)


def _key_text(remote: RemoteEndpoint) -> str:
    if remote.key_env:
        state = "set" if os.environ.get(remote.key_env) else "not set"
        return f"${remote.key_env} ({state})"
    if remote.api_key:
        return "stored in settings"
    return "none"


def _list(*, as_json: bool, check: bool) -> int:
    loaded = load_settings()
    if loaded.problem:
        raise SettingsError(loaded.problem)
    remotes = loaded.settings.remote
    listings = {x.name: x for x in _listings()} if check and remotes else {}
    if as_json:
        out = []
        for r in remotes:
            listing = listings.get(r.name)
            out.append(
                {
                    "name": r.name,
                    "url": r.url,
                    "key_env": r.key_env,
                    "key_set": bool(r.key_env and os.environ.get(r.key_env)),
                    "key_stored": bool(r.api_key),
                    "reachable": None if listing is None else listing.error is None,
                    "models": [m.id for m in listing.models] if listing else None,
                    "error": str(listing.error) if listing and listing.error else None,
                    "latency_ms": round(listing.seconds * 1000, 1)
                    if listing and listing.seconds is not None
                    else None,
                }
            )
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not remotes:
        print("No remote servers. Add one: `hanlin remote add NAME URL [--key-env VAR]`")
        return 0
    name_w = max(4, *(len(r.name) for r in remotes))
    url_w = max(3, *(len(r.url) for r in remotes))
    print(f"{'NAME':<{name_w}}  {'URL':<{url_w}}  {'KEY':<22}  STATUS")
    for r in remotes:
        listing = listings.get(r.name)
        if listing is None:
            status = "-"
        elif listing.error is not None:
            status = f"unreachable: {listing.error.message}"
        else:
            n = len(listing.models)
            ms = f", {listing.seconds * 1000:.0f} ms" if listing.seconds is not None else ""
            status = f"ok, {n} model{'s' if n != 1 else ''}{ms}"
        print(f"{r.name:<{name_w}}  {r.url:<{url_w}}  {_key_text(r):<22}  {status}")
        if listing is not None:
            for m in listing.models:
                print(f"  {r.name}/{m.id}")
    return 0


def _rm(name: str) -> int:
    settings = load_settings().settings
    if settings.remote_named(name) is None:
        raise UnknownModelError(
            f"No remote server is named {name!r}",
            did_you_mean(
                name,
                [r.name for r in settings.remote],
                "`hanlin remote list` shows the configured ones",
            ),
        )
    update_settings(remote=lambda current: [r for r in current if r.name != name])
    print(f"Removed {name}")
    for key in ("chat_model", "completion_model"):
        value = getattr(settings, key) or ""
        if value.startswith(name + "/"):
            _err(
                f"note: `{key}` is still {value!r}; choose another with "
                f"`hanlin models use ID --for {key.split('_')[0]}`"
            )
    return 0


# --------------------------------------------------------------------------- models list


def remote_rows() -> tuple[list[dict[str, Any]], list[str]]:
    """`hanlin models list` rows for the models of every configured remote, marked remote,
    and one problem line per server that could not be listed (the listing goes on)."""
    from hanlin.engine.models.families import GENERIC_FAMILY
    from hanlin.engine.remote.endpoint import guess_remote_family

    remotes = load_settings().settings.remote
    if not remotes:
        return [], []
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for listing in _listings():
        if listing.error is not None:
            problems.append(f"remote {listing.name}: {listing.error}")
            continue
        for model in listing.models:
            family = guess_remote_family(model.id)
            out.append(
                {
                    "id": f"{listing.name}/{model.id}",
                    "name": model.id,
                    "family": None if family == GENERIC_FAMILY else family,
                    "roles": ["chat", "completion"],
                    "installed": False,
                    "path": None,
                    "size_bytes": None,
                    "status": "remote",
                    "percent": None,
                    "bytes_done": None,
                    "parameters": None,
                    "quantization": None,
                    "publisher": model.owned_by,
                    "repo": None,
                    "file": None,
                    "source": "remote",
                    "context_length": model.context_length,
                    "license": None,
                    "description": None,
                    "fit": None,
                    "remote": listing.name,
                    "url": listing.url,
                }
            )
    return out, problems


def print_remote_rows(rows: list[dict[str, Any]], width: int = 36) -> None:
    """The remote section of `hanlin models list`'s table (same columns, status `remote`)."""
    server = None
    for row in rows:
        if row["remote"] != server:
            server = row["remote"]
            print(f"— remote: {server} ({row['url']})")
        # never shortened: the id is what `hanlin chat` takes
        print(f"{row['id']:<{width}} {'-':>7} {'':<7} {'both':<8} {'':<6} remote")


def use_remote(ref: str, role: str) -> bool:
    """`hanlin models use NAME/MODEL --for chat|completion`: choose a remote model.

    False when `ref` is not a remote model (the local store resolves it). The server is
    not asked: choosing works while it is down, and using it then says so.
    """
    from hanlin.engine.remote.endpoint import split_remote_ref

    target = split_remote_ref(ref, load_settings().settings)
    if target is None:
        return False
    key = "chat_model" if role == "chat" else "completion_model"
    update_settings(**{key: target.ref})
    print(f"{role.capitalize()} model set to {target.ref} (on {target.endpoint.label})")
    return True
