"""Build llama.cpp's own tools (`llama-bench`, `llama-server`) once, as baselines.

The benchmarks compare Hanlin's chat and completion paths against llama.cpp
itself, so the baseline must be the *same* llama.cpp version the Python binding
runs: we build it from the `vendor/llama.cpp` tree inside the llama-cpp-python
source distribution of the installed version (found in pip's cache, in
`.bench-cache/`, or fetched with `pip download --no-binary :all:`).

Both tools are built in one CMake build (CPU only, `-DLLAMA_CURL=OFF`, Release,
llama.cpp's default `GGML_NATIVE` like the wheel) and cached under
`.bench-cache/` in the checkout (or `$HANLIN_BENCH_CACHE`: CI points it outside its
fresh clone), so later runs return at once.

    python -m bench.llama_tools            # build (or find) both, print their paths
    ensure_tool("llama-bench") -> Path
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

__all__ = ["CACHE_DIR", "TOOLS", "ensure_sdist", "ensure_tool", "ensure_tools", "llama_cpp_version"]

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("HANLIN_BENCH_CACHE") or ROOT / ".bench-cache")
TOOLS = ("llama-bench", "llama-server")


def llama_cpp_version() -> str:
    """The installed llama-cpp-python version (the sdist we must build from)."""
    return metadata.version("llama_cpp_python")


def _sdist_name(version: str) -> str:
    return f"llama_cpp_python-{version}.tar.gz"


def _candidate_sdists(version: str) -> Iterator[Path]:
    name = _sdist_name(version)
    yield CACHE_DIR / name
    for base in (Path(tempfile.gettempdir()), Path.home() / ".cache" / "pip"):
        if base.is_dir():
            # pip unpacks sdists under /tmp/pip-unpack-*; its http cache stores them by hash.
            yield from base.glob(f"pip-unpack-*/{name}")


def ensure_sdist(version: str | None = None) -> Path:
    """The llama-cpp-python sdist of `version` (default: the installed one) in `.bench-cache/`.

    Found on this machine or fetched from PyPI (about 75 MB). The tests use its vendored
    vocab-only GGUFs (`vendor/llama.cpp/models/`), the benchmarks build llama.cpp from it.
    """
    return _find_or_fetch_sdist(version or llama_cpp_version())


def _find_or_fetch_sdist(version: str) -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # A test and a benchmark may want it at once: one fetches, the other waits for the file.
    with open(CACHE_DIR / ".sdist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _find_or_fetch_sdist_locked(version)


def _find_or_fetch_sdist_locked(version: str) -> Path:
    for candidate in _candidate_sdists(version):
        if candidate.is_file() and tarfile.is_tarfile(candidate):
            if candidate.parent != CACHE_DIR:
                CACHE_DIR.mkdir(parents=True, exist_ok=True)
                shutil.copy2(candidate, CACHE_DIR / candidate.name)
                return CACHE_DIR / candidate.name
            return candidate
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    print(f"downloading the llama-cpp-python {version} source distribution ...", file=sys.stderr)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"llama-cpp-python=={version}",
            "-d",
            str(CACHE_DIR),
        ],
        check=True,
    )
    path = CACHE_DIR / _sdist_name(version)
    if not path.is_file():
        raise RuntimeError(f"pip download did not produce {path}")
    return path


def _extract_llama_cpp(sdist: Path, dest: Path) -> Path:
    """Unpack only vendor/llama.cpp from the sdist into `dest`; return its root."""
    src = dest / "llama.cpp"
    if (src / "CMakeLists.txt").is_file():
        return src
    tmp = dest / "extract.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
        tar.extractall(tmp, members=members, filter="data")
    vendored = next(tmp.glob("*/vendor/llama.cpp"))
    vendored.rename(src)
    shutil.rmtree(tmp, ignore_errors=True)
    return src


def _build_dir(version: str) -> Path:
    return CACHE_DIR / f"llama.cpp-{version}"


def _tool_path(version: str, name: str) -> Path:
    return _build_dir(version) / "build" / "bin" / name


def ensure_tools(jobs: int | None = None, quiet: bool = False) -> dict[str, Path]:
    """Build llama-bench and llama-server if not cached; return {name: path}."""
    version = llama_cpp_version()
    paths = {name: _tool_path(version, name) for name in TOOLS}
    if all(p.is_file() and os.access(p, os.X_OK) for p in paths.values()):
        return paths
    base = _build_dir(version)
    base.mkdir(parents=True, exist_ok=True)
    # Two benchmarks started at once must not build the same tree twice.
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(p.is_file() for p in paths.values()):
            return paths
        src = _extract_llama_cpp(_find_or_fetch_sdist(version), base)
        build = base / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        out = subprocess.DEVNULL if quiet else None
        subprocess.run(
            [
                "cmake",
                "-S",
                str(src),
                "-B",
                str(build),
                *generator,
                "-DCMAKE_BUILD_TYPE=Release",
                "-DLLAMA_CURL=OFF",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DGGML_CUDA=OFF",
                "-DGGML_METAL=OFF",
                "-DGGML_VULKAN=OFF",
                "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF",
                "-DLLAMA_BUILD_TOOLS=ON",
                "-DLLAMA_BUILD_SERVER=ON",
            ],
            check=True,
            stdout=out,
        )
        subprocess.run(
            [
                "cmake",
                "--build",
                str(build),
                "--config",
                "Release",
                "-j",
                str(jobs or os.cpu_count() or 2),
                "--target",
                *TOOLS,
            ],
            check=True,
            stdout=out,
        )
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise RuntimeError(
            f"the llama.cpp build finished but these are missing: {', '.join(missing)}"
        )
    return paths


def ensure_tool(name: str) -> Path:
    """Path of a built llama.cpp tool (`llama-bench` or `llama-server`), building if needed."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; choose one of {', '.join(TOOLS)}")
    return ensure_tools()[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=None, help="parallel compile jobs")
    args = parser.parse_args(argv)
    for name, path in ensure_tools(args.jobs).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
