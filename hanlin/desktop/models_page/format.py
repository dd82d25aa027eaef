"""Human-readable sizes, speeds and durations for the models page.

The numbers are formatted by the engine's one formatter set (`engine.core.units`); this
module only adds the page's wording ("—" for an unknown size, "left" after an ETA).
"""

from __future__ import annotations

from hanlin.engine.core.units import format_bytes, format_duration, format_rate

__all__ = ["human_bytes", "human_eta", "human_rate", "percent"]


def human_bytes(n: float | None) -> str:
    """1536 -> "1.5 KB"; "—" when unknown."""
    return format_bytes(n, unknown="—")


def human_rate(bytes_per_s: float | None) -> str:
    """Speed, short enough for a table cell: "40 MB/s", "3.1 MB/s", "850 KB/s"."""
    return format_rate(bytes_per_s)


def human_eta(seconds: float | None) -> str:
    """Seconds left as "1:05 left" / "1:02:03 left"; empty when unknown."""
    text = format_duration(seconds)
    return f"{text} left" if text else ""


def percent(done: float, total: float | None) -> int | None:
    """Whole percent 0..100, or None when the total is unknown."""
    if not total or total <= 0:
        return None
    return max(0, min(100, int(done * 100 // total)))
