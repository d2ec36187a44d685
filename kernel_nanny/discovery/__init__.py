"""Kernel discovery: the finder, the provider interface, and the built-in providers."""

from .daemon_provider import DaemonProvider
from .finder import ENTRY_POINT_GROUP, KernelFinder
from .provider import KernelProvider

__all__ = ["ENTRY_POINT_GROUP", "DaemonProvider", "KernelFinder", "KernelProvider"]
