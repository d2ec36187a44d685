"""Starting a local kernel process, without an event loop.

A nanny starts its kernel before it imports the rest of itself (asyncio,
the clients, the server: about 80 ms), so the kernel boots while the nanny
does; so this imports only the standard library and light modules, and
starts the kernel (and its lifeline) with plain :class:`subprocess.Popen`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import KernelExecutableNotFound, LaunchError
from ..protocol import ConnectionInfo, new_id
from .child import ChildProcess, start_child
from .command import KernelCommand
from .connection import choose_transport, new_connection_info, supports_curve, write_connection_file
from .lifeline import Lifeline
from .params import LaunchParams

__all__ = ["SpawnedKernel", "StartedKernel", "spawn_kernel", "start_local"]


@dataclass
class SpawnedKernel:
    """A kernel process just started: the process, the read ends of its stdout/stderr pipes, its argv,
    and the lifeline that kills its process group if its owner dies (None if it should outlive us)."""

    process: ChildProcess
    stdout_fd: int
    stderr_fd: int
    argv: list[str]
    lifeline: Lifeline | None

    def close_pipes(self) -> None:
        """Close the pipes' read ends (when nobody will read them)."""
        for fd in (self.stdout_fd, self.stderr_fd):
            os.close(fd)


def spawn_kernel(
    command: KernelCommand,
    connection_file: Path,
    *,
    cwd: str | None,
    extra_env: Mapping[str, str],
    die_with_owner: bool = True,
) -> SpawnedKernel:
    """Start ``command`` in its own session, its stdout/stderr on pipes of our own.

    Our own pipes, not asyncio's: waiting for an asyncio process also waits
    for its pipes to close, which a grandchild holding them can delay for
    ever, hiding the kernel's death.
    """
    argv = command.format_argv(str(connection_file))
    if cwd is not None and not os.path.isdir(cwd):
        raise LaunchError(f"cannot start kernel: its working directory {cwd!r} does not exist")
    (stdout_r, stdout_w), (stderr_r, stderr_w) = os.pipe(), os.pipe()
    try:
        process = start_child(
            argv,
            cwd=cwd,
            env=command.environment(dict(extra_env)),
            stdin=subprocess.DEVNULL,
            stdout=stdout_w,
            stderr=stderr_w,
            start_new_session=True,
        )
    except BaseException as exc:
        os.close(stdout_r)
        os.close(stderr_r)
        if isinstance(exc, FileNotFoundError):
            raise KernelExecutableNotFound(_missing_program(command, argv)) from exc
        if isinstance(exc, PermissionError):
            raise LaunchError(f"cannot start kernel: {argv[0]!r} is not executable") from exc
        if isinstance(exc, NotADirectoryError):
            raise LaunchError(f"cannot start kernel: cwd {cwd!r} is not a directory") from exc
        raise
    finally:
        os.close(stdout_w)
        os.close(stderr_w)
    lifeline = Lifeline.attach(process.pid) if die_with_owner else None
    return SpawnedKernel(process, stdout_r, stderr_r, argv, lifeline)


def _missing_program(command: KernelCommand, argv: list[str]) -> str:
    """The message for a kernel whose program does not exist: which program, and whose recipe names it."""
    if command.resource_dir:
        spec = Path(command.resource_dir)
        source = f"kernelspec {spec.name!r} ({spec / 'kernel.json'})"
    else:
        source = "the kernel's command"
    return (
        f"cannot start kernel: its program {argv[0]!r} not found (argv: {argv}): "
        f"install it, or correct argv[0] in {source}"
    )


#: A local launch begun: the kernel's connection info, its connection file and its process.
StartedKernel = tuple[ConnectionInfo, Path, SpawnedKernel]


def start_local(command: KernelCommand, params: LaunchParams, *, kernel_name: str, cwd: str | None) -> StartedKernel:
    """Make the kernel's connection info and file, and start its process (not yet ready)."""
    kernel_id = new_id()
    info = new_connection_info(
        kernel_id,
        transport=choose_transport(params.transport, command.metadata, command.argv),
        ip=params.ip,
        encryption=params.encryption,
        kernel_supports_curve=supports_curve(command.metadata),
        kernel_name=kernel_name,
    )
    path = write_connection_file(info, kernel_id, Path(params.connection_file) if params.connection_file else None)
    try:
        spawned = spawn_kernel(command, path, cwd=cwd, extra_env=dict(params.env or {}))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return info, path, spawned
