"""The manager interface for a kernel that is our own child process.

The kernel runs in its own session and process group, so a signal reaches it
and everything it started, and a terminal's Ctrl-C does not; a lifeline makes
that group die with us. Its exit is observed through the child watcher
(``asyncio`` waits on the process, no polling); every step of a shutdown ends
as soon as that exit is seen. Its own stdout and stderr (not the code's output,
which travels on iopub) are read from pipes and handed to output listeners.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable
from pathlib import Path

from .._exceptions import KernelNannyError, KernelTimeout, LaunchError
from .._tasks import TaskGroup
from ..client.kernel import KernelClient
from ..protocol import ConnectionInfo, ExitStatus, ipc_socket_paths
from .command import KernelCommand
from .lifeline import Lifeline
from .output import OutputListener, OutputRelay

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "DiedDuringStartup",
    "LocalKernelManager",
    "ready_or_exited",
]

log = logging.getLogger("kernel_nanny.launch")

#: Seconds a kernel gets to become ready.
DEFAULT_STARTUP_TIMEOUT = 60.0
#: Seconds a kernel gets to exit after a shutdown request, then again after SIGTERM.
DEFAULT_SHUTDOWN_TIMEOUT = 5.0


class LocalKernelManager:
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
        self.command = command
        self.connection_info = connection_info
        self.connection_file = connection_file
        self.cwd = cwd
        self.extra_env = extra_env or {}
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.die_with_owner = die_with_owner
        self._output = OutputRelay(echo=echo_output)
        self._lifeline: Lifeline | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._tasks = TaskGroup(log)
        self._control: KernelClient | None = None
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
    def output_tail(self) -> str:
        """The last few KiB the kernel process wrote to stdout/stderr (to explain a failed start)."""
        return self._output.tail

    async def start(self) -> None:
        """Start the kernel process; :meth:`wait_until_ready` waits for it to be usable."""
        argv = self.command.format_argv(str(self.connection_file))
        self._output.clear_tail()
        # Our own pipes, not asyncio's: Process.wait() would otherwise also wait
        # for the pipes to close, which a grandchild holding them can delay for
        # ever, hiding the kernel's death.
        (stdout_r, stdout_w), (stderr_r, stderr_w) = os.pipe(), os.pipe()
        try:
            self._process = await self._spawn(argv, stdout_w, stderr_w)
        except BaseException:
            os.close(stdout_r)
            os.close(stderr_r)
            raise
        finally:
            os.close(stdout_w)
            os.close(stderr_w)
        process = self._process
        log.info("[kernel pid=%d] started: %s", process.pid, " ".join(argv))
        if self.die_with_owner:
            self._lifeline = await Lifeline.attach(process.pid)
        self._relays = [
            self._tasks.spawn(self._relay_output(fd, name), name=f"kernel-{name}-{process.pid}")
            for name, fd in (("stdout", stdout_r), ("stderr", stderr_r))
        ]

    async def _spawn(self, argv: list[str], stdout: int, stderr: int) -> asyncio.subprocess.Process:
        if self.cwd is not None and not os.path.isdir(self.cwd):
            raise LaunchError(f"cannot start kernel: its working directory {self.cwd!r} does not exist")
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.cwd,
                env=self.command.environment(self.extra_env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise LaunchError(f"cannot start kernel: {argv[0]!r} not found (argv: {argv})") from exc
        except PermissionError as exc:
            raise LaunchError(f"cannot start kernel: {argv[0]!r} is not executable") from exc
        except NotADirectoryError as exc:
            raise LaunchError(f"cannot start kernel: cwd {self.cwd!r} is not a directory") from exc

    def add_output_listener(self, listener: OutputListener) -> None:
        """Call ``listener(name, data)`` with everything the kernel process writes to fd 1 and 2.

        The first listener also gets what was written before it attached (up to
        64 KiB), so a start-up banner or early crash is not lost.
        """
        self._output.add_listener(listener)

    async def _relay_output(self, fd: int, name: str) -> None:
        """Pass one of the kernel process's output pipes to the listeners (and maybe our stderr)."""
        stream = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), open(fd, "rb", buffering=0)
        )
        try:
            await self._relay_chunks(stream, name)
        finally:
            transport.close()

    async def _relay_chunks(self, stream: asyncio.StreamReader, name: str) -> None:
        while chunk := await stream.read(65536):
            self._output.feed(name, chunk)

    async def wait_until_ready(self) -> None:
        """Return once the kernel is ready (``kernel_info`` answered, iopub connected).

        Races readiness against the process's exit: raises
        :class:`~kernel_nanny.LaunchError` if it exits first (its subclass
        ``DiedDuringStartup``) or after ``startup_timeout`` seconds.
        """
        status = await ready_or_exited(self.connection_info, self.wait(), self.startup_timeout)
        if status is not None:
            await self._output_drained()
            raise DiedDuringStartup(f"exited during start-up ({status})")

    async def _output_drained(self, timeout: float = 1.0) -> None:
        """Wait until everything the exited process wrote has been read (bounded:
        a grandchild may hold the pipe open)."""
        if self._relays:
            await asyncio.wait(self._relays, timeout=timeout)

    def _require_process(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise KernelNannyError("the kernel has not been started")
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
            log.debug("[kernel pid=%d] signal %d: process group already gone", process.pid, signum)

    async def interrupt(self) -> None:
        """Interrupt the running code: SIGINT, or an ``interrupt_request`` for message-mode kernels."""
        if self.command.interrupt_mode == "message":
            await self._control_client().interrupt(timeout=self.shutdown_timeout)
        else:
            await self.signal(signal.SIGINT)

    async def kill(self) -> None:
        """SIGKILL the kernel and its process group, and wait until it has exited."""
        if await self.is_alive():
            await self.signal(signal.SIGKILL)
        if self._process is not None:
            await self._process.wait()

    async def shutdown(self, now: bool = False) -> None:
        """Stop the kernel: a shutdown request, then SIGTERM, then SIGKILL.

        Each step waits only until the exit is observed (or its timeout), and
        leftovers in the kernel's process group are killed. ``now=True`` skips
        straight to SIGKILL. Files are removed afterwards (:meth:`cleanup`).
        """
        await self._stop(now=now)
        await self.cleanup()

    async def _stop(self, now: bool, restart: bool = False) -> None:
        process = self._process
        if process is None:
            return
        if process.returncode is None and not now:
            try:
                await self._control_client().shutdown(restart=restart, timeout=self.shutdown_timeout)
            except (KernelTimeout, KernelNannyError):
                log.debug("[kernel pid=%d] no shutdown reply", process.pid)
            if await self._exited_within(self.shutdown_timeout):
                log.debug("[kernel pid=%d] exited on request", process.pid)
            else:
                log.warning("[kernel pid=%d] did not exit on request; sending SIGTERM", process.pid)
                await self.signal(signal.SIGTERM)
                if not await self._exited_within(self.shutdown_timeout):
                    log.warning("[kernel pid=%d] ignored SIGTERM; sending SIGKILL", process.pid)
        await self.kill()
        # Anything the kernel left in its process group goes with it.
        await self.signal(signal.SIGKILL)
        if self._lifeline is not None:
            await self._lifeline.disarm()
            self._lifeline = None

    async def _exited_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self._require_process().wait()), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    async def restart(self, now: bool = False) -> None:
        """Stop the kernel and start it again on the same connection info; returns once it is ready."""
        await self._stop(now=now, restart=True)
        await self._close_control()
        await self.start()
        try:
            await self.wait_until_ready()
        except DiedDuringStartup as exc:
            raise LaunchError(f"kernel {exc} after a restart{format_output_tail(self.output_tail)}") from None

    async def cleanup(self) -> None:
        """Remove the connection file and ipc socket files, and close our sockets."""
        await self._close_control()
        await self._tasks.cancel_all()
        if self._lifeline is not None:
            await self._lifeline.disarm()
            self._lifeline = None
        for path in [self.connection_file, *ipc_socket_paths(self.connection_info)]:
            path.unlink(missing_ok=True)

    def _control_client(self) -> KernelClient:
        if self._control is None:
            self._control = KernelClient(self.connection_info)
        return self._control

    async def _close_control(self) -> None:
        if self._control is not None:
            self._control.close()
            await self._control.wait_closed()
            self._control = None


