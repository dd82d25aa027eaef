"""The editor clients' settings mirror what the server reads (lsp_server/config.py)."""

from __future__ import annotations

import json
import re

from hanlin.lsp_server.config import CLIENT_ONLY_KEYS, DEFAULTS, SETTING_KEYS, parse_config
from tests.lsp_server.harness import ROOT

INSTALLERS = ROOT / "installers"


def test_vscode_settings_mirror_the_server() -> None:
    package = json.loads((INSTALLERS / "vscode" / "package.json").read_text(encoding="utf-8"))
    props = package["contributes"]["configuration"]["properties"]
    keys = {k.removeprefix("hanlin.") for k in props}
    assert keys - CLIENT_ONLY_KEYS == set(SETTING_KEYS)
    # the defaults the editor shows are the server's defaults
    for key, (field, _types) in SETTING_KEYS.items():
        default = props[f"hanlin.{key}"]["default"]
        expected = getattr(DEFAULTS, field)
        empty = expected is None and key in ("model", "endpoint")
        assert default == ("" if empty else expected), key
    # the extension passes exactly the server keys on
    source = (INSTALLERS / "vscode" / "src" / "extension.ts").read_text(encoding="utf-8")
    listed = set(
        re.findall(r'^\s+"(\w+)",$', source.split("SERVER_KEYS = [")[1].split("]")[0], re.M)
    )
    assert listed == set(SETTING_KEYS)
    assert package["dependencies"]["vscode-languageclient"].startswith("^10")


def test_vscode_paths_cannot_come_from_a_workspace() -> None:
    """A cloned repo's .vscode/settings.json must not pick the file llama.cpp parses or the
    program the extension starts: those settings are machine-scoped (user or remote
    settings only; `machine-overridable` would let the workspace override them)."""
    package = json.loads((INSTALLERS / "vscode" / "package.json").read_text(encoding="utf-8"))
    props = package["contributes"]["configuration"]["properties"]
    for key in ("hanlin.model", "hanlin.endpoint", "hanlin.serverCommand", "hanlin.serverArgs"):
        assert props[key].get("scope") in ("machine", "application"), key


def test_jetbrains_template_is_valid_and_parses() -> None:
    folder = INSTALLERS / "jetbrains" / "hanlin"
    template = json.loads((folder / "template.json").read_text(encoding="utf-8"))
    assert "hanlin-lsp" in template["programArgs"]["default"]
    assert any(m["languageId"] == "python" for m in template["fileTypeMappings"])
    init = json.loads((folder / "initializationOptions.json").read_text(encoding="utf-8"))
    settings = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
    assert parse_config(init) == parse_config(settings) == parse_config({"model": ""})
    schema = json.loads((folder / "settings.schema.json").read_text(encoding="utf-8"))
    assert set(schema["properties"]["hanlin"]["properties"]) == set(SETTING_KEYS)


def test_neovim_snippet_uses_inline_completion() -> None:
    lua = (INSTALLERS / "neovim" / "hanlin.lua").read_text(encoding="utf-8")
    assert "vim.lsp.config('hanlin'" in lua
    assert "vim.lsp.inline_completion.enable()" in lua
    assert "cmd = { 'hanlin-lsp' }" in lua
    # one settings table for both, so an empty `settings.hanlin.model` cannot override
    # the model given in init_options (the server pulls `settings` after `initialize`)
    assert "init_options = settings," in lua and "settings = { hanlin = settings }," in lua
    assert "model = ''" not in lua
    # 0.11 (no inline completion client): items with autotrigger, and a keymap
    assert "if vim.lsp.inline_completion then" in lua
    assert "vim.lsp.completion.enable(true, client.id, args.buf, { autotrigger = true })" in lua
