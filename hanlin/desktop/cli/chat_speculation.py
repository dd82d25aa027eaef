"""`hanlin chat`'s speculative decoding: the per-model settings, the flags, the stats part.

Why a module beside chat_cmd.py: what speculation a chat uses is decided in one place
from `[models."ID"] speculative / draft_model` and the `--no-speculative` /
`--draft-model ID` flags (a flag beats the setting), and the draft model it may load
must be closed with the main model. A draft model named in the settings that cannot
draft (not installed, another tokenizer) is a warning — the chat goes on without it —
while one asked for with `--draft-model` is an error, as any other bad argument.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hanlin.engine.core.settings import load_settings

__all__ = ["check_draft_flag", "speculation_for", "speculation_part"]


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def check_draft_flag(args: argparse.Namespace) -> None:
    """A `--draft-model` that names nothing installed fails before any model loads."""
    ref = getattr(args, "draft_model", None)
    if not ref or getattr(args, "no_speculative", False):
        return
    from hanlin.engine.core.errors import ModelFileError, ModelNotInstalledError, UnknownModelError
    from hanlin.engine.runtime.draft_model import DraftModelError
    from hanlin.engine.store.model_store import ModelStore

    try:
        ModelStore().resolve(ref)
    except (UnknownModelError, ModelNotInstalledError, ModelFileError) as exc:
        raise DraftModelError(
            f"The draft model {ref!r} is not available: {exc.message}", exc.hint
        ) from None


def speculation_for(model: Any, model_id: str, args: argparse.Namespace) -> tuple[bool | None, Any]:
    """(the `speculative` switch for stream_chat, a loaded draft model or None)."""
    from hanlin.engine.runtime.draft_model import DraftModelError, load_draft_model

    per_model = load_settings().settings.model(model_id)
    enabled: bool | None = per_model.speculative
    if getattr(args, "no_speculative", False):
        enabled = False
    flag = getattr(args, "draft_model", None)
    ref = flag or per_model.draft_model
    if enabled is False or not ref:
        return enabled, None
    try:
        draft = load_draft_model(model, ref)
    except DraftModelError as exc:
        if flag:
            raise
        _err(f"warning: {exc.message}; answering without a draft model ({exc.hint})")
        return enabled, None
    _err(f"draft model {draft.model_id} loaded for speculative decoding")
    return enabled, draft


def speculation_part(stats: Any) -> str | None:
    """`drafts 83% accepted (120/145)` for the stats line; None when nothing was drafted."""
    drafted = getattr(stats, "drafted_tokens", 0) or 0
    if not drafted:
        return None
    accepted = getattr(stats, "accepted_tokens", 0) or 0
    return f"drafts {accepted / drafted:.0%} accepted ({accepted}/{drafted})"
