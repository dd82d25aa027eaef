"""Package surfaces that cost nothing until used (PEP 562 module `__getattr__`).

Why: a package `__init__` that imports its modules eagerly would make
`import hanlin.engine.runtime.hardware` load llama.cpp (through `runtime.loader`), and the
desktop window must open without it. Each sub-package therefore names its public surface
here, as {module: [names]}, and a name is imported from its module on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, surface: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """(`__all__`, `__getattr__`, `__dir__`) for `package` exporting `surface`.

    A module's own name in its list exports the module itself (`"paths": ["paths"]`).
    """
    where = {name: module for module, names in surface.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(f"{package}.{module}")
        value = loaded if name == module else getattr(loaded, name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(where)

    return sorted(where), __getattr__, __dir__
