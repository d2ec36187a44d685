"""The nanny: one supervisor process per kernel (see :mod:`kernel_nanny.nanny.core`)."""

from .core import DEFAULT_HEARTBEAT_INTERVAL, KernelNanny, NannyState

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "KernelNanny", "NannyState"]
