"""Per-launch options, and the start-up and shutdown defaults (light: the nanny reads them before its kernel runs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._exceptions import LaunchError

__all__ = ["DEFAULT_SHUTDOWN_TIMEOUT", "DEFAULT_STARTUP_TIMEOUT", "LaunchParams"]

#: Seconds a kernel gets to become ready.
DEFAULT_STARTUP_TIMEOUT = 60.0
#: Seconds a kernel gets to exit after a shutdown request, then again after SIGTERM.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0


@dataclass(frozen=True, kw_only=True)
class LaunchParams:
    """Per-launch options (``launch_params`` in the provider API), all optional.

    ``transport`` is ``ipc`` (default: unix sockets, nothing on the network) or
    ``tcp`` (bound to ``ip``, loopback by default); ``encryption`` applies to
    tcp: ``auto`` uses CurveZMQ when the kernel declares support, ``required``
    refuses to start without it, ``disabled`` sends plain tcp. ``env`` adds to
    the kernel's environment. ``echo_output`` passes the kernel process's own
    stdout/stderr (not the code's output) through to ours. ``connection_file``
    says where to write the kernel's connection file (default: ``kernel-<id>.json``
    in the runtime directory).
    """

    transport: str = "ipc"
    ip: str = "127.0.0.1"
    encryption: str = "auto"
    env: Mapping[str, str] | None = None
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    echo_output: bool = True
    connection_file: str | None = None

    def __post_init__(self) -> None:
        if self.connection_file is not None:
            path = Path(self.connection_file)
            if not path.is_absolute():
                raise LaunchError(f"connection_file must be an absolute path, got {self.connection_file!r}")
            if not path.parent.is_dir():
                raise LaunchError(f"connection_file's directory {path.parent} does not exist")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> LaunchParams:
        """Validate a ``launch_params`` dict: unknown keys are an error that lists the known ones."""
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise LaunchError(f"unknown launch parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**params)
