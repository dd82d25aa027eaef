"""Time budgets a completion can keep: measured speeds, a small window, a parked KV cache.

Why: a cold 500-line file makes a ~2,500-token prompt; on one CPU thread that is several
seconds of prompt processing, so a request that only checks its budget between chunks
overruns it and then returns nothing (issue 8). To answer within `timeBudgetMs`
the engine must know, before it starts, what the prompt will cost, and have something
smaller to evaluate when the full prompt does not fit:

- `SpeedMeter` keeps milliseconds per prompt token (batched) and per generated token,
  measured on this machine and model as requests run: the median of the latest
  measurements, so one chunk that another process (or a suspended editor) stretched
  tenfold does not shrink the next windows to nothing, as a running average would;
- `window_limits` gives the prompt limits of the "small window": the lines nearest the
  cursor only, no other files, sized to a token cap;
- `KvPark` copies sequence 0's KV cells out (`llama_state_seq_get_data`) and back
  (`llama_state_seq_set_data`), so that answering from the small window does not throw
  away the part of the full prompt already evaluated: the background evaluation and the
  next request continue from there instead of starting over.
"""

from __future__ import annotations

import ctypes
import statistics
import threading
from collections import deque
from dataclasses import dataclass, replace

import llama_cpp

from hanlin.engine.completion.fim import PromptLimits

__all__ = ["KvPark", "SpeedMeter", "window_limits"]

#: lines before the cursor the small window starts with (halved until it fits its cap)
WINDOW_PREFIX_LINES = 48
#: lines after the cursor in the small window
WINDOW_SUFFIX_LINES = 8
#: measurements the medians are taken over (the speed follows a machine that got busier
#: within a few requests, and ignores a few outliers)
SPEED_SAMPLES = 9


@dataclass
class SpeedMeter:
    """Prompt and generation speed (ms per token), medians of the latest measurements;
    None until measured."""

    prompt_ms_per_token: float | None = None
    decode_ms_per_token: float | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._prompt: deque[float] = deque(maxlen=SPEED_SAMPLES)
        self._decode: deque[float] = deque(maxlen=SPEED_SAMPLES)

    def prompt_measured(self, tokens: int, seconds: float) -> None:
        """One batch of `tokens` prompt tokens took `seconds` (batches under 8 are too noisy)."""
        if tokens >= 8 and seconds > 0:
            with self._lock:
                self._prompt.append(seconds * 1000 / tokens)
                self.prompt_ms_per_token = statistics.median(self._prompt)

    def decode_measured(self, tokens: int, seconds: float) -> None:
        if tokens > 0 and seconds > 0:
            with self._lock:
                self._decode.append(seconds * 1000 / tokens)
                self.decode_ms_per_token = statistics.median(self._decode)

    def prompt_ms(self, tokens: int) -> float | None:
        """Estimated milliseconds to evaluate `tokens` prompt tokens (None: not measured yet)."""
        per = self.prompt_ms_per_token
        return None if per is None else per * tokens

    def tokens_within(self, ms: float, default: int) -> int:
        """How many prompt tokens fit in `ms` (`default` before anything was measured)."""
        per = self.prompt_ms_per_token
        if per is None or per <= 0:
            return default
        return max(0, int(ms / per))


def window_limits(limits: PromptLimits, prefix_lines: int = WINDOW_PREFIX_LINES) -> PromptLimits:
    """The small window's prompt limits: the lines nearest the cursor, no other files.

    `prefix_step=1` keeps exactly the nearest lines (the step that keeps a long window
    stable while typing would cost most of a small one).
    """
    prefix_lines = max(1, min(limits.prefix_lines, prefix_lines))
    return replace(
        limits,
        prefix_lines=prefix_lines,
        prefix_step=1,
        prefix_chars=min(limits.prefix_chars, prefix_lines * 120),
        prefix_chars_step=1,
        suffix_lines=min(limits.suffix_lines, WINDOW_SUFFIX_LINES),
        suffix_chars=min(limits.suffix_chars, WINDOW_SUFFIX_LINES * 120),
        context_chars=0,
    )


class KvPark:
    """Sequence 0's KV cells and token record, copied out so they can be put back.

    Call with the model's lock held. `take` copies (the cache is left as it was);
    `restore` clears sequence 0 and writes the copy back.
    """

    def __init__(self, session: object) -> None:
        self.session = session
        self.tokens: list[int] = []
        self._buf: ctypes.Array[ctypes.c_ubyte] | None = None
        self._size = 0

    @property
    def held(self) -> int:
        """How many tokens are parked."""
        return len(self.tokens) if self._buf is not None else 0

    def take(self) -> bool:
        session = self.session
        tokens: list[int] = session.tokens  # type: ignore[attr-defined]
        if not tokens:
            return False
        ctx = session.ctx  # type: ignore[attr-defined]
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        if size <= 0:
            return False
        buf = (ctypes.c_ubyte * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        if written <= 0:
            return False
        self._buf, self._size, self.tokens = buf, written, list(tokens)
        return True

    def restore(self) -> bool:
        """Put the parked cells back; False (and an empty cache) if llama.cpp refused."""
        session = self.session
        if self._buf is None:
            return False
        session.reset()  # type: ignore[attr-defined]
        read = llama_cpp.llama_state_seq_set_data(
            session.ctx,
            self._buf,
            self._size,
            0,  # type: ignore[attr-defined]
        )
        ok = read > 0
        if ok:
            session.tokens = list(self.tokens)  # type: ignore[attr-defined]
        else:
            session.reset()  # type: ignore[attr-defined]
        self._buf = None
        return ok
