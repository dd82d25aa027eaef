"""The one entry script of the frozen bundle: three executables, one runtime.

Why one script: PyInstaller analyses it once and the three executables (`hanlin`,
`hanlin-lsp`, `hanlin-app`) share the same `_internal/` folder, so the bundle carries
one copy of Python, Qt and llama.cpp. Each executable knows what it is from its own
file name (`sys.executable`); run unfrozen, the first argument names it instead:

    python installers/pyinstaller/launcher.py hanlin doctor
    python installers/pyinstaller/launcher.py hanlin-app ~/Downloads/model.gguf

`ENTRY_POINTS` is read by `hanlin.spec` (the executables it makes) and by the tests
(they must match `[project.scripts]` in pyproject.toml, plus the windowed app).

- `hanlin`, `hanlin-lsp`: exactly the console scripts pip installs.
- `hanlin-app`: the desktop window with no console (the Start-menu entry, the
  `.desktop` file, the macOS `.app`). `.gguf` paths given to it ("Open with Hanlin",
  a double-click on a model file) are imported — registered in place, never copied —
  and the window opens on the Models page; a file that cannot be imported is named
  in an error dialog and the window still opens. With no console, stdout/stderr go
  to `hanlin-app.log` in Hanlin's log folder instead of nowhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: executable name -> (module, function, console)
ENTRY_POINTS: dict[str, tuple[str, str, bool]] = {
    "hanlin-app": ("hanlin.desktop.cli.main", "main", False),
    "hanlin": ("hanlin.desktop.cli.main", "main", True),
    "hanlin-lsp": ("hanlin.lsp_server.main", "main", True),
}


def _entry_name(argv: list[str]) -> tuple[str, list[str]]:
    """(entry point, its arguments) from the executable's name, or argv[1] unfrozen."""
    if getattr(sys, "frozen", False):
        name = Path(sys.executable).stem.lower()
        return (name if name in ENTRY_POINTS else "hanlin"), argv[1:]
    if len(argv) > 1 and argv[1] in ENTRY_POINTS:
        return argv[1], argv[2:]
    return "hanlin", argv[1:]


def _ensure_stdio() -> None:
    """A windowed executable has no stdout/stderr (None): give them a log file."""
    if sys.stdout is not None and sys.stderr is not None:
        return
    from hanlin.engine.core import paths

    try:
        log = open(  # noqa: SIM115 - lives as long as the process
            paths.ensure(paths.log_dir()) / "hanlin-app.log", "a", encoding="utf-8", buffering=1
        )
    except OSError:
        log = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    if sys.stdout is None:
        sys.stdout = log
    if sys.stderr is None:
        sys.stderr = log


def _import_models(files: list[Path]) -> list[Exception]:
    """Register `.gguf` files given to the app; the errors, to show once Qt is up."""
    from hanlin.engine.core.errors import HanlinError
    from hanlin.engine.store.model_store import ModelStore

    store = ModelStore()
    problems: list[Exception] = []
    for path in files:
        try:
            store.import_file(path)
        except HanlinError as exc:
            problems.append(exc)
    return problems


def _run_app(args: list[str]) -> int:
    """The desktop window; `.gguf` arguments are imported first (Open with Hanlin)."""
    from hanlin.desktop.cli.main import main as cli_main

    files = [Path(a) for a in args if not a.startswith("-") and a.lower().endswith(".gguf")]
    if not files:
        return cli_main([])
    problems = _import_models(files)
    os.environ["HANLIN_PAGE"] = "models"
    if problems:
        from PySide6.QtWidgets import QApplication

        from hanlin.desktop.errors import show_error_dialog

        app = QApplication.instance() or QApplication(sys.argv[:1])  # run_app reuses it
        assert app is not None
        for problem in problems:
            show_error_dialog(None, problem)
    return cli_main([])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    name, args = _entry_name(argv)
    if name == "hanlin-app":
        _ensure_stdio()
        return _run_app(args)
    module, function, _console = ENTRY_POINTS[name]
    sys.argv = [name, *args]
    entry = getattr(__import__(module, fromlist=[function]), function)
    return int(entry(args) or 0)


if __name__ == "__main__":
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen child process must not start another app
    sys.exit(main())
