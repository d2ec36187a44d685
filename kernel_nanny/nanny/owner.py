"""The nanny's owner: the process whose end ends the kernel (:attr:`LaunchRequest.owner <kernel_nanny.LaunchRequest>`).

A kernel started for a batch run (a script using :mod:`kernel_nanny.compat`,
papermill, ``jupyter run``) must not outlive the run, however it ends: a
normal exit without a shutdown, SIGTERM, SIGKILL. The nanny cannot be the
run's child (it forks away so that it can outlive a server on purpose), so it
watches the owner with a pidfd, which becomes readable when the process ends,
whatever ends it, and never names another process: a pid passes to a new
process once the old one is reaped, a pidfd does not. The owner's start time,
recorded where the request was made, proves that the process the pidfd opens
is still the owner and not a newcomer with its recycled pid.
"""

from __future__ import annotations

import asyncio
import os

from .._exceptions import LaunchError
from ..client.running import ProcessIdentity

__all__ = ["OwnerWatch"]


class OwnerWatch:
    """A pidfd on the owner of a kernel; :meth:`ended` returns once the owner has ended."""

    def __init__(self, pid: int, pidfd: int | None) -> None:
        self.pid = pid
        self._pidfd = pidfd

    def __repr__(self) -> str:
        return f"<OwnerWatch pid={self.pid} {'watching' if self._pidfd is not None else 'ended'}>"

    @classmethod
    def open(cls, pid: int, start_time: int) -> OwnerWatch:
        """Watch process ``pid`` started at ``start_time`` (clock ticks after boot, ``/proc/<pid>/stat``).

        An owner that has ended already (no such process, or the pid now names
        a process started at another time) gives a watch that has ended.
        Raises :exc:`~kernel_nanny.LaunchError` if the system has no pidfds
        (Linux before 5.3): start the kernel as persistent there.
        """
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return cls(pid, None)
        except OSError as exc:
            raise LaunchError(
                f"cannot watch process {pid}, the owner of the kernel ({exc}): start the kernel as persistent"
            ) from exc
        if ProcessIdentity.of(pid).start_time != start_time:  # checked with the pidfd held: the pid cannot move
            os.close(pidfd)
            return cls(pid, None)
        return cls(pid, pidfd)

    async def ended(self) -> None:
        """Return once the owner has ended (at once if it already had); cancellable."""
        if self._pidfd is None:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(self._pidfd, readable)
        try:
            await done
        finally:
            loop.remove_reader(self._pidfd)

    def close(self) -> None:
        """Stop watching (idempotent)."""
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
