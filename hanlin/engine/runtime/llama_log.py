"""Route llama.cpp's own log output away from stdout, once per process.

Why: the language server's stdout is its protocol channel, and the command line
prints answers there. llama.cpp logs hundreds of lines while loading a model;
left alone (or silenced with `Llama(verbose=False)`, which points file
descriptors 1 and 2 at /dev/null while it loads and so swallows anything else
written in that window) it corrupts or loses protocol messages. Instead we
install a `llama_log_set` callback (which also covers ggml's log) that writes
to a log file, or to stderr, and never to stdout.

The destination is bound once, when the route is chosen: the stream that is
`sys.stderr` at that moment, not whatever `sys.stderr` happens to be when a
line arrives (a `redirect_stderr` somewhere, on any thread, would otherwise
swallow llama.cpp's errors). Nothing here, nor in the loader, swaps
`sys.stderr`: other threads' tracebacks must reach the log during a load too.

The last lines are also kept in memory so that a failed load can say *why*
("unknown model architecture: 'foo'") instead of llama-cpp-python's bare
"Failed to load model".

    route_llama_logs()                 # warnings and errors to stderr
    route_llama_logs(Path("x.log"))    # everything to a log file
    recent_llama_log(20)               # the last lines, for error messages
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections import deque
from pathlib import Path
from typing import TextIO

__all__ = [
    "clear_recent_log",
    "ensure_llama_logs_routed",
    "recent_llama_log",
    "route_llama_logs",
]

# ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5 (continues the previous line)
_LEVEL_NAMES = {"debug": 1, "info": 2, "warning": 3, "error": 4}
_CONT = 5

_lock = threading.RLock()  # re-entrant: llama.cpp may log while we hold it
_installed = False
_callback: object | None = None  # keeps the ctypes callback alive for the process lifetime
_sink_path: Path | None = None
_sink_file: TextIO | None = None
#: the stream chosen by the last `route_llama_logs(None, ...)` (bound then, never re-resolved)
_stream: TextIO | None = None
_min_level = 3
_last_level = 2
_recent: deque[str] = deque(maxlen=200)
_partial = ""


def _target() -> TextIO | None:
    if _sink_file is not None:
        return _sink_file
    return _stream if _stream is not None else sys.__stderr__


def _on_log(level: int, text: bytes | None, _user_data: ctypes.c_void_p) -> None:
    try:
        with _lock:
            _handle(level, text)
    except Exception:
        pass


def _handle(level: int, text: bytes | None) -> None:
    global _last_level, _partial
    if level == _CONT:
        level = _last_level
    else:
        _last_level = level
    message = (text or b"").decode("utf-8", errors="replace")
    # Keep whole lines for error reports; llama.cpp sometimes logs a line in pieces.
    joined = _partial + message
    *lines, _partial = joined.split("\n")
    _recent.extend(line for line in lines if line.strip())
    if level >= _min_level or (_sink_file is not None and level >= 2):
        out = _target()
        if out is None:
            return
        try:
            out.write(message)
            out.flush()
        except (OSError, ValueError):  # the bound stream was closed: the process's own stderr
            fallback = sys.__stderr__
            if fallback is not None and fallback is not out:
                fallback.write(message)
                fallback.flush()


def route_llama_logs(
    path: Path | None = None, *, level: str = "warning", stream: TextIO | None = None
) -> None:
    """Install the llama.cpp log callback (first call) and choose where logs go.

    `path`: a log file that receives info, warnings and errors (appended);
    None sends only messages at `level` or above ("debug", "info", "warning",
    "error") to `stream`, by default the `sys.stderr` of this moment (bound
    now, so a later swap of `sys.stderr` does not redirect llama.cpp's log).
    Never stdout. Safe to call many times and from any thread; the C callback
    is installed once, later calls only move the destination.
    """
    global _installed, _callback, _sink_path, _sink_file, _min_level, _stream
    if level not in _LEVEL_NAMES:
        raise ValueError(f"level must be one of {', '.join(_LEVEL_NAMES)}")
    if path is None and stream is None:
        stream = sys.stderr if sys.stderr is not None else sys.__stderr__
    if stream is not None and stream is sys.__stdout__:
        raise ValueError("llama.cpp's log must not go to stdout (the protocol channel)")
    with _lock:
        _min_level = _LEVEL_NAMES[level]
        _stream = stream
        if path is not None and path != _sink_path:
            path.parent.mkdir(parents=True, exist_ok=True)
            new_file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the process
            old, _sink_file, _sink_path = _sink_file, new_file, path
            if old is not None:
                old.close()
        elif path is None and _sink_file is not None:
            _sink_file.close()
            _sink_file, _sink_path = None, None
        if _installed:
            return
        import llama_cpp  # imported here so `import hanlin.engine.runtime.llama_log` stays cheap

        _callback = llama_cpp.llama_log_callback(_on_log)
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed = True


def ensure_llama_logs_routed() -> None:
    """Install the callback with the default destination unless a front end chose one.

    Default: everything to `<log dir>/llama.log` (stderr, errors only, if that
    file cannot be opened). Called by the runtime before every load.
    """
    if _installed:
        return
    from hanlin.engine.core import paths

    try:
        route_llama_logs(paths.log_dir() / "llama.log")
    except OSError:
        route_llama_logs(None, level="error")


def recent_llama_log(n: int = 20) -> list[str]:
    """The last `n` complete lines llama.cpp logged (any level), oldest first."""
    with _lock:
        return list(_recent)[-n:]


def clear_recent_log() -> None:
    """Forget remembered lines (done before a load, so its errors stand alone)."""
    global _partial
    with _lock:
        _recent.clear()
        _partial = ""
