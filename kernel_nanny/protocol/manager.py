"""The manager interface: what every way of owning a kernel process offers.

The local manager (a child process), the nanny-backed ``ManagerClient`` and
remote providers' managers all implement :class:`KernelManager`, so code that
manages a kernel does not care where it runs.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypedDict, runtime_checkable

__all__ = ["ExitStatus", "ExitStatusDict", "KernelManager", "LaunchResult"]


class ExitStatusDict(TypedDict):
    """An :class:`ExitStatus` on the wire (the nanny's ``kernel_died`` event, ``info``'s ``last_exit``)."""

    exit_code: int | None
    signal: int | None
    reason: str


@dataclass(frozen=True)
class ExitStatus:
    """How a kernel process ended: an exit code, or the signal that ended it.

    ``reason`` is ``exited`` (it returned), ``killed`` (SIGKILL), ``signaled``
    (another signal), ``oom`` (the kernel's memory limit was hit) or ``lost``
    (the remote nanny that owned it is gone, so how it ended is unknown).
    """

    exit_code: int | None = None
    signal: int | None = None
    reason: str = "exited"

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitStatus:
        """Classify an ``asyncio``/``subprocess`` return code (negative = signal)."""
        if returncode >= 0:
            return cls(exit_code=returncode)
        signum = -returncode
        return cls(signal=signum, reason="killed" if signum == _signal.SIGKILL else "signaled")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExitStatus:
        """The status a :meth:`to_dict` (or a ``kernel_died`` event's content) describes."""
        return cls(exit_code=data.get("exit_code"), signal=data.get("signal"), reason=data.get("reason", "exited"))

    def to_dict(self) -> ExitStatusDict:
        """The status as JSON-ready data, as the nanny sends it."""
        return {"exit_code": self.exit_code, "signal": self.signal, "reason": self.reason}

    @property
    def success(self) -> bool:
        """True for a clean exit (code 0)."""
        return self.exit_code == 0

    def __str__(self) -> str:
        if self.reason == "lost":
            return "lost with its remote nanny"
        if self.signal is not None:
            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"{self.reason} by {name}" if self.reason != "oom" else f"killed by {name} (out of memory)"
        return f"exited with code {self.exit_code}"


@runtime_checkable
class KernelManager(Protocol):
    """Controls one kernel's process (async). ``connection_info`` tells clients where it listens."""

    connection_info: dict[str, Any]

    async def is_alive(self) -> bool:
        """Whether the kernel process is running."""

    async def wait(self) -> ExitStatus:
        """Wait for the kernel to exit and say how it ended."""

    async def interrupt(self) -> None:
        """Interrupt the running code (SIGINT, or ``interrupt_request`` for message-mode kernels)."""

    async def signal(self, signum: int) -> None:
        """Send a signal to the kernel's process group."""

    async def kill(self) -> None:
        """Kill the kernel at once (SIGKILL)."""

    async def restart(self, now: bool = False) -> None:
        """Stop and start the kernel on the same connection info; returns once it is ready."""

    async def shutdown(self, now: bool = False) -> None:
        """Stop the kernel: shutdown request, SIGTERM, SIGKILL (``now``: SIGKILL at once)."""

    async def cleanup(self) -> None:
        """Release what the manager holds (files, sockets)."""


class LaunchResult(NamedTuple):
    """What a launch gives back; unpacks as ``connection_info, manager = result``."""

    connection_info: dict[str, Any]
    manager: KernelManager | None
