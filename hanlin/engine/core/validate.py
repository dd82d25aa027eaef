"""Type checks for values read from TOML and JSON, worded the same for every file.

Why: the catalog, settings.toml and the editors' settings are all read by hand-written
validators (small, with messages that name the file and the key: a schema library would
word them for programmers). They share the two rules that are easy to get wrong alone:
`True` is an `int` to Python but never a number to a user, and a type is named in words.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_type", "is_of_type"]

Types = type | tuple[type, ...]

_NAMES = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def is_of_type(value: Any, types: Types) -> bool:
    """isinstance, except that a bool passes only where `bool` itself is listed."""
    listed = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in listed
    return isinstance(value, listed)


def describe_type(types: Types) -> str:
    """`(int, float)` -> "a whole number or a number"; for messages."""
    listed = types if isinstance(types, tuple) else (types,)
    return " or ".join(_NAMES.get(t, t.__name__) for t in listed)
