"""Human-readable sizes, speeds and durations for the models page.

Kept apart from the widgets so the table model, the detail pane and the tests
format numbers the same way.
"""

from __future__ import annotations

_UNITS = ("B", "KB", "MB", "GB", "TB")


def human_bytes(n: float | None) -> str:
    """1536 -> "1.5 KB"; decimal units, as disk vendors and the Hub show them."""
    if n is None:
        return "—"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - loop always returns


def human_rate(bytes_per_s: float | None) -> str:
    """Speed, short enough for a table cell: "40 MB/s", "3.1 MB/s", "850 KB/s"."""
    if not bytes_per_s or bytes_per_s <= 0:
        return ""
    text = human_bytes(bytes_per_s)
    number, _, unit = text.partition(" ")
    if "." in number and float(number) >= 10:
        text = f"{float(number):.0f} {unit}"
    return f"{text}/s"


def human_eta(seconds: float | None) -> str:
    """Seconds left as "1:05 left" / "1:02:03 left"; empty when unknown."""
    if seconds is None or seconds < 0 or seconds != seconds:  # NaN check
        return ""
    s = round(seconds)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d} left"
    return f"{minutes}:{secs:02d} left"


def percent(done: float, total: float | None) -> int | None:
    """Whole percent 0..100, or None when the total is unknown."""
    if not total or total <= 0:
        return None
    return max(0, min(100, int(done * 100 // total)))
