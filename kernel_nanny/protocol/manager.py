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
    final: bool


@dataclass(frozen=True)
class ExitStatus:
    """How a kernel process ended: an exit code, or the signal that ended it.

    ``reason`` is ``exited`` (it returned), ``killed`` (SIGKILL), ``signaled``
    (another signal), ``oom`` (the kernel's memory limit was hit), ``lost``
    (the remote nanny that owned it is gone, so how it ended is unknown) or
    ``unknown`` (it exited, but it was not the watcher's child, so only its
    parent learnt how: a local manager re-attached from JSON). A kernel in a
    batch job also ends with its job: ``time_limit``, ``preempted``,
    ``node_fail`` or ``cancelled`` (from outside, e.g. ``scancel``).

    ``final`` says that the kernel's place is gone with it (its Slurm job
    ended): it cannot be restarted in place, so a nanny does not try.
    """

    exit_code: int | None = None
    signal: int | None = None
    reason: str = "exited"
    final: bool = False

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
        return cls(
            exit_code=data.get("exit_code"),
            signal=data.get("signal"),
            reason=data.get("reason", "exited"),
            final=bool(data.get("final", False)),
        )

    def to_dict(self) -> ExitStatusDict:
        """The status as JSON-ready data, as the nanny sends it."""
        return {"exit_code": self.exit_code, "signal": self.signal, "reason": self.reason, "final": self.final}

    @property
    def success(self) -> bool:
        """True for a clean exit (code 0)."""
        return self.exit_code == 0

    def __str__(self) -> str:
        if self.reason == "lost":
            return "lost with its remote nanny"
        if self.reason in _JOB_ENDS:
            return _JOB_ENDS[self.reason]
        if self.reason == "unknown":
            return "exited (how is unknown: it was not this process's child)"
        if self.signal is not None:
            try:
                name = _signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"{self.reason} by {name}" if self.reason != "oom" else f"killed by {name} (out of memory)"
        return f"exited with code {self.exit_code}"


#: How a kernel's batch job ended, in words (the ``reason`` of its death).
_JOB_ENDS = {
    "time_limit": "ended with its job at the job's time limit",
    "preempted": "ended with its job, preempted by the scheduler",
    "node_fail": "ended with its job: the node failed",
    "cancelled": "ended with its job, cancelled from outside (scancel)",
}


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


class DaemonLaunch(LaunchResult):
    """A daemon's launch: a :class:`LaunchResult` that also says whether the daemon's pool served it.

    ``pool`` is ``"hit"`` (a pooled kernel, ready in milliseconds) or ``"miss"`` (a kernel started for it).
    """

    pool: str = "miss"
