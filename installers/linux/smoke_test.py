"""Smoke test of the Linux bundle: it runs from a clean folder with no Python on PATH.

Why: the bundle is what users download; this proves that the tarball, unpacked into an
empty folder and run with an environment that has no Python in it (no `python3` on
PATH, no PYTHONPATH/PYTHONHOME/VIRTUAL_ENV, a fresh HOME, a working directory of its
own), can:

1. `hanlin doctor` (and `--json`: the backend of this build);
2. `hanlin models import GGUF` + `hanlin chat ID PROMPT` (one-shot) with a real model;
3. `hanlin-lsp` answering `initialize` over stdio (then shutdown/exit cleanly);
4. `hanlin-app` under Qt's offscreen platform staying up 5 s, and showing its window
   (HANLIN_STARTUP_PROBE);
5. `install.sh` installing it for a user, the installed `hanlin` running, and
   `install.sh --uninstall` removing it while keeping the user's data;
6. (with --appdir) the AppImage's AppRun starting the tools.

This script runs under any Python 3.11+ (the system's) *before* PATH is stripped; only
the bundle's programs run in the stripped environment.

    python3 installers/linux/smoke_test.py dist/hanlin-0.1.0-linux-x86_64-cpu.tar.gz \\
        --gguf SmolLM2-135M-Instruct.Q4_1.gguf [--appdir dist/Hanlin.AppDir] [--expect-vsix]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

#: the only programs on PATH: what install.sh and a shell need; never a Python
TOOLS = (
    "sh", "env", "cat", "cp", "mv", "rm", "ln", "mkdir", "sed", "dirname", "basename",
    "readlink", "pwd", "ls", "true",
)


class SmokeFailure(Exception):
    pass


def _tool_dir(root: Path) -> Path:
    """A PATH folder of links to the few tools needed, checked to hold no Python."""
    tools = root / "tools"
    tools.mkdir()
    for name in TOOLS:
        found = shutil.which(name, path="/usr/bin:/bin")
        if found is None:
            raise SmokeFailure(f"{name} not found in /usr/bin or /bin")
        (tools / name).symlink_to(found)
    for python in ("python", "python3", "python3.11", "python3.12", "python3.13"):
        if shutil.which(python, path=str(tools)):
            raise SmokeFailure(f"{python} is on the stripped PATH")
    return tools


class Bundle:
    """The bundle's programs, run in the stripped environment."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.home = root / "home"
        self.home.mkdir()
        self.cwd = root / "cwd"
        self.cwd.mkdir()
        self.env = {
            "PATH": str(_tool_dir(root)),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "QT_QPA_PLATFORM": "offscreen",
            "HF_HUB_OFFLINE": "1",  # nothing here may need the network
        }

    def run(self, program: str, *args: str, timeout: float = 180, **env: str) -> str:
        started = time.perf_counter()
        proc = subprocess.run(
            [str(self.folder / program), *args],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        took = time.perf_counter() - started
        shown = " ".join([program, *args])
        if proc.returncode != 0:
            raise SmokeFailure(
                f"`{shown}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
                f"\n--- stderr\n{proc.stderr[-3000:]}"
            )
        print(f"  ok  {shown[:90]}  ({took:.1f} s)", flush=True)
        return proc.stdout

    def popen(self, program: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(self.folder / program), *args],
            cwd=self.cwd,
            env={**self.env, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


def check_no_python(bundle: Bundle) -> None:
    probe = subprocess.run(
        ["sh", "-c", "command -v python3 || command -v python || exit 7"],
        env=bundle.env,
        cwd=bundle.cwd,
        capture_output=True,
        text=True,
    )
    if probe.returncode != 7:
        raise SmokeFailure(f"a Python is reachable: {probe.stdout.strip()}")
    print("  ok  no python3/python on PATH", flush=True)


def check_doctor(bundle: Bundle) -> None:
    text = bundle.run("hanlin", "doctor")
    for word in ("CPU:", "RAM:", "GPU:", "llama.cpp:"):
        if word not in text:
            raise SmokeFailure(f"`hanlin doctor` printed no {word} line:\n{text}")
    report = json.loads(bundle.run("hanlin", "doctor", "--json"))
    if not report["models"]:
        raise SmokeFailure("doctor --json lists no catalog models: the catalog is not bundled")
    backend = report["backend"]
    if not backend["build"] or not report["bundle"]:
        raise SmokeFailure(f"doctor --json: no build backend / bundle info: {backend}")
    print(f"      build backend: {backend['build']}; bundle: {report['bundle']}", flush=True)


def check_chat(bundle: Bundle, gguf: Path) -> None:
    bundle.run("hanlin", "models", "import", str(gguf), "--id", "smoke-model")
    listed = json.loads(bundle.run("hanlin", "models", "list", "--json"))
    if not any(m.get("id") == "smoke-model" for m in listed):
        raise SmokeFailure("the imported model is not in `hanlin models list --json`")
    answer = bundle.run(
        "hanlin", "chat", "smoke-model", "Say hello in three words.", "--max-tokens", "12"
    )
    if not answer.strip():
        raise SmokeFailure("`hanlin chat` answered nothing")
    print(f"      answer: {answer.strip()[:70]!r}", flush=True)


def _lsp_message(payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def _read_lsp(stream, deadline: float) -> dict[str, object]:  # type: ignore[no-untyped-def]
    result: dict[str, object] = {}

    def read() -> None:
        length = 0
        while True:
            line = stream.readline()
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        result.update(json.loads(stream.read(length)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    if not result:
        raise SmokeFailure("hanlin-lsp sent no message in time")
    return result


def check_lsp(bundle: Bundle) -> None:
    started = time.perf_counter()
    proc = bundle.popen("hanlin-lsp")
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(
            _lsp_message(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"processId": None, "rootUri": None, "capabilities": {}},
                }
            )
        )
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while True:
            message = _read_lsp(proc.stdout, deadline)
            if message.get("id") == 1:
                break
        result = message.get("result")
        if not isinstance(result, dict) or result.get("serverInfo", {}).get("name") != "hanlin-lsp":
            raise SmokeFailure(f"unexpected initialize answer: {message}")
        if "inlineCompletionProvider" not in result.get("capabilities", {}):
            raise SmokeFailure("hanlin-lsp does not offer inline completion")
        proc.stdin.write(_lsp_message({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        proc.stdin.write(_lsp_message({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
        proc.stdin.write(_lsp_message({"jsonrpc": "2.0", "method": "exit"}))
        proc.stdin.flush()
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        raise SmokeFailure(f"hanlin-lsp exited {code} after shutdown/exit: {_stderr(proc)}")
    version = result["serverInfo"].get("version")
    took = time.perf_counter() - started
    print(f"  ok  hanlin-lsp: initialize -> hanlin-lsp {version}, exit 0  ({took:.1f} s)")


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    try:
        _out, err = proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        return ""
    return (err or b"").decode(errors="replace")[-3000:]


def check_window(bundle: Bundle, seconds: float = 5.0) -> None:
    proc = bundle.popen("hanlin-app")
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise SmokeFailure(
                    f"hanlin-app exited ({proc.returncode}) within {seconds:.0f} s: "
                    f"{_stderr(proc)}"
                )
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"  ok  hanlin-app (offscreen) stayed up {seconds:.0f} s", flush=True)
    shown = bundle.run("hanlin-app", timeout=120, HANLIN_STARTUP_PROBE="1")
    if "HANLIN_STARTUP_PROBE shown_ms=" not in shown:
        raise SmokeFailure(f"hanlin-app did not report its window shown: {shown!r}")
    print(f"      {shown.strip()}", flush=True)


def check_install(bundle: Bundle) -> None:
    """install.sh for the user, the installed program, then --uninstall keeping data."""
    bundle.run("install.sh")
    installed = bundle.home / ".local" / "opt" / "hanlin"
    link = bundle.home / ".local" / "bin" / "hanlin"
    desktop = bundle.home / ".local" / "share" / "applications" / "hanlin.desktop"
    if not (link.is_symlink() and (installed / "hanlin-app").is_file() and desktop.is_file()):
        raise SmokeFailure("install.sh did not install the program, its links and menu entry")
    if f"Exec={installed}/hanlin-app %F" not in desktop.read_text(encoding="utf-8"):
        raise SmokeFailure("the installed menu entry does not name the installed program")
    proc = subprocess.run(
        [str(link), "--version"], env=bundle.env, cwd=bundle.cwd, capture_output=True, text=True
    )
    if proc.returncode != 0 or not proc.stdout.startswith("hanlin "):
        raise SmokeFailure(f"the installed hanlin does not run: {proc.stderr[-2000:]}")
    print(f"  ok  installed hanlin runs: {proc.stdout.strip()}", flush=True)
    data = bundle.home / ".local" / "share" / "hanlin"
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    bundle.run(str(installed / "install.sh"), "--uninstall")
    if installed.exists() or link.exists() or desktop.exists():
        raise SmokeFailure("install.sh --uninstall left the program, a link or the menu entry")
    after = sorted(p.relative_to(data) for p in data.rglob("*"))
    if not before or before != after:
        raise SmokeFailure("install.sh --uninstall touched the user's data")


def check_appdir(bundle: Bundle, appdir: Path) -> None:
    apprun = Bundle(appdir, Path(tempfile.mkdtemp(prefix="hanlin-appdir-")))
    out = apprun.run("AppRun", "hanlin", "--version")
    if not out.startswith("hanlin "):
        raise SmokeFailure(f"AppRun hanlin --version printed {out!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="the .tar.gz (or an unpacked bundle folder)")
    parser.add_argument("--gguf", type=Path, required=True, help="a small chat GGUF")
    parser.add_argument("--appdir", type=Path, help="also check this AppDir's AppRun")
    parser.add_argument("--expect-vsix", action="store_true", help="editors/vscode/*.vsix")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="hanlin-smoke-"))
    try:
        unpacked = root / "unpacked"
        if args.bundle.is_dir():
            shutil.copytree(args.bundle, unpacked / args.bundle.name, symlinks=True)
        else:
            with tarfile.open(args.bundle) as tar:
                if hasattr(tarfile, "tar_filter"):  # Python 3.11.4+ (Debian 12 has 3.11.2)
                    tar.extractall(unpacked, filter="tar")
                else:
                    tar.extractall(unpacked)  # our own tarball, just built
        (folder,) = unpacked.iterdir()
        print(f"Smoke test of {args.bundle} in {root}", flush=True)
        bundle = Bundle(folder, root)
        checks: list[tuple[str, Callable[[], None]]] = [
            ("no python", lambda: check_no_python(bundle)),
            ("doctor", lambda: check_doctor(bundle)),
            ("import + chat", lambda: check_chat(bundle, args.gguf.resolve())),
            ("hanlin-lsp", lambda: check_lsp(bundle)),
            ("window", lambda: check_window(bundle)),
            ("install.sh", lambda: check_install(bundle)),
        ]
        if args.expect_vsix:
            checks.append(("vsix", lambda: _check_vsix(folder)))
        if args.appdir:
            checks.append(("AppRun", lambda: check_appdir(bundle, args.appdir.resolve())))
        for name, check in checks:
            try:
                check()
            except (SmokeFailure, subprocess.TimeoutExpired, OSError, ValueError) as exc:
                print(f"FAILED {name}: {exc}", file=sys.stderr)
                return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    took = time.perf_counter() - started
    print(f"Bundle smoke test: all {len(checks)} checks passed in {took:.0f} s")
    return 0


def _check_vsix(folder: Path) -> None:
    found = list((folder / "editors" / "vscode").glob("hanlin-*.vsix"))
    if not found:
        raise SmokeFailure("the bundle has no editors/vscode/hanlin-*.vsix")
    for path in ("editors/jetbrains/hanlin/template.json", "editors/neovim/hanlin.lua"):
        if not (folder / path).is_file():
            raise SmokeFailure(f"the bundle has no {path}")
    print(f"  ok  editors: {found[0].name}, JetBrains template, Neovim config", flush=True)


if __name__ == "__main__":
    sys.exit(main())
