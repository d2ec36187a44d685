"""The manager interface for a kernel that is our own child process.

The kernel runs in its own session and process group, so a signal reaches it
and everything it started, and a terminal's Ctrl-C does not; a lifeline makes
that group die with us. Its exit is observed through a pidfd (no polling,
see :mod:`.spawn`); every step of a shutdown ends
as soon as that exit is seen (the ladder itself is :class:`.BaseKernelManager`'s).
Its own stdout and stderr (not the code's output, which travels on iopub) are
read from pipes and handed to output listeners.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from .._exceptions import KernelNotRunning
from .._logging import KernelLogAdapter
from ..protocol import ConnectionInfo, ExitStatus, ipc_socket_paths
from .base_manager import BaseKernelManager
from .child import ChildProcess
from .command import KernelCommand
from .params import DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STARTUP_TIMEOUT
from .spawn import SpawnedKernel, spawn_kernel

# The defaults stay importable from here too (they are the local manager's, and callers name them so).
__all__ = ["DEFAULT_SHUTDOWN_TIMEOUT", "DEFAULT_STARTUP_TIMEOUT", "LocalKernelManager"]

log = logging.getLogger("kernel_nanny.launch")


class LocalKernelManager(BaseKernelManager):
    """Owns one kernel child process started from a :class:`KernelCommand`.

    ``connection_info`` stays the same across restarts, so clients keep
    working after :meth:`restart`.
    """

    def __init__(
        self,
        command: KernelCommand,
        connection_info: ConnectionInfo,
        connection_file: Path,
        *,
        cwd: str | None = None,
        extra_env: dict[str, str] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        echo_output: bool = True,
        die_with_owner: bool = True,
    ) -> None:
        super().__init__(
            connection_info,
            connection_file,
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
            echo_output=echo_output,
            logger=KernelLogAdapter(log, pid=lambda: self.pid),
        )
        self.command = command
        self.cwd = cwd
        self.extra_env = extra_env or {}
        self.die_with_owner = die_with_owner
        self._process: ChildProcess | None = None
        self._relays: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        state = (
            "not started" if self._process is None else ("running" if self._process.returncode is None else "exited")
        )
        return (
            f"<LocalKernelManager kernel={self.connection_info.get('kernel_name') or '?'} pid={self.pid} state={state}>"
        )

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def interrupt_mode(self) -> str:
        """The command's ``interrupt_mode``: ``signal`` (SIGINT) or ``message`` (``interrupt_request``)."""
        return self.command.interrupt_mode

    async def start(self, spawned: SpawnedKernel | None = None) -> None:
        """Start the kernel process (or take over ``spawned``, one this manager's command just started);
        :meth:`wait_until_ready` waits for it to be usable."""
        self._output.clear_tail()
        if spawned is None:
            spawned = spawn_kernel(
                self.command,
                self.connection_file,
                cwd=self.cwd,
                extra_env=self.extra_env,
                die_with_owner=self.die_with_owner,
            )
        process = self._process = spawned.process
        self._lifeline = spawned.lifeline
        self._log.info("started: %s", " ".join(spawned.argv))
        self._relays = [
            self._tasks.spawn(self._relay_output(fd, name), name=f"kernel-{name}-{process.pid}")
            for name, fd in (("stdout", spawned.stdout_fd), ("stderr", spawned.stderr_fd))
        ]

    async def _relay_output(self, fd: int, name: str) -> None:
        """Pass one of the kernel process's output pipes to the listeners (and maybe our stderr)."""
        stream = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), open(fd, "rb", buffering=0)
        )
        try:
            while chunk := await stream.read(65536):
                self._output.feed(name, chunk)
        finally:
            transport.close()

    def _output_readers(self) -> list[asyncio.Task[Any]]:
        return list(self._relays)

    def _require_process(self) -> ChildProcess:
        if self._process is None:
            raise KernelNotRunning("the kernel has not been started")
        return self._process

    async def is_alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def wait(self) -> ExitStatus:
        """Wait for the kernel to exit and say how it ended."""
        returncode = await self._require_process().wait()
        return ExitStatus.from_returncode(returncode)

    async def signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel's whole process group."""
        process = self._require_process()
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            self._log.debug("signal %d: process group already gone", signum)

    async def _terminate(self) -> None:
        await self.signal(signal.SIGTERM)
        if not await self._exited_within(self.shutdown_timeout):
            self._log.warning("ignored SIGTERM; sending SIGKILL")

    async def _stop(self, now: bool, restart: bool = False) -> None:
        await super()._stop(now, restart)
        if self._process is not None:
            # Anything the kernel left in its process group goes with it.
            await self.signal(signal.SIGKILL)
            await self._disarm_lifeline()

    async def cleanup(self) -> None:
        """Remove the connection file and ipc socket files, and close our sockets."""
        await self._close_control()
        await self._tasks.cancel_all()
        await self._disarm_lifeline()
        for path in [self.connection_file, *ipc_socket_paths(self.connection_info)]:
            path.unlink(missing_ok=True)
