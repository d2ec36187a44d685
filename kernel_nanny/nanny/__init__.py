"""The nanny: one supervisor process per kernel (see :mod:`kernel_nanny.nanny.core`).

Lazy (PEP 562): ``python -m kernel_nanny.nanny`` imports this package first,
and the nanny must be able to start its kernel before it imports the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .core import DEFAULT_HEARTBEAT_INTERVAL, KernelNanny, NannyState

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "KernelNanny", "NannyState"]

__getattr__, __dir__ = lazy_exports(
    __name__, {"DEFAULT_HEARTBEAT_INTERVAL": ".core", "KernelNanny": ".core", "NannyState": ".core"}
)
