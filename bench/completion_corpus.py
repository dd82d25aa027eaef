"""The completion benchmark's corpus: real source files that no one here wrote, found at run time.

A benchmark tuned on files of our own says little about code a user types. So the
files are picked, by a fixed seed and a size range only (never by content), from
sources on this machine or fetched from the package registries:

- Python: the running interpreter's standard library (`Lib/*.py`);
- TypeScript: `src/**/*.ts` of the `rxjs` npm package (`npm pack`, cached);
- JavaScript: `lib/**/*.js` of the `express` npm package (`npm pack`, cached);
- C: the `ggml/src/*.c` tree vendored in the llama-cpp-python sdist that
  `bench/llama_tools.py` builds llama-server from.

`--files` replaces the selection with any files; `--seed` changes it, so a checker
can run the benchmark on files the authors have not seen.

    select_corpus(seed=1) -> [CorpusFile, ...]     # two Python, one each TS/JS/C
    pick_file(seed, 450, 600) -> CorpusFile        # a ~500-line stdlib file
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sysconfig
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.llama_tools import CACHE_DIR, ensure_sdist

__all__ = ["LANGUAGES", "CorpusFile", "language_of", "pick_file", "select_corpus"]

#: pinned so a seed picks the same files on every machine
NPM_PACKAGES = {
    "typescript": ("rxjs", "7.8.1", "src/"),
    "javascript": ("express", "4.21.2", "lib/"),
}

LANGUAGES = {
    ".py": "python",
    ".ts": "typescript",
    ".js": "javascript",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".cc": "cpp",
    ".go": "go",
    ".rs": "rust",
}

#: lines a picked file has (enough to need the prompt window, small enough to replay)
MIN_LINES, MAX_LINES = 250, 2500


@dataclass(frozen=True)
class CorpusFile:
    """One real file: where it is, its LSP language id, and where it came from."""

    path: Path
    language: str
    origin: str

    @property
    def label(self) -> str:
        return self.path.name

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")


def language_of(path: Path) -> str:
    return LANGUAGES.get(path.suffix.lower(), "plaintext")


def _line_count(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _pick(paths: Iterable[Path], rng: random.Random, n: int, lo: int, hi: int) -> list[Path]:
    pool = sorted(p for p in paths if p.is_file() and lo <= _line_count(p) <= hi)
    if len(pool) < n:
        raise SystemExit(f"corpus: only {len(pool)} files of {lo}-{hi} lines, {n} wanted")
    return rng.sample(pool, n)


def stdlib_files() -> list[Path]:
    lib = Path(sysconfig.get_paths()["stdlib"])
    return [p for p in lib.glob("*.py") if not p.name.startswith("_")]


def _npm_tree(package: str, version: str) -> Path:
    """`npm pack package@version` into .bench-cache/npm/ and unpack it once."""
    dest = CACHE_DIR / "npm" / f"{package}-{version}"
    if (dest / "package").is_dir():
        return dest / "package"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tgz = dest.parent / f"{package}-{version}.tgz"
    if not tgz.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("corpus: `npm` is needed to fetch the TypeScript/JavaScript files")
        subprocess.run(
            [npm, "pack", f"{package}@{version}", "--silent"],
            cwd=dest.parent,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=300,
        )
    tmp = dest.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp, filter="data")
    tmp.replace(dest)
    return dest / "package"


def npm_files(language: str) -> list[Path]:
    package, version, under = NPM_PACKAGES[language]
    root = _npm_tree(package, version) / under
    suffix = ".ts" if language == "typescript" else ".js"
    return [p for p in root.rglob(f"*{suffix}") if not p.name.endswith(".d.ts")]


def _llama_cpp_tree() -> Path:
    """The llama.cpp tree vendored in the llama-cpp-python sdist (unpacked once)."""
    built = sorted(CACHE_DIR.glob("llama.cpp-*/llama.cpp"))
    if built:
        return built[-1]
    sdist = ensure_sdist()
    dest = CACHE_DIR / "corpus-llama.cpp"
    if not dest.is_dir():
        tmp = dest.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(sdist) as tar:
            members = [m for m in tar if "/vendor/llama.cpp/ggml/src/" in m.name]
            tar.extractall(tmp, members=members, filter="data")
        tmp.replace(dest)
    return next(dest.glob("*/vendor/llama.cpp"))


def c_files() -> list[Path]:
    return list((_llama_cpp_tree() / "ggml" / "src").glob("*.c"))


def _as_corpus(paths: Sequence[Path], origin: str) -> list[CorpusFile]:
    return [CorpusFile(p, language_of(p), origin) for p in paths]


def select_corpus(seed: int = 1, files: Sequence[Path] | None = None) -> list[CorpusFile]:
    """Two stdlib Python files, one TypeScript, one JavaScript and one C file, by `seed`."""
    if files:
        missing = [str(p) for p in files if not Path(p).is_file()]
        if missing:
            raise SystemExit(f"--files: no such file: {', '.join(missing)}")
        return _as_corpus([Path(p).resolve() for p in files], "--files")
    rng = random.Random(seed)
    corpus = _as_corpus(_pick(stdlib_files(), rng, 2, MIN_LINES, MAX_LINES), "python stdlib")
    for language in ("typescript", "javascript"):
        package, version, _ = NPM_PACKAGES[language]
        # small packages: their biggest real files are a few hundred lines
        picked = _pick(npm_files(language), rng, 1, 150, MAX_LINES)
        corpus += _as_corpus(picked, f"npm {package}@{version}")
    corpus += _as_corpus(_pick(c_files(), rng, 1, MIN_LINES, 4000), "llama.cpp ggml (sdist)")
    return corpus


def pick_file(seed: int = 1, lo: int = 450, hi: int = 600) -> CorpusFile:
    """One stdlib Python file of `lo`..`hi` lines (the first-ghost-text measurement)."""
    (path,) = _pick(stdlib_files(), random.Random(seed), 1, lo, hi)
    return CorpusFile(path, "python", "python stdlib")
