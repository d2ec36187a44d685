"""Kernel discovery: the finder, the provider interface, and the built-in providers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .daemon_provider import DaemonProvider
    from .finder import ENTRY_POINT_GROUP, KernelFinder
    from .provider import KernelProvider
    from .resolved import ResolvedKernel

__all__ = ["ENTRY_POINT_GROUP", "DaemonProvider", "KernelFinder", "KernelProvider", "ResolvedKernel"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ENTRY_POINT_GROUP": ".finder",
        "DaemonProvider": ".daemon_provider",
        "KernelFinder": ".finder",
        "KernelProvider": ".provider",
        "ResolvedKernel": ".resolved",
    },
)
