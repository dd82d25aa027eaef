"""Reading parameters of custom methods, which pygls hands over untyped.

Custom notifications (`textDocument/didShowCompletion`, ...) and command
arguments arrive as plain JSON values or pygls' attribute objects, depending
on the path they took; `field(obj, "a", "b")` reads either.
"""

from __future__ import annotations

from typing import Any

__all__ = ["field"]


def field(obj: Any, *keys: str) -> Any:
    """obj[keys[0]][keys[1]]..., for dicts, attrs objects and named tuples; None if absent."""
    for key in keys:
        if obj is None:
            return None
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list | tuple) and key.isdigit():
            index = int(key)
            obj = obj[index] if index < len(obj) else None
        else:
            obj = getattr(obj, key, None)
    return obj
