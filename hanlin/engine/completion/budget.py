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
  next request continue from there instead of starting over;
- `WindowShelf` keeps the small windows of the last few places the user typed in (a few
  MB each), so that going back to a file re-reads only what changed there since, not its
  whole window: typing in two files in turn cost a cold window (~150 tokens, 0.5-1 s at
  the shaped 0.5B) at every switch.
"""

from __future__ import annotations

import ctypes
import statistics
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

import llama_cpp

from hanlin.engine.completion.fim import PromptLimits
from hanlin.engine.completion.kv_shift import plan_shift

__all__ = ["KvPark", "SpeedMeter", "WindowShelf", "window_limits"]

#: lines before the cursor the small window starts with (halved until it fits its cap)
WINDOW_PREFIX_LINES = 48
#: lines after the cursor in the widest small window (a narrower one has fewer, in step
#: with its prefix lines: in a FIM prompt every keystroke evaluates the suffix again, so
#: on a 1.5B model 8 suffix lines alone, ~100 tokens, overran a 1.5 s budget twofold)
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
    stable while typing would cost most of a small one). The suffix narrows with the
    prefix: 8 lines with 48, 4 with 24, 2 with 12, and at least the rest of the cursor's
    line.
    """
    prefix_lines = max(1, min(limits.prefix_lines, prefix_lines))
    scaled = -(-WINDOW_SUFFIX_LINES * prefix_lines // WINDOW_PREFIX_LINES)
    # the first suffix "line" is the rest of the cursor's line: always kept
    suffix_lines = min(limits.suffix_lines, max(1, min(WINDOW_SUFFIX_LINES, scaled)))
    return replace(
        limits,
        prefix_lines=prefix_lines,
        prefix_step=1,
        prefix_chars=min(limits.prefix_chars, prefix_lines * 120),
        prefix_chars_step=1,
        suffix_lines=suffix_lines,
        suffix_chars=min(limits.suffix_chars, suffix_lines * 120),
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

    @property
    def nbytes(self) -> int:
        """The size of the parked cells."""
        return self._size if self._buf is not None else 0

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


class WindowShelf:
    """The KV cells of the small windows of the last few files, to put one back.

    `shelve(session, key)` copies the cache's cells as they are (call with the model's
    lock held) under `key` (the file: one window per file, the newest); `take_best(tokens,
    than, min_chunk)` removes and returns the window that holds the most of `tokens` (a
    common prefix plus runs that `kv_shift` can move into place) if that is more than
    `than` (what the cache already holds of them), else None.
    At most `capacity` windows and `max_bytes` of cells are kept; the least recently
    shelved go first.
    """

    def __init__(self, capacity: int = 4, max_bytes: int = 64 << 20) -> None:
        self.capacity = max(0, capacity)
        self.max_bytes = max_bytes
        self._parks: list[tuple[str, KvPark]] = []

    def __len__(self) -> int:
        return len(self._parks)

    def shelve(self, session: object, key: str) -> bool:
        if self.capacity == 0:
            return False
        park = KvPark(session)
        if not park.take() or park.nbytes > self.max_bytes:
            return False
        parks = [(k, p) for k, p in self._parks if k != key]
        parks.insert(0, (key, park))
        total = 0
        for i, (_, p) in enumerate(parks):
            total += p.nbytes
            if i >= self.capacity or total > self.max_bytes:
                del parks[i:]
                break
        self._parks = parks
        return True

    def _best(self, tokens: Sequence[int], min_chunk: int) -> tuple[int, int]:
        best, best_kept = -1, 0
        for i, (_, park) in enumerate(self._parks):
            kept = plan_shift(park.tokens, tokens, min_chunk).kept
            if kept > best_kept:
                best, best_kept = i, kept
        return best, best_kept

    def best_kept(self, tokens: Sequence[int], min_chunk: int) -> int:
        """How many of `tokens` the best shelved window holds (in place or shifted)."""
        return self._best(tokens, min_chunk)[1]

    def take_best(self, tokens: Sequence[int], than: int, min_chunk: int) -> KvPark | None:
        """The shelved window holding the most of `tokens` (in place or shifted by
        `min_chunk`-token runs), removed from the shelf, if it holds more than `than`."""
        best, kept = self._best(tokens, min_chunk)
        return self._parks.pop(best)[1] if best >= 0 and kept > than else None

    def clear(self) -> None:
        self._parks.clear()
