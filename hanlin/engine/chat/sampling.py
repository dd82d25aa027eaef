"""Which sampling a reply uses: the user's setting, the catalog entry, the family, defaults.

Why one place: the desktop app, `hanlin chat` and the engine each used to fill in a
complete `Sampling()` of their own, whose every value then beat the family's
recommendation, so Qwen3 with thinking off never ran at the values its model card gives
for that mode. The levels, highest first:

1. the user's explicit setting: the desktop's per-model settings (`[models."ID"]` in
   settings.toml, edited in the model's settings dialog); `hanlin chat` reads the same
   table and puts `--temperature` / `--max-tokens` on top;
2. the catalog entry's `sampling` (a preset or an inline table), whose `no_think` table
   replaces its values while thinking is off;
3. the family's recommendation for this reply's mode (engine/models/families.py);
4. `DEFAULT_SAMPLING`.

Front ends stack 1 over 2 with `Sampling.over` and hand the result to `stream_chat`,
which knows the family and whether the reply thinks, and adds 3 and 4 here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hanlin.engine.models.catalog import SAMPLING_KEYS, Sampling
from hanlin.engine.models.families import FamilyBehavior

__all__ = ["DEFAULT_SAMPLING", "resolve_sampling", "user_sampling"]

#: what a reply uses where no level says anything
DEFAULT_SAMPLING = Sampling(
    temperature=0.7, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0, max_tokens=2048
)


def user_sampling(values: Mapping[str, Any]) -> Sampling:
    """The user's level from per-model settings (`ModelSettings.to_dict()`); other keys ignored."""
    return Sampling(**{k: values[k] for k in SAMPLING_KEYS if values.get(k) is not None})


def resolve_sampling(
    sampling: Sampling | None, behavior: FamilyBehavior, thinking: bool
) -> Sampling:
    """Every value for one reply: `sampling` (user over catalog) > family > defaults.

    `thinking` is the user's switch; whether the reply really thinks is the family's call
    (`FamilyBehavior.thinks`: DeepSeek-R1 always does, non-reasoning models never).
    """
    thinks = behavior.thinks(thinking)
    values: dict[str, Any] = DEFAULT_SAMPLING.given()
    values.update(
        (k, v) for k, v in behavior.recommended_sampling(thinking).items() if k in SAMPLING_KEYS
    )
    if sampling is not None:
        values.update(sampling.for_mode(thinks).given())
    return Sampling(**values)
