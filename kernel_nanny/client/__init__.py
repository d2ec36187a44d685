"""Clients: the Jupyter messaging client, the nanny manager client, the daemon client (async and blocking)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .._exceptions import DaemonNotRunning
    from .blocking import BlockingKernelClient
    from .daemon import BlockingDaemonClient, DaemonClient
    from .kernel import ExecutionResult, KernelClient
    from .manager import BlockingManagerClient, ManagerClient

__all__ = [
    "BlockingDaemonClient",
    "BlockingKernelClient",
    "BlockingManagerClient",
    "DaemonClient",
    "DaemonNotRunning",
    "ExecutionResult",
    "KernelClient",
    "ManagerClient",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BlockingDaemonClient": ".daemon",
        "BlockingKernelClient": ".blocking",
        "BlockingManagerClient": ".manager",
        "DaemonClient": ".daemon",
        "DaemonNotRunning": ".._exceptions",  # where every error lives; kept here for old imports
        "ExecutionResult": ".kernel",
        "KernelClient": ".kernel",
        "ManagerClient": ".manager",
    },
)
