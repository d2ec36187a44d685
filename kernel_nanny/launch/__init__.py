"""Local kernel processes: connection info and files, launch recipes, the local manager (and the
lifecycle it shares with the managers of providers that own their kernels, in ``base_manager``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ..paths import runtime_dir
    from .command import KernelCommand
    from .connection import new_connection_info, supports_curve, write_connection_file
    from .launcher import LaunchResult, launch_local
    from .manager import LocalKernelManager
    from .params import DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, LaunchParams

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "KernelCommand",
    "LaunchParams",
    "LaunchResult",
    "LocalKernelManager",
    "launch_local",
    "new_connection_info",
    "runtime_dir",
    "supports_curve",
    "write_connection_file",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_SHUTDOWN_TIMEOUT": ".params",
        "DEFAULT_STARTUP_TIMEOUT": ".params",
        "KernelCommand": ".command",
        "LaunchParams": ".params",
        "LaunchResult": ".launcher",
        "LocalKernelManager": ".manager",
        "launch_local": ".launcher",
        "new_connection_info": ".connection",
        "runtime_dir": "..paths",
        "supports_curve": ".connection",
        "write_connection_file": ".connection",
    },
)
