"""The manager interface for a kernel that is our own child process.

The kernel runs in its own session and process group, so a signal reaches it
and everything it started, and a terminal's Ctrl-C does not; a lifeline makes
that group die with us. Its exit is observed through a pidfd (no polling,
see :mod:`.spawn`); every step of a shutdown ends
as soon as that exit is seen (the ladder itself is :class:`.BaseKernelManager`'s).
Its own stdout and stderr (not the code's output, which travels on iopub) are
read from pipes and handed to output listeners.

:meth:`LocalKernelManager.to_json` writes what another process needs to take
the kernel over, and :meth:`LocalKernelManager.from_json` takes it over there
(:ref:`reattach-from-json`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from .._exceptions import ConnectionInfoError, KernelNotRunning
from .._logging import KernelLogAdapter
from ..client.running import ProcessIdentity
from ..protocol import ConnectionInfo, ExitStatus, ipc_socket_paths, normalize_connection_info
from ..protocol.manager_state import check_same_host, dump_manager_state, load_manager_state, wrong_field
from .adopted import AdoptedProcess
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
        self._process: ChildProcess | AdoptedProcess | None = None
        #: The kernel process's pid and start time, read while it was surely ours (what to_json() records).
        self._identity: ProcessIdentity | None = None
        self._relays: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        state = "not started" if self._process is None else ("running" if self._process.running else "exited")
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
        if isinstance(self._process, AdoptedProcess):
            self._process.close()
        process = self._process = spawned.process
        # Our child, not reaped yet: its pid cannot have passed to another process.
        self._identity = ProcessIdentity.of(process.pid)
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

    def _require_process(self) -> ChildProcess | AdoptedProcess:
        if self._process is None:
            raise KernelNotRunning("the kernel has not been started")
        return self._process

    async def is_alive(self) -> bool:
        return self._process is not None and self._process.running

    async def wait(self) -> ExitStatus:
        """Wait for the kernel to exit and say how it ended.

        A kernel taken over with :meth:`from_json` is not our child: its exit
        is seen, but how it ended is not, and the status's ``reason`` is ``unknown``.
        """
        process = self._require_process()
        if isinstance(process, AdoptedProcess):
            await process.wait()
            return ExitStatus(reason="unknown")
        return ExitStatus.from_returncode(await process.wait())

    async def signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel's whole process group.

        A kernel taken over with :meth:`from_json` is signalled only while it
        runs: once it has exited, its parent may reap it and its pid pass to
        another program.
        """
        process = self._require_process()
        if isinstance(process, AdoptedProcess) and not process.running:
            self._log.debug("signal %d: the kernel has exited", signum)
            return
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
        if isinstance(self._process, AdoptedProcess):
            self._process.close()
        for path in [self.connection_file, *ipc_socket_paths(self.connection_info)]:
            path.unlink(missing_ok=True)

    # -- re-attaching from JSON -----------------------------------------------------

    def to_json(self) -> str:
        """What another process on this machine needs to take this kernel over (:meth:`from_json`).

        A JSON object of kind ``local``: this host's name, the connection info
        (with its key: write the JSON 0600), the connection file, the kernel
        process's pid and start time, its command, cwd, extra environment,
        timeouts, and whether it dies with its owner.
        """
        if self._identity is None:
            raise KernelNotRunning("the kernel has not been started")
        return dump_manager_state(
            "local",
            {
                "host": socket.gethostname(),
                "connection_info": self.connection_info,
                "connection_file": str(self.connection_file),
                "process": {"pid": self._identity.pid, "start_time": self._identity.start_time},
                "command": self.command.to_dict(),
                "cwd": self.cwd,
                "extra_env": self.extra_env,
                "startup_timeout": self.startup_timeout,
                "shutdown_timeout": self.shutdown_timeout,
                "echo_output": self._output.echo,
                "die_with_owner": self.die_with_owner,
            },
        )

    @classmethod
    async def from_json(cls, data: str) -> LocalKernelManager:
        """Take over the kernel that :meth:`to_json` describes, in this (possibly new) process.

        Raises :exc:`~kernel_nanny.InvalidRequest` (a :exc:`ValueError`) for
        JSON that is not a local manager's state, and :exc:`~kernel_nanny.NoSuchKernel`
        when the kernel runs on another host, or is gone: its process has
        exited, or its pid now names a program started at another time.

        The whole manager interface works, with these differences, since the
        kernel is not this process's child: :meth:`wait` sees the exit but not
        its code (``reason="unknown"``); a signal reaches the kernel's process
        group only while the kernel runs; the kernel's own stdout and stderr
        go to the pipes of the process that started it, not to this one's
        output listeners. A :meth:`restart` starts the kernel again as this
        process's child (same connection info), and from then on the manager
        is as if it had started it. A kernel started with ``die_with_owner``
        (the default) still dies with the process that started it.
        """
        state = load_manager_state(data, "local", ("host", "connection_info", "connection_file", "process", "command"))
        try:
            info = normalize_connection_info(state["connection_info"])
            identity = ProcessIdentity(int(state["process"]["pid"]), int(state["process"]["start_time"]))
            command = KernelCommand.from_dict(state["command"])
            options = {key: state[key] for key in _OPTIONS if state.get(key) is not None}
            manager = cls(command, info, Path(state["connection_file"]), cwd=state.get("cwd"), **options)
        except (ConnectionInfoError, KeyError, TypeError, ValueError) as exc:
            raise wrong_field("local", exc) from None
        what = f"kernel {info.get('kernel_name') or '?'} (connection file {manager.connection_file})"
        check_same_host(state, what, socket.gethostname())
        manager._process = AdoptedProcess.open(identity, what)
        manager._identity = identity
        manager._log.info("re-attached (started by another process)")
        return manager


#: The constructor's keyword arguments that to_json() records as they are.
_OPTIONS = ("extra_env", "startup_timeout", "shutdown_timeout", "echo_output", "die_with_owner")
