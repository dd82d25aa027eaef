"""What the completion-budget tests share: a real big prompt, a fixed speed, a cancel that
fires on its n-th check (deterministic budget decisions and interruptions)."""

from __future__ import annotations

import inspect

from hanlin.engine.completion.budget import SpeedMeter
from hanlin.engine.core.cancel import CancelToken


def big_file() -> tuple[str, str]:
    """110 real lines of asyncio/base_events.py, cut inside a method: (prefix, suffix)."""
    import asyncio.base_events as source_module

    text = "\n".join(inspect.getsource(source_module).split("\n")[120:230])
    cut = text.rindex("\n    def ") + len("\n    def ") + 4
    return text[:cut], text[cut:]


class FixedSpeed(SpeedMeter):
    """A speed meter that always says the same: the budget decisions become deterministic
    (3 ms a prompt token makes the ~900-token prompt miss a 500 ms budget)."""

    def __init__(self, prompt_ms: float = 3.0, decode_ms: float = 1.0) -> None:
        super().__init__(prompt_ms, decode_ms)

    def prompt_measured(self, tokens: int, seconds: float) -> None:
        pass

    def decode_measured(self, tokens: int, seconds: float) -> None:
        pass


class CancelAfter(CancelToken):
    """Cancelled from its n-th check on (a deterministic interruption of idle work)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.checks = limit, 0

    @property
    def cancelled(self) -> bool:  # type: ignore[override]
        self.checks += 1
        if self.checks >= self.limit:
            self.cancel("a real request")
        return super().cancelled
