"""Lazy re-exports (PEP 562): a package names its public API without importing it all.

A nanny process needs a fraction of the package; importing the rest (the
blocking clients, the daemon client, thread machinery) would add tens of
milliseconds to every kernel start.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose names live in ``exports`` (name -> submodule)."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | {n for n in namespace if not n.startswith("_")})

    return __getattr__, __dir__
