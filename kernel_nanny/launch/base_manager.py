"""The lifecycle every manager that owns its kernel shares, wherever the kernel runs.

A subclass says how to start the kernel, signal it, observe its exit,
terminate it and release what it holds (a local child process, a container...);
this class turns those primitives into the manager interface
(:class:`~kernel_nanny.KernelManager`) the same way for all of them: readiness
raced against the exit, interrupts by signal or by message, the shutdown
ladder (a shutdown request, then terminate, then SIGKILL, each step ending as
soon as the exit is seen) and restarts on the same connection info.
"""

from __future__ import annotations

import asyncio
import signal
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Collection
from pathlib import Path
from typing import Any

from .._exceptions import KernelNannyError, LaunchError
from .._logging import KernelLogAdapter
from .._tasks import TaskGroup, wait_for
from ..client.kernel import KernelClient
from ..defaults import DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STARTUP_TIMEOUT, OUTPUT_DRAIN_TIMEOUT
from ..protocol import ConnectionInfo, ExitStatus
from .lifeline import Lifeline
from .output import OutputListener, OutputRelay, format_output_tail

__all__ = [
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "OUTPUT_DRAIN_TIMEOUT",
    "BaseKernelManager",
    "DiedDuringStartup",
    "format_output_tail",
    "ready_or_exited",
]


