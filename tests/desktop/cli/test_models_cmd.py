"""`hanlin models` output in-process: the progress lines, and that bugs are not hidden.

The command-line behaviour end to end is in tests/e2e/test_cli_models.py; here the parts
that need a look inside: what one progress report prints, and that a fault in the fit
verdict, the hardware probe or the store surfaces as the bug it is (house rule 3) instead
of a listing with blanks or a pull that starts anyway.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from hanlin.desktop.cli import models_cmd
from hanlin.engine.core.cancel import Progress
from hanlin.engine.core.units import format_bytes
from hanlin.engine.models import fit
from hanlin.engine.runtime import hardware
from hanlin.engine.store.model_store import ModelStore
from tests.support.fake_hub import make_gguf


def _bug(*args: object, **kwargs: object) -> None:
    raise ZeroDivisionError("a bug")


def test_progress_lines_read_plainly_when_not_a_terminal() -> None:
    out = io.StringIO()
    printer = models_cmd.ProgressPrinter(out, "tiny", tty=False, line_interval=0.0)
    printer(Progress("download", 1_150_000_000, 2_300_000_000, "", 41_500_000, 75.0))
    printer(Progress("download", 2_300_000_000, 2_300_000_000, "", None, None))
    printer(Progress("verify", 0.0, 1.0, ""))
    assert out.getvalue().splitlines() == [
        "Pulling tiny",
        "tiny: 50.0% (1.1 GB/2.3 GB) at 42 MB/s, ETA 1:15",
        "tiny: 100.0% (2.3 GB/2.3 GB) at -- /s, ETA --:--",
        "Verifying tiny (size, sha256, GGUF header)…",
    ]


def test_progress_bar_on_a_terminal_is_redrawn_in_place() -> None:
    out = io.StringIO()
    printer = models_cmd.ProgressPrinter(out, "tiny", tty=True)
    printer(Progress("download", 250_000_000, 1_000_000_000, "", 3_100_000, 3725.0))
    text = out.getvalue()
    assert text.startswith("Pulling tiny\n\r[")
    assert "25.0%  250 MB/1.0 GB  3.1 MB/s  ETA 1:02:05" in text


def test_list_sizes_use_the_shared_byte_format(capsys: pytest.CaptureFixture[str]) -> None:
    entry = ModelStore().catalog.get("qwen3-4b-q4km")
    if entry.size_bytes:
        size = format_bytes(entry.size_bytes)
    else:
        size = "~" + format_bytes(fit.estimate_file_size(entry.parameters, entry.quantization))
    assert models_cmd.run(_args("list")) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("qwen3-4b-q4km "))
    assert f" {size} Q4_K_M " in row and size.lstrip("~")[0].isdigit(), row


def test_a_damaged_installed_file_is_still_listed(tmp_path: Path) -> None:
    path = tmp_path / "mine.gguf"
    path.write_bytes(make_gguf(40_000))
    store = ModelStore()
    store.import_file(path, model_id="mine")
    path.write_bytes(path.read_bytes()[:100])  # truncated after it was registered
    row = next(r for r in models_cmd.rows(store) if r["id"] == "mine")
    assert row["installed"] is True and row["fit"] is None and row["roles"] == ["chat"]


def test_a_bug_in_the_fit_verdict_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit, "fit_for_entry", _bug)
    with pytest.raises(ZeroDivisionError):
        models_cmd.rows(ModelStore())


def test_a_bug_in_the_hardware_probe_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "detect_hardware", _bug)
    with pytest.raises(ZeroDivisionError):
        models_cmd.rows(ModelStore())


def test_a_bug_in_reading_a_header_surfaces(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "mine.gguf"
    path.write_bytes(make_gguf(40_000))
    ModelStore().import_file(path, model_id="mine")
    monkeypatch.setattr(models_cmd, "read_gguf_info", _bug)
    with pytest.raises(ZeroDivisionError):
        models_cmd.rows(ModelStore())


def test_a_bug_in_the_size_estimate_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit, "estimate_file_size", _bug)
    with pytest.raises(ZeroDivisionError):
        models_cmd.run(_args("list"))


def test_a_bug_in_resolving_before_a_pull_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # were the bug hidden, the pull would start
    monkeypatch.setattr(ModelStore, "resolve", _bug)
    with pytest.raises(ZeroDivisionError):
        models_cmd.run(_args("pull", ref="qwen3-4b-q4km"))


def _args(action: str, **kw: object) -> argparse.Namespace:
    return argparse.Namespace(models_command=action, json=False, **kw)
