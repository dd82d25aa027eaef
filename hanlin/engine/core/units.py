"""Sizes, speeds, durations and parameter counts, written and read one way everywhere.

Why one module: the CLI, `hanlin doctor`, the Models page and the fit verdict all show
byte counts; when each formats its own, the same file reads "1.50 GB" in one place and
"1.5 GB" in another. Decimal units (KB = 1000 bytes), as disk vendors and the Hub show them.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "KiB",
    "MiB",
    "format_bytes",
    "format_duration",
    "format_rate",
    "parse_parameter_count",
]

KiB = 1 << 10
MiB = 1 << 20

_UNITS = ("B", "KB", "MB", "GB", "TB")


def format_bytes(n: float | None, *, unknown: str = "unknown") -> str:
    """1536 -> "1.5 KB", 2.3e9 -> "2.3 GB", 250e6 -> "250 MB"; `unknown` for None."""
    if n is None:
        return unknown
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable: the last unit always returns")


def format_rate(bytes_per_s: float | None) -> str:
    """Speed, short enough for a table cell: "40 MB/s", "3.1 MB/s", "850 KB/s"; "" if unknown."""
    if not bytes_per_s or bytes_per_s <= 0:
        return ""
    number, _, unit = format_bytes(bytes_per_s).partition(" ")
    if "." in number and float(number) >= 10:
        number = f"{float(number):.0f}"
    return f"{number} {unit}/s"


def format_duration(seconds: float | None, *, unknown: str = "") -> str:
    """Seconds as "1:05" or "1:02:03"; `unknown` for None, negative or NaN."""
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return unknown
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_PARAMETERS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMBT])", re.IGNORECASE)
_SCALE = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def parse_parameter_count(text: str | None) -> float | None:
    """'1.5B' -> 1.5e9, '30B-A3B' -> 30e9 (all experts are loaded), '135M' -> 1.35e8."""
    match = _PARAMETERS.match(text or "")
    if not match:
        return None
    return float(match.group(1)) * _SCALE[match.group(2).upper()]