class BaseKernelManager(ABC):
    """The manager interface on top of a few primitives a subclass implements.

    Primitives: :meth:`start`, :meth:`is_alive`, :meth:`wait`, :meth:`signal`,
    :meth:`cleanup`, the :attr:`interrupt_mode` property, and the private
    ``_terminate`` (what follows an ignored shutdown request); optionally
    ``_output_readers``. A subclass passes a logger that says which kernel
    a line is about (``[kernel pid=4711]``).
    ``connection_info`` stays the same across restarts, so clients keep
    working after :meth:`restart`.
    """

    def __init__(
        self,
        connection_info: ConnectionInfo,
        connection_file: Path,
        *,
        startup_timeout: float,
        shutdown_timeout: float,
        echo_output: bool,
        logger: KernelLogAdapter,
    ) -> None:
        self.connection_info = connection_info
        self.connection_file = connection_file
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._log = logger
        self._output = OutputRelay(echo=echo_output)
        self._tasks = TaskGroup(logger.logger)
        self._lifeline: Lifeline | None = None
        self._control: KernelClient | None = None

    # -- primitives ---------------------------------------------------------------

    @property
    @abstractmethod
    def interrupt_mode(self) -> str:
        """``signal`` (SIGINT) or ``message`` (an ``interrupt_request`` on the control channel)."""

    @abstractmethod
    async def start(self) -> None:
        """Start the kernel; :meth:`wait_until_ready` waits for it to be usable."""

    @abstractmethod
    async def is_alive(self) -> bool:
        """Whether the kernel is running."""

    @abstractmethod
    async def wait(self) -> ExitStatus:
        """Wait for the kernel to exit and say how it ended (cancelling the wait leaves the kernel alone)."""

    @abstractmethod
    async def signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel; a kernel that is already gone is not an error."""

    @abstractmethod
    async def _terminate(self) -> None:
        """The kernel ignored a shutdown request: SIGTERM it, giving it ``shutdown_timeout`` seconds."""

    @abstractmethod
    async def cleanup(self) -> None:
        """Release what the kernel left behind and close our sockets (:meth:`_close_control`)."""

    def _output_readers(self) -> Collection[asyncio.Future[Any]]:
        """What still reads the kernel's output: waited for (bounded) when it died during start-up."""
        return ()

    # -- the lifecycle ------------------------------------------------------------

    @property
    def output_tail(self) -> str:
        """The last few KiB the kernel wrote to stdout/stderr (to explain a failed start)."""
        return self._output.tail

    def add_output_listener(self, listener: OutputListener) -> None:
        """Call ``listener(name, data)`` with everything the kernel writes to its stdout and stderr.

        The first listener also gets what was written before it attached (up to
        64 KiB), so a start-up banner or early crash is not lost.
        """
        self._output.add_listener(listener)

    async def wait_until_ready(self) -> None:
        """Return once the kernel is ready (``kernel_info`` answered, iopub connected).

        Races readiness against the kernel's exit: raises
        :class:`~kernel_nanny.LaunchError` if it exits first (its subclass
        ``DiedDuringStartup``; its output is then in :attr:`output_tail`) or
        after ``startup_timeout`` seconds.
        """
        status = await ready_or_exited(self.connection_info, self.wait(), self.startup_timeout)
        if status is not None:
            if readers := self._output_readers():
                await asyncio.wait(readers, timeout=OUTPUT_DRAIN_TIMEOUT)
            raise DiedDuringStartup(f"exited during start-up ({status})")

    async def interrupt(self) -> None:
        """Interrupt the running code: SIGINT, or an ``interrupt_request`` for message-mode kernels."""
        if self.interrupt_mode == "message":
            await self._control_client().interrupt(timeout=self.shutdown_timeout)
        else:
            await self.signal(signal.SIGINT)

    async def kill(self) -> None:
        """SIGKILL the kernel (what :meth:`signal` reaches) and wait until it has exited."""
        if await self.is_alive():
            await self.signal(signal.SIGKILL)
            await self.wait()

    async def shutdown(self, now: bool = False) -> None:
        """Stop the kernel: a shutdown request, then SIGTERM, then SIGKILL; then :meth:`cleanup`.

        Each step waits only until the exit is observed (or its
        ``shutdown_timeout``). ``now=True`` skips straight to SIGKILL.
        """
        await self._stop(now=now)
        await self.cleanup()

    async def restart(self, now: bool = False) -> None:
        """Stop the kernel and start it again on the same connection info; returns once it is ready."""
        await self._stop(now=now, restart=True)
        await self._close_control()
        await self.start()
        try:
            await self.wait_until_ready()
        except DiedDuringStartup as exc:
            raise LaunchError(f"kernel {exc} after a restart{format_output_tail(self.output_tail)}") from None

    async def _stop(self, now: bool, restart: bool = False) -> None:
        """The shutdown ladder (see :meth:`shutdown`); ``restart`` is told to the kernel in its request."""
        if await self.is_alive() and not now:
            try:
                await self._control_client().shutdown(restart=restart, timeout=self.shutdown_timeout)
            except KernelNannyError:  # KernelTimeout included
                self._log.debug("no shutdown reply")
            if await self._exited_within(self.shutdown_timeout):
                self._log.debug("exited on request")
            else:
                self._log.warning("did not exit on request; terminating it")
                await self._terminate()
        await self.kill()

    async def _exited_within(self, seconds: float) -> bool:
        try:
            await wait_for(self.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    def _control_client(self) -> KernelClient:
        """Our client for the kernel's control channel (shutdown and interrupt requests), made on first use."""
        if self._control is None:
            self._control = KernelClient(self.connection_info, journal=False)  # the kernel's own sockets
        return self._control

    async def _close_control(self) -> None:
        if self._control is not None:
            self._control.close()
            await self._control.wait_closed()
            self._control = None

    async def _disarm_lifeline(self) -> None:
        if self._lifeline is not None:
            await self._lifeline.disarm()
            self._lifeline = None


class DiedDuringStartup(LaunchError):
    """The kernel exited before it became ready."""


class StartupTimedOut(LaunchError):
    """The kernel neither became ready nor exited within its ``startup_timeout``."""


async def ready_or_exited(
    connection_info: ConnectionInfo, exited: Awaitable[ExitStatus], timeout: float
) -> ExitStatus | None:
    """Race a starting kernel's readiness against its exit, wherever it runs.

    Returns None once it is ready (``kernel_info`` answered, iopub connected),
    or how it ended if ``exited`` (a wait for its exit) finishes first; raises
    :class:`~kernel_nanny.LaunchError` if neither happens within ``timeout`` seconds.
    """
    # The kernel's own sockets: readiness is the kernel's, whoever (a nanny included) asks.
    async with KernelClient(connection_info, journal=False) as client:
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
                raise StartupTimedOut(f"did not become ready within {timeout:g} s") from exc
        return exit_status.result()
