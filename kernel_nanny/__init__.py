"""kernel-nanny: run Jupyter kernels under supervision and manage them from anywhere.

The public API is what this module exports; everything else may change. Names are
imported on first use (PEP 562), so a process that needs one part (a nanny, say)
does not pay for the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:  # the static view of the lazy names below
    from ._exceptions import (
        AmbiguousKernel,
        AuthenticationFailed,
        ClientClosed,
        ConfigError,
        ConnectionInfoError,
        DaemonAlreadyRunning,
        DaemonNotRunning,
        DaemonUnavailable,
        ExecutionBusy,
        IncompatibleProtocol,
        InvalidJSON,
        InvalidRequest,
        InvalidSignature,
        KernelDied,
        KernelError,
        KernelExecutableNotFound,
        KernelNannyError,
        KernelNotRunning,
        KernelTimeout,
        KernelTypeNotAllowed,
        LaunchError,
        MalformedMessage,
        MaxKernels,
        MissingDelimiter,
        NannyStopping,
        NannyUnavailable,
        NoSuchKernel,
        NoSuchKernelType,
        ProtocolError,
        ReplayedMessage,
        TooFewFrames,
        UnknownRequest,
    )
    from .client import (
        BlockingDaemonClient,
        BlockingKernelClient,
        BlockingManagerClient,
        DaemonClient,
        ExecutionResult,
        KernelClient,
        ManagerClient,
    )
    from .config import (
        JournalLimits,
        RestartPolicy,
    )
    from .discovery import (
        KernelFinder,
        KernelProvider,
    )
    from .execution import BlockingKernelExecution, KernelExecution
    from .launch import (
        KernelCommand,
        LaunchParams,
        LaunchResult,
        LocalKernelManager,
    )
    from .launch.request import LaunchRequest
    from .protocol import (
        ExitStatus,
        KernelManager,
        Message,
        Session,
    )
    from .protocol.manager import DaemonLaunch
    from .protocol.nanny import JournalEntry
    from .start import KernelLaunch, start_kernel

_LAZY = {
    "AmbiguousKernel": "._exceptions",
    "AuthenticationFailed": "._exceptions",
    "BlockingDaemonClient": ".client",
    "BlockingKernelClient": ".client",
    "BlockingKernelExecution": ".execution",
    "BlockingManagerClient": ".client",
    "ClientClosed": "._exceptions",
    "ConfigError": "._exceptions",
    "ConnectionInfoError": "._exceptions",
    "DaemonAlreadyRunning": "._exceptions",
    "DaemonLaunch": ".protocol.manager",
    "DaemonClient": ".client",
    "DaemonNotRunning": "._exceptions",
    "DaemonUnavailable": "._exceptions",
    "ExecutionBusy": "._exceptions",
    "ExecutionResult": ".client",
    "ExitStatus": ".protocol",
    "IncompatibleProtocol": "._exceptions",
    "InvalidJSON": "._exceptions",
    "InvalidRequest": "._exceptions",
    "InvalidSignature": "._exceptions",
    "JournalEntry": ".protocol.nanny",
    "JournalLimits": ".config",
    "KernelClient": ".client",
    "KernelCommand": ".launch",
    "KernelDied": "._exceptions",
    "KernelError": "._exceptions",
    "KernelExecutableNotFound": "._exceptions",
    "KernelExecution": ".execution",
    "KernelFinder": ".discovery",
    "KernelLaunch": ".start",
    "KernelManager": ".protocol",
    "KernelNannyError": "._exceptions",
    "KernelNotRunning": "._exceptions",
    "KernelProvider": ".discovery",
    "KernelTimeout": "._exceptions",
    "KernelTypeNotAllowed": "._exceptions",
    "LaunchError": "._exceptions",
    "LaunchParams": ".launch",
    "LaunchRequest": ".launch.request",
    "LaunchResult": ".launch",
    "LocalKernelManager": ".launch",
    "MalformedMessage": "._exceptions",
    "ManagerClient": ".client",
    "MaxKernels": "._exceptions",
    "Message": ".protocol",
    "MissingDelimiter": "._exceptions",
    "NannyStopping": "._exceptions",
    "NannyUnavailable": "._exceptions",
    "NoSuchKernel": "._exceptions",
    "NoSuchKernelType": "._exceptions",
    "ProtocolError": "._exceptions",
    "ReplayedMessage": "._exceptions",
    "RestartPolicy": ".config",
    "Session": ".protocol",
    "TooFewFrames": "._exceptions",
    "UnknownRequest": "._exceptions",
    "start_kernel": ".start",
}

__all__ = [
    "AmbiguousKernel",
    "AuthenticationFailed",
    "BlockingDaemonClient",
    "BlockingKernelClient",
    "BlockingKernelExecution",
    "BlockingManagerClient",
    "ClientClosed",
    "ConfigError",
    "ConnectionInfoError",
    "DaemonAlreadyRunning",
    "DaemonClient",
    "DaemonLaunch",
    "DaemonNotRunning",
    "DaemonUnavailable",
    "ExecutionBusy",
    "ExecutionResult",
    "ExitStatus",
    "IncompatibleProtocol",
    "InvalidJSON",
    "InvalidRequest",
    "InvalidSignature",
    "JournalEntry",
    "JournalLimits",
    "KernelClient",
    "KernelCommand",
    "KernelDied",
    "KernelError",
    "KernelExecutableNotFound",
    "KernelExecution",
    "KernelFinder",
    "KernelLaunch",
    "KernelManager",
    "KernelNannyError",
    "KernelNotRunning",
    "KernelProvider",
    "KernelTimeout",
    "KernelTypeNotAllowed",
    "LaunchError",
    "LaunchParams",
    "LaunchRequest",
    "LaunchResult",
    "LocalKernelManager",
    "MalformedMessage",
    "ManagerClient",
    "MaxKernels",
    "Message",
    "MissingDelimiter",
    "NannyStopping",
    "NannyUnavailable",
    "NoSuchKernel",
    "NoSuchKernelType",
    "ProtocolError",
    "ReplayedMessage",
    "RestartPolicy",
    "Session",
    "TooFewFrames",
    "UnknownRequest",
    "__version__",
    "start_kernel",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
