"""Clients: the Jupyter messaging client (async and blocking)."""

from .blocking import BlockingKernelClient
from .kernel import ExecutionResult, KernelClient

__all__ = ["BlockingKernelClient", "ExecutionResult", "KernelClient"]
