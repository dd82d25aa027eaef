"""initialize / initialized / configuration changes / shutdown.

Settings arrive as `initializationOptions` and are then refreshed from the
client's `workspace/configuration` (section `hanlin`) when it can answer that,
on start and on every `workspace/didChangeConfiguration`. Loading the model
starts only after `initialized`, in the background.
"""

from __future__ import annotations

import logging
from pathlib import PurePath
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from hanlin.engine.completion.context_ring import ContextRing
from hanlin.lsp_server.config import SECTION, SettingsFileWatcher, parse_config
from hanlin.lsp_server.documents import DocumentStore
from hanlin.lsp_server.server import HanlinLanguageServer

__all__ = ["register"]

log = logging.getLogger(__name__)


def _client_pulls_configuration(ls: HanlinLanguageServer) -> bool:
    caps = ls.client_capabilities
    return bool(caps and caps.workspace and caps.workspace.configuration)


async def _pull_configuration(ls: HanlinLanguageServer) -> Any:
    """The client's `hanlin` section, or None if it has none / cannot say."""
    if not _client_pulls_configuration(ls):
        return None
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        )
    except Exception as exc:
        log.warning("workspace/configuration failed: %s", exc)
        return None
    return result[0] if result else None


def _repo_name(params: types.InitializeParams) -> str | None:
    if params.workspace_folders:
        return params.workspace_folders[0].name
    uri = params.root_uri
    if uri:
        path = to_fs_path(uri)
        return PurePath(path).name if path else None
    return params.root_path and PurePath(params.root_path).name


def register(server: HanlinLanguageServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: HanlinLanguageServer, params: types.InitializeParams) -> None:
        ls.init_options = params.initialization_options
        ls.client_config = parse_config(params.initialization_options)
        ls.documents = DocumentStore(str(ls.protocol.workspace.position_encoding or "utf-16"))
        ls.settings_watcher = SettingsFileWatcher()
        ls.context_ring = ContextRing()
        ls.repo_name = _repo_name(params)
        client = params.client_info.name if params.client_info else "an unknown client"
        ls.connect_client_log()  # from here on, log lines go to the client's log
        log.info(
            "hanlin-lsp %s: initialize from %s; settings %s", ls.version, client, ls.client_config
        )

    @server.feature(types.INITIALIZED)
    async def initialized(ls: HanlinLanguageServer, params: types.InitializedParams) -> None:
        pulled = await _pull_configuration(ls)
        if pulled is not None:
            ls.client_config = parse_config(pulled, parse_config(ls.init_options))
        ls.apply_settings()
        ls.spawn(ls.poll_settings_forever())

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: HanlinLanguageServer, params: types.DidChangeConfigurationParams
    ) -> None:
        base = parse_config(ls.init_options)
        pulled = await _pull_configuration(ls)
        if pulled is None:
            pulled = params.settings  # push-style clients send the object itself
        ls.client_config = parse_config(pulled, base)
        log.info("settings changed: %s", ls.client_config)
        ls.apply_settings()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: HanlinLanguageServer, params: None) -> None:
        for token in list(ls.inflight.values()):
            token.cancel("shutting down")
        ls.flush_stats()
