"""The chat's model choices for models on remote servers (`[[remote]]` in settings.toml).

Why apart from the controller: listing talks to the network (on the runner, never the
GUI thread), and a remote model needs a few decisions of its own — its id is
`NAME/MODEL`, its family (and so the thinking switch) is guessed from the model's
name, and it has no file.
"""

from __future__ import annotations

from pathlib import Path

from hanlin.desktop.chat.controller import ModelChoice
from hanlin.engine.core.errors import HanlinError
from hanlin.engine.core.settings import load_settings
from hanlin.engine.models.families import family_for
from hanlin.engine.remote.endpoint import RemoteTarget, guess_remote_family, split_remote_ref

__all__ = ["choice_for_ref", "remote_choices"]


def _choice(target: RemoteTarget) -> ModelChoice:
    family = guess_remote_family(target.model)
    behavior = family_for(family)
    return ModelChoice(
        id=target.ref,
        name=f"{target.model} · {target.endpoint.name} (remote)",
        family=family,
        path=Path(),
        thinking_switch=behavior.thinking_switch,
        reasoning=behavior.reasoning,
        entry=None,
        remote=target,
    )


def remote_choices() -> tuple[list[ModelChoice], list[str]]:
    """Every configured server's models, and one line per server that could not be listed."""
    remotes = load_settings().settings.remote
    if not remotes:  # nothing to ask: leave the HTTP client unimported (start-up)
        return [], []
    from hanlin.engine.remote.listing import list_remote_models

    choices: list[ModelChoice] = []
    problems: list[str] = []
    for listing in list_remote_models(remotes):
        if listing.error is not None:
            problems.append(f"{listing.name}: {listing.error}")
        choices.extend(_choice(t) for t in listing.targets())
    return choices, problems


def choice_for_ref(ref: str) -> ModelChoice | None:
    """A choice for `NAME/MODEL` of a configured server, listed or not (None otherwise)."""
    try:
        target = split_remote_ref(ref, load_settings().settings)
    except HanlinError:
        return None
    return _choice(target) if target is not None else None
