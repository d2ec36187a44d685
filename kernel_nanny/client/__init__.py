"""Clients: the Jupyter messaging client and the nanny manager client (async and blocking)."""

from .blocking import BlockingKernelClient
from .kernel import ExecutionResult, KernelClient
from .manager import BlockingManagerClient, ManagerClient

__all__ = ["BlockingKernelClient", "BlockingManagerClient", "ExecutionResult", "KernelClient", "ManagerClient"]
