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
from typing import Any

from .._exceptions import LaunchError
from ..protocol import LaunchResult
from .base_manager import DiedDuringStartup, StartupTimedOut, format_output_tail
from .command import KernelCommand
from .manager import LocalKernelManager
from .params import DEFAULT_STARTUP_TIMEOUT, LaunchParams
from .spawn import StartedKernel, start_local

__all__ = ["DEFAULT_STARTUP_TIMEOUT", "LaunchParams", "LaunchResult", "launch_local"]

log = logging.getLogger("kernel_nanny.launch")

#: How often a tcp launch is retried when a port was taken under it.
PORT_CONFLICT_RETRIES = 3


async def launch_local(
    command: KernelCommand,
    *,
    kernel_name: str = "",
    cwd: str | None = None,
    launch_params: Mapping[str, Any] | None = None,
    started: StartedKernel | None = None,
) -> LaunchResult:
    """Start ``command`` as a local kernel, wait until it is ready, and return it.

    ``started`` is the same launch already begun by :func:`~.spawn.start_local`
    (the nanny starts its kernel before it imports the rest of itself).
    """
    params = LaunchParams.from_mapping(launch_params)
    for attempt in range(1, PORT_CONFLICT_RETRIES + 1):
        if started is None:
            started = start_local(command, params, kernel_name=kernel_name, cwd=cwd)
        (info, path, spawned), started = started, None
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
            await manager.start(spawned)
        except BaseException:
            await manager.cleanup()
            raise
        try:
            await manager.wait_until_ready()
            return LaunchResult(info, manager)
        except DiedDuringStartup as died:
            await manager.cleanup()
            if info["transport"] == "tcp" and "Address already in use" in manager.output_tail:
                log.warning("kernel %s lost a port race (attempt %d); relaunching on fresh ports", kernel_name, attempt)
                continue
            tail = format_output_tail(manager.output_tail)
            hint = (
                " (it was given the ipc transport, which some kernels cannot use: choose tcp with the launch "
                "parameter transport='tcp' or '--transport tcp' of kernel-nanny start and exec)"
                if info["transport"] == "ipc"
                else ""
            )
            raise LaunchError(f"kernel {kernel_name or command.argv[0]} {died}{hint}{tail}") from None
        except StartupTimedOut as late:
            await manager.shutdown(now=True)
            tail = format_output_tail(manager.output_tail)
            raise LaunchError(
                f"kernel {kernel_name or command.argv[0]} {late} (the launch parameter startup_timeout, "
                f"'--startup-timeout' of kernel-nanny start and exec, sets the limit){tail}"
            ) from None
        except BaseException:
            await manager.shutdown(now=True)
            raise
    raise LaunchError(f"kernel {kernel_name}: ports kept being taken ({PORT_CONFLICT_RETRIES} attempts)")
