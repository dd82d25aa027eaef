"""Which server, which key, which model: `[[remote]]` entries and `NAME/MODEL` references.

Why its own module: the CLI (`hanlin remote …`, `hanlin chat --endpoint`), the window's
model picker and the language server all turn the same inputs into the same thing —
a base URL, an API key read from where the user chose to keep it, and a model id on
that server — and must agree on the spelling of a remote model (`team-gpu/MODEL`,
which is also what `chat_model` in settings.toml holds when a remote model is chosen).

URLs: users paste either the server's root (`http://gpu.lan:8080`) or its OpenAI base
(`http://gpu.lan:8000/v1`, what the OpenAI SDK calls `base_url`). Both work: the OpenAI
routes go under `api_base` (the URL with `/v1` added when missing), llama-server's own
`/infill` under `root` (the URL without it).

Keys: `key_env` names an environment variable read when the request is made (the
preferred way: nothing secret in the settings file); `api_key` is the key itself in
settings.toml, which only the window writes, and only when the user ticks a box
saying so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hanlin.engine.core.errors import HanlinError, UnknownModelError
from hanlin.engine.core.settings import RemoteEndpoint, Settings
from hanlin.engine.models.catalog import did_you_mean
from hanlin.engine.models.families import guess_family

__all__ = [
    "NAME_RE",
    "Endpoint",
    "RemoteTarget",
    "check_name",
    "endpoint_for",
    "endpoint_from_settings",
    "guess_remote_family",
    "normalize_url",
    "split_remote_ref",
]

#: a remote's name: what goes before the slash of `NAME/MODEL`
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: names that would shadow other references (`hf.co/OWNER/REPO/FILE.gguf` pulls from the Hub)
_RESERVED = {"hf.co", "huggingface.co", "localhost"}
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_name(name: str) -> str:
    """A valid remote name, or a HanlinError saying what a name may be."""
    if not NAME_RE.match(name or ""):
        raise HanlinError(
            f"{name!r} cannot name a remote server",
            "use letters, digits, '.', '_' or '-' (up to 64), starting with a letter or digit",
        )
    if name.lower() in _RESERVED:
        raise HanlinError(
            f"{name!r} is reserved (it already means something in model references)",
            "choose another name, e.g. team-gpu",
        )
    return name


def check_env_name(var: str) -> str:
    if not _ENV_RE.match(var or ""):
        raise HanlinError(
            f"{var!r} is not an environment variable name",
            "use letters, digits and '_', e.g. TEAM_GPU_KEY",
        )
    return var


def normalize_url(url: str) -> str:
    """`url` without trailing slashes, checked: http(s), a host, no key, query or fragment."""
    text = (url or "").strip()
    if "://" not in text:
        raise HanlinError(
            f"{url!r} is not a server address",
            "give the base URL with its scheme, e.g. http://gpu.lan:8000/v1",
        )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise HanlinError(
            f"{url!r} is not a valid URL ({exc})", "e.g. http://gpu.lan:8000/v1"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HanlinError(
            f"{url!r} is not an http(s) server address", "e.g. http://gpu.lan:8000/v1"
        )
    if parts.username or parts.password:
        raise HanlinError(
            "Put the API key in an environment variable, not in the URL",
            "`hanlin remote add NAME URL --key-env VAR`",
        )
    if parts.query or parts.fragment:
        raise HanlinError(f"{url!r} has a query or fragment", "give only the server's base URL")
    return text.rstrip("/")


@dataclass(frozen=True)
class Endpoint:
    """A server to talk to, with its key resolved (never printed: `repr` leaves it out)."""

    name: str
    url: str
    api_key: str | None = field(default=None, repr=False)
    key_env: str | None = None
    #: the key came from settings.toml (plain text) rather than the environment
    key_stored: bool = False
    #: a `[[remote]]` entry (False: an address given on the command line)
    configured: bool = False

    @property
    def api_base(self) -> str:
        """Where the OpenAI routes live (`…/v1`)."""
        return self.url if self.url.endswith("/v1") else self.url + "/v1"

    @property
    def root(self) -> str:
        """The server's root (llama-server's `/infill`, `/health`, `/props`)."""
        return self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url

    @property
    def label(self) -> str:
        """How messages name it: `team-gpu (http://gpu.lan:8000/v1)`."""
        return f"{self.name} ({self.url})" if self.configured else self.url

    def key_hint(self) -> str:
        """What to do when the server refuses the key (or wants one)."""
        if self.key_env and not self.api_key:
            return f"the key is read from ${self.key_env}, which is not set: export it first"
        if self.key_env:
            return f"check the key in ${self.key_env}"
        if self.key_stored:
            return "the API key stored in settings.toml was refused; change it under Remote servers"
        if self.configured:
            return (
                f"this server wants a key: `hanlin remote rm {self.name}`, then "
                f"`hanlin remote add {self.name} {self.url} --key-env VAR`"
            )
        return "this server wants a key: add it with `hanlin remote add NAME URL --key-env VAR`"


def endpoint_from_settings(
    remote: RemoteEndpoint, environ: Mapping[str, str] | None = None
) -> Endpoint:
    """The endpoint of a `[[remote]]` entry; the key from `key_env` beats a stored one."""
    env = os.environ if environ is None else environ
    key: str | None = None
    stored = False
    if remote.key_env:
        key = env.get(remote.key_env) or None
    if key is None and remote.api_key:
        key, stored = remote.api_key, True
    try:
        url = normalize_url(remote.url)
    except HanlinError as exc:
        raise HanlinError(
            f"[[remote]] {remote.name!r} in settings.toml: {exc.message}", exc.hint
        ) from None
    return Endpoint(
        name=remote.name,
        url=url,
        api_key=key,
        key_env=remote.key_env,
        key_stored=stored,
        configured=True,
    )


def _configured_names(settings: Settings) -> str:
    names = [r.name for r in settings.remote]
    return ", ".join(names) if names else "none yet"


def endpoint_for(name_or_url: str, settings: Settings) -> Endpoint:
    """A configured remote by name, or an address (which uses a remote's key if it is one)."""
    text = (name_or_url or "").strip()
    if "://" in text:
        url = normalize_url(text)
        for remote in settings.remote:
            try:
                same = normalize_url(remote.url) == url
            except HanlinError:
                same = False
            if same:
                return endpoint_from_settings(remote)
        return Endpoint(name=urlsplit(url).netloc, url=url)
    remote = settings.remote_named(text)
    if remote is None:
        hint = did_you_mean(
            text,
            [r.name for r in settings.remote],
            f"configured: {_configured_names(settings)}; add one with "
            "`hanlin remote add NAME URL`, or give the URL itself",
        )
        raise UnknownModelError(f"No remote server is named {text!r}", hint)
    return endpoint_from_settings(remote)


@dataclass(frozen=True)
class RemoteTarget:
    """A model on a remote server: what a chat or a completion is sent to."""

    endpoint: Endpoint
    model: str

    @property
    def ref(self) -> str:
        """`NAME/MODEL`: the id the picker, the history and settings.toml use."""
        return f"{self.endpoint.name}/{self.model}"


def split_remote_ref(ref: str, settings: Settings) -> RemoteTarget | None:
    """`team-gpu/Qwen/Qwen2.5-Coder-7B-Instruct` -> that model on `team-gpu`; else None.

    Only a first segment naming a configured remote counts, and an existing file of that
    path wins (a folder may share a remote's name), so local references keep working.
    """
    if not ref or "/" not in ref or "://" in ref:
        return None
    name, _, model = ref.partition("/")
    remote = settings.remote_named(name)
    if remote is None:
        return None
    if Path(ref).expanduser().is_file():
        return None
    if not model.strip():
        raise UnknownModelError(
            f"`{ref}` names the remote {name!r} but no model",
            f"give one: `{name}/MODEL` (`hanlin models list` shows the server's models)",
        )
    return RemoteTarget(endpoint_from_settings(remote), model.strip())


#: a server names its models but not their GGUF architecture, which the family rules
#: (engine/models/families.py) start from: read one off the name
_ARCHITECTURE_HINTS: tuple[tuple[str, str], ...] = (
    (r"qwen[-_ ]?3\.[56]", "qwen35"),
    (r"qwen[-_ ]?3", "qwen3"),
    (r"qwen[-_ ]?2", "qwen2"),
    (r"glm[-_ ]?4", "glm4"),
    (r"deepseek[-_ ]?(coder[-_ ]?)?v2", "deepseek2"),
    (r"kimi[-_ ]?linear", "kimi-linear"),
)


def guess_remote_family(model: str) -> str:
    """The family of a served model from its id (`Qwen/Qwen3-8B` -> qwen3): its thinking
    switch and reasoning behaviour in the window."""
    text = model.lower()
    arch = next((a for pattern, a in _ARCHITECTURE_HINTS if re.search(pattern, text)), None)
    return guess_family(arch, text)