class DiedDuringStartup(LaunchError):
    """The kernel process exited before it became ready."""


async def ready_or_exited(
    connection_info: ConnectionInfo, exited: Awaitable[ExitStatus], timeout: float
) -> ExitStatus | None:
    """Race a starting kernel's readiness against its exit, wherever it runs.

    Returns None once it is ready (``kernel_info`` answered, iopub connected),
    or how it ended if ``exited`` (a wait for its exit) finishes first; raises
    :class:`~kernel_nanny.LaunchError` if neither happens within ``timeout`` seconds.
    """
    async with KernelClient(connection_info) as client:
        ready = asyncio.ensure_future(client.wait_for_ready(timeout=timeout))
        exit_status = asyncio.ensure_future(exited)
        try:
            await asyncio.wait({ready, exit_status}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (ready, exit_status):
                future.cancel()
        if ready.done() and not ready.cancelled():
            try:
                ready.result()
                return None
            except KernelNannyError as exc:
                raise LaunchError(f"kernel did not become ready within {timeout} s") from exc
        return exit_status.result()


def format_output_tail(text: str, lines: int = 15, intro: str = "its last output") -> str:
    """The last lines of some output, introduced for an error message (or nothing)."""
    tail = "\n".join(text.strip().splitlines()[-lines:])
    return f"; {intro}:\n{tail}" if tail else ""
