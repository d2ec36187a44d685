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
        AuthenticationFailed,
        ClientClosed,
        ConfigError,
        DaemonUnavailable,
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
    from .client import (
        BlockingDaemonClient,
        BlockingKernelClient,
        BlockingManagerClient,
        DaemonClient,
        DaemonNotRunning,
        ExecutionResult,
        KernelClient,
        ManagerClient,
    )
    from .config import (
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
    from .protocol import (
        ExitStatus,
        KernelManager,
        Message,
        Session,
    )

_LAZY = {
    "AuthenticationFailed": "._exceptions",
    "BlockingDaemonClient": ".client",
    "BlockingKernelClient": ".client",
    "BlockingKernelExecution": ".execution",
    "BlockingManagerClient": ".client",
    "ClientClosed": "._exceptions",
    "ConfigError": "._exceptions",
    "DaemonClient": ".client",
    "DaemonNotRunning": ".client",
    "DaemonUnavailable": "._exceptions",
    "ExecutionResult": ".client",
    "ExitStatus": ".protocol",
    "InvalidJSON": "._exceptions",
    "InvalidSignature": "._exceptions",
    "KernelClient": ".client",
    "KernelCommand": ".launch",
    "KernelDied": "._exceptions",
    "KernelError": "._exceptions",
    "KernelExecution": ".execution",
    "KernelFinder": ".discovery",
    "KernelManager": ".protocol",
    "KernelNannyError": "._exceptions",
    "KernelProvider": ".discovery",
    "KernelTimeout": "._exceptions",
    "LaunchError": "._exceptions",
    "LaunchParams": ".launch",
    "LaunchResult": ".launch",
    "LocalKernelManager": ".launch",
    "MalformedMessage": "._exceptions",
    "ManagerClient": ".client",
    "Message": ".protocol",
    "MissingDelimiter": "._exceptions",
    "NannyUnavailable": "._exceptions",
    "NoSuchKernelType": "._exceptions",
    "ProtocolError": "._exceptions",
    "ReplayedMessage": "._exceptions",
    "RestartPolicy": ".config",
    "Session": ".protocol",
    "TooFewFrames": "._exceptions",
}

__all__ = [
    "AuthenticationFailed",
    "BlockingDaemonClient",
    "BlockingKernelClient",
    "BlockingKernelExecution",
    "BlockingManagerClient",
    "ClientClosed",
    "ConfigError",
    "DaemonClient",
    "DaemonNotRunning",
    "DaemonUnavailable",
    "ExecutionResult",
    "ExitStatus",
    "InvalidJSON",
    "InvalidSignature",
    "KernelClient",
    "KernelCommand",
    "KernelDied",
    "KernelError",
    "KernelExecution",
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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
