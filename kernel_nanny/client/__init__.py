"""Clients: the Jupyter messaging client and the nanny manager client (async and blocking)."""

from .blocking import BlockingKernelClient
from .daemon import BlockingDaemonClient, DaemonClient, DaemonNotRunning
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
