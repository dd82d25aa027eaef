"""hanlin-lsp driven by the npm `vscode-languageserver-protocol` client (node).

That library (with `vscode-jsonrpc`) is what VS Code's `vscode-languageclient`
is built on, so this checks our messages against a real TypeScript client:
initialize, incremental didChange, inlineCompletion with the real SmolLM2
model, and the acceptance command. The node packages are installed on first
run into tests/e2e/node/node_modules (gitignored); the test is skipped only
when `node` itself is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.commands import HANLIN_LSP

NODE_DIR = Path(__file__).resolve().parent / "node"
ROOT = NODE_DIR.parents[2]


def _ensure_node_modules() -> None:
    if (NODE_DIR / "node_modules" / "vscode-languageserver-protocol").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("node is installed but npm is not: install npm to run this test")
    command = [npm, "ci" if (NODE_DIR / "package-lock.json").exists() else "install"]
    subprocess.run([*command, "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_vscode_protocol_client_gets_inline_completions(
    smollm2_path: Path, hanlin_home: Path
) -> None:
    _ensure_node_modules()
    env = dict(os.environ, HANLIN_HOME=str(hanlin_home))
    proc = subprocess.run(
        [
            "node",
            str(NODE_DIR / "client.mjs"),
            str(smollm2_path),
            *HANLIN_LSP,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    caps = report["capabilities"]
    assert caps["inlineCompletionProvider"] is not None
    assert report["syncKindIncremental"] is True
    assert report["serverInfo"]["name"] == "hanlin-lsp"
    assert report["state"] == "ready"

    # InlineCompletionList shape as the TypeScript types define it
    result = report["result"]
    assert isinstance(result, dict) and isinstance(result["items"], list)
    assert len(report["items"]) == 1
    item = report["items"][0]
    assert isinstance(item["insertText"], str) and item["insertText"].strip()
    assert item["range"]["start"] == {"line": 1, "character": 12}
    assert item["command"]["command"] == "hanlin.acceptCompletion"
    assert report["accepted"]["total"]["accepted"] == 1
    assert report["accepted"]["total"]["chars_accepted"] == len(item["insertText"])

    # the edit reached the server: the request saw "return x"
    assert report["requests"] and report["requests"][-1]["promptTokens"] > 0
    # loading was reported with $/progress (begin ... end) and hanlin/status
    assert report["observed"]["progress"][0] == "begin"
    assert report["observed"]["progress"][-1] == "end"
    assert "ready" in report["observed"]["status"]
    assert report["exitCode"] == 0
