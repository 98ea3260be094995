"""Names a package re-exports but loads on first use (PEP 562), so importing it stays cheap and acyclic.

`import labkit.plots` must not import the training loop, yet `from labkit import train` must work: the
package's __init__ maps each public name to the submodule that defines it, and `__getattr__` imports that
submodule only when the name is asked for.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for `package`, where `exports` maps a public name to its submodule (relative)."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
