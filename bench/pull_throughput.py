"""Pull throughput against `curl`, and bytes re-sent after an interruption at 50 %.

Why: issue 3 sets two targets for `hanlin models pull`: at least 0.9x the
throughput of a plain `curl` of the same file from the same server in the same
run, and no more than one download buffer (a few MiB) sent twice after an
interruption — within one pull (a dropped connection) and across two (the
process killed, then run again).

What it does:
1. writes a GGUF file of `--size-mb` MB (random tensor bytes) into a temp dir;
2. serves it from tests/support/fake_hub.py in a *separate process* (so the
   server never competes with the client for the GIL), then alternates
   `curl -o` of the CDN URL and `ModelStore.pull` (the engine API: HEAD, ranged
   GET into the .part, sha256 while writing, GGUF header check, rename), taking
   the median of `--runs` each;
3. drops the connection at 50 % (server-side) and counts the bytes the server
   sent in total minus the file size;
4. starts `python -m hanlin.desktop.cli.main models pull` in a subprocess, SIGKILLs it
   at 50 %, runs it again, and counts the same.

Run from the repository root: `python bench/pull_throughput.py [--size-mb 300]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hanlin.engine.store.hub_download import DownloadOptions  # noqa: E402
from hanlin.engine.store.model_store import ModelStore  # noqa: E402
from tests.support.fake_hub import FakeHub, write_gguf_file  # noqa: E402

REPO = "bench/Bench-GGUF"
FILE = "bench-q4_k_m.gguf"
_MiB = 1 << 20


def serve_forever(path: Path) -> None:
    """--serve mode: publish `path`, print the endpoint and the blob URL, serve until killed."""
    hub = FakeHub().start()
    hub_file = hub.add_file(REPO, FILE, path)
    print(hub.endpoint, f"{hub.cdn}/blobs/{hub_file.sha256}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    hub.stop()


def _curl(url: str, out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user+sys) of one `curl -o`."""
    out.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _pull(models: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all threads of this process) of one engine pull."""
    store = ModelStore(models_dir=models, options=DownloadOptions(progress_interval=1.0))
    cpu = time.process_time()
    started = time.perf_counter()
    model = store.pull(f"hf.co/{REPO}/{FILE}")
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    store.remove(model.id)
    return wall, cpu


Timing = tuple[float, float, float]  # best wall s, median wall s, median CPU s


def _summary(runs: list[tuple[float, float]]) -> Timing:
    walls = [w for w, _ in runs]
    return min(walls), statistics.median(walls), statistics.median(c for _, c in runs)


def throughput(path: Path, work: Path, runs: int) -> tuple[Timing, Timing]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        endpoint, blob_url = server.stdout.readline().split()
        os.environ["HF_ENDPOINT"] = endpoint
        curl_runs, pull_runs = [], []
        _curl(blob_url, work / "warm.bin")  # warm the page cache and imports for both
        _pull(work / "models")
        for _ in range(runs):  # alternate, so load changes hit both alike
            curl_runs.append(_curl(blob_url, work / "curl.bin"))
            pull_runs.append(_pull(work / "models"))
        (work / "curl.bin").unlink(missing_ok=True)
        (work / "warm.bin").unlink(missing_ok=True)
        return _summary(curl_runs), _summary(pull_runs)
    finally:
        server.terminate()
        server.wait(10)


def resent_within_one_pull(path: Path, work: Path) -> tuple[int, int]:
    size = path.stat().st_size
    with FakeHub() as hub:
        os.environ["HF_ENDPOINT"] = hub.endpoint
        hub.add_file(REPO, FILE, path)
        hub.faults.drop_after = size // 2
        hub.faults.drop_times = 1
        store = ModelStore(models_dir=work / "models1", options=DownloadOptions(backoff_base=0.1))
        model = store.pull(f"hf.co/{REPO}/{FILE}")
        resent = hub.stats.body_bytes - size
        store.remove(model.id)
        return resent, hub.stats.drops


def resent_across_two_pulls(path: Path, work: Path) -> tuple[int, int]:
    size = path.stat().st_size
    home = work / "home"
    part = home / "data" / "models" / "bench" / "Bench-GGUF" / (FILE + ".part")
    with FakeHub() as hub:
        hub.add_file(REPO, FILE, path)
        hub.faults.rate = max(50 * _MiB, size / 4)  # ~4 s: time to kill it mid-way
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.endpoint,
            "HANLIN_HOME": str(home),
            "PYTHONPATH": str(ROOT),
        }
        ref = f"hf.co/{REPO}/{FILE}"
        cmd = [sys.executable, "-m", "hanlin.desktop.cli.main", "models", "pull", ref]
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while not part.exists() or part.stat().st_size < size // 2:
            if proc.poll() is not None:
                raise RuntimeError("the pull ended before it could be interrupted")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kept = part.stat().st_size
        hub.faults.rate = None
        subprocess.run(
            cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return hub.stats.body_bytes - size, kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever(args.serve)
        return 0
    with tempfile.TemporaryDirectory(prefix="hanlin-bench-") as tmp:
        work = Path(tmp)
        os.environ["HANLIN_HOME"] = str(work / "home0")
        path = write_gguf_file(work / FILE, args.size_mb * 1_000_000)
        size = path.stat().st_size
        curl_t, pull_t = throughput(path, work, args.runs)
        within, drops = resent_within_one_pull(path, work)
        across, kept = resent_across_two_pulls(path, work)

    mb = size / 1e6
    print(
        f"\nPull throughput, {mb:.0f} MB GGUF from a local fake Hub, {args.runs} runs each"
        f" ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f});"
        " the pull includes HEAD, sha256 and the GGUF check"
    )
    print(f"{'':20} {'best MB/s':>10} {'median MB/s':>12} {'vs curl':>8} {'CPU s/GB':>9}")
    for name, (best, median, cpu) in (("curl -o (baseline)", curl_t), ("hanlin pull", pull_t)):
        print(
            f"{name:20} {mb / best:10.1f} {mb / median:12.1f}"
            f" {curl_t[0] / best:7.2f}x {cpu / (size / 1e9):9.2f}"
        )
    print(f"(median ratio: {curl_t[1] / pull_t[1]:.2f}x)")
    print("\nBytes sent twice after an interruption at 50 %  (target: <= a few MiB)")
    print(f"{'dropped connection, one pull':34} {within / _MiB:8.2f} MiB  ({drops} drop)")
    print(
        f"{'SIGKILL + rerun, two pulls':34} {across / _MiB:8.2f} MiB  "
        f"(kept {kept / _MiB:.0f} of {size / _MiB:.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
