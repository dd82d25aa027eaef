"""What one `hanlin serve` runs with: flags over `[server]` in settings.toml, checked.

Why its own module: the same rules hold for the command line and for the desktop's
server toggle (which starts `hanlin serve` with the settings' values), and they are
about safety — a server bound to anything but loopback without an API key would hand
the model (and the machine's CPU) to the whole network, so that is refused here,
before anything is loaded.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field

from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.settings import ServerSettings

__all__ = [
    "DEFAULT_KEY_ENV",
    "MAX_BODY_BYTES",
    "READY_PREFIX",
    "ServeConfig",
    "bind_socket",
    "is_loopback",
    "resolve_api_key",
]

#: the largest request body accepted (413 above): ~2 million tokens of text
MAX_BODY_BYTES = 8 * 1024 * 1024
#: the environment variable read for the key when settings name none
DEFAULT_KEY_ENV = "HANLIN_API_KEY"
#: the start of the stdout line printed once the server accepts requests (then the URL)
READY_PREFIX = "hanlin serve: listening on "


@dataclass
class ServeConfig:
    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str | None = None
    #: tokens per request (each parallel slot holds this many); None = the model's default
    ctx: int | None = None
    parallel: int = 2
    max_queue: int = 16
    cors: list[str] = field(default_factory=list)
    threads: int | None = None
    max_body_bytes: int = MAX_BODY_BYTES

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise HanlinError(f"--port {self.port} is not a port", "use 1–65535 (0: any free port)")
        if self.parallel < 1 or self.parallel > 64:
            raise HanlinError("--parallel must be between 1 and 64")
        if self.max_queue < 0:
            raise HanlinError("--max-queue must be 0 or more")
        if self.ctx is not None and self.ctx < 256:
            raise HanlinError("--ctx must be at least 256 tokens")
        if self.threads is not None and self.threads < 1:
            raise HanlinError("--threads must be at least 1")
        if not is_loopback(self.host) and not self.api_key:
            raise HanlinError(
                f"Refusing to serve on {self.host} without an API key: anyone on the network "
                "could use the model",
                "pass --api-key KEY (or set api_key_env in [server] of settings.toml), "
                "or bind 127.0.0.1",
            )

    @property
    def base_url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; False for 0.0.0.0, :: and real addresses."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def resolve_api_key(flag: str | None, settings: ServerSettings) -> str | None:
    """--api-key, else `api_key` in settings, else the variable `api_key_env` names."""
    if flag:
        return flag
    if settings.api_key:
        return settings.api_key
    env = settings.api_key_env or DEFAULT_KEY_ENV
    return os.environ.get(env) or None


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error (port in use) before anything slow happens."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise HanlinError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}",
            "pick another port with --port (0 = any free one), or stop the other server",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
