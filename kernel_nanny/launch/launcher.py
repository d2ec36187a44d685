"""Start a local kernel and hand it over only once it is ready.

Ready means the kernel answered ``kernel_info`` and its iopub channel is
connected. The start races the kernel's readiness against its exit: a kernel
that dies during start-up is reported with the tail of its stderr, and one
that died because another process took a tcp port first is relaunched on
fresh ports (the race jupyter_client's port picking invites).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._exceptions import LaunchError
from ..protocol import LaunchResult, new_id
from .base_manager import DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, DiedDuringStartup, format_output_tail
from .command import KernelCommand
from .connection import new_connection_info, supports_curve, write_connection_file
from .manager import LocalKernelManager

__all__ = ["DEFAULT_STARTUP_TIMEOUT", "LaunchParams", "LaunchResult", "launch_local"]

log = logging.getLogger("kernel_nanny.launch")

#: How often a tcp launch is retried when a port was taken under it.
PORT_CONFLICT_RETRIES = 3


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


async def launch_local(
    command: KernelCommand,
    *,
    kernel_name: str = "",
    cwd: str | None = None,
    launch_params: Mapping[str, Any] | None = None,
) -> LaunchResult:
    """Start ``command`` as a local kernel, wait until it is ready, and return it."""
    params = LaunchParams.from_mapping(launch_params)
    for attempt in range(1, PORT_CONFLICT_RETRIES + 1):
        kernel_id = new_id()
        info = new_connection_info(
            kernel_id,
            transport=params.transport,
            ip=params.ip,
            encryption=params.encryption,
            kernel_supports_curve=supports_curve(command.metadata),
            kernel_name=kernel_name,
        )
        path = write_connection_file(info, kernel_id, Path(params.connection_file) if params.connection_file else None)
        manager = LocalKernelManager(
            command,
            info,
            path,
            cwd=cwd,
            extra_env=dict(params.env or {}),
            startup_timeout=params.startup_timeout,
            shutdown_timeout=params.shutdown_timeout,
            echo_output=params.echo_output,
        )
        try:
            await manager.start()
        except BaseException:
            await manager.cleanup()
            raise
        try:
            await manager.wait_until_ready()
            return LaunchResult(info, manager)
        except DiedDuringStartup as died:
            await manager.cleanup()
            if params.transport == "tcp" and "Address already in use" in manager.output_tail:
                log.warning("kernel %s lost a port race (attempt %d); relaunching on fresh ports", kernel_name, attempt)
                continue
            tail = format_output_tail(manager.output_tail)
            raise LaunchError(f"kernel {kernel_name or command.argv[0]} {died}{tail}") from None
        except BaseException:
            await manager.shutdown(now=True)
            raise
    raise LaunchError(f"kernel {kernel_name}: ports kept being taken ({PORT_CONFLICT_RETRIES} attempts)")
