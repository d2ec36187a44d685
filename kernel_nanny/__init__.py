"""kernel-nanny: run Jupyter kernels under supervision and manage them from anywhere.

The public API is what this module exports; everything else may change.
"""

from ._exceptions import (
    ClientClosed,
    InvalidJSON,
    InvalidSignature,
    KernelDied,
    KernelError,
    KernelNannyError,
    KernelTimeout,
    LaunchError,
    MalformedMessage,
    MissingDelimiter,
    NannyUnavailable,
    NoSuchKernelType,
    ProtocolError,
    ReplayedMessage,
    TooFewFrames,
)
from ._version import __version__
from .client import BlockingKernelClient, BlockingManagerClient, ExecutionResult, KernelClient, ManagerClient
from .config import RestartPolicy
from .discovery import KernelFinder, KernelProvider
from .launch import KernelCommand, LaunchParams, LaunchResult, LocalKernelManager
from .protocol import ExitStatus, KernelManager, Message, Session

__all__ = [
    "BlockingKernelClient",
    "BlockingManagerClient",
    "ClientClosed",
    "ExecutionResult",
    "ExitStatus",
    "InvalidJSON",
    "InvalidSignature",
    "KernelClient",
    "KernelCommand",
    "KernelDied",
    "KernelError",
    "KernelFinder",
    "KernelManager",
    "KernelNannyError",
    "KernelProvider",
    "KernelTimeout",
    "LaunchError",
    "LaunchParams",
    "LaunchResult",
    "LocalKernelManager",
    "MalformedMessage",
    "ManagerClient",
    "Message",
    "MissingDelimiter",
    "NannyUnavailable",
    "NoSuchKernelType",
    "ProtocolError",
    "ReplayedMessage",
    "RestartPolicy",
    "Session",
    "TooFewFrames",
    "__version__",
]
