"""A local kernel process that another process started, taken over through a pidfd.

A manager re-attached from JSON (:meth:`LocalKernelManager.from_json
<kernel_nanny.LocalKernelManager.from_json>`) finds its kernel by pid and
start time. The pid alone could name another program by now; so the pidfd is
opened first and the start time checked while it is held: from then on the
pidfd names that process only, and becomes readable when it exits. The
process is not our child, so its exit code cannot be collected (only its
parent can reap it): :meth:`AdoptedProcess.wait` says when, not how.
"""

from __future__ import annotations

import asyncio
import os
import select

from .._exceptions import NoSuchKernel
from ..client.running import ProcessIdentity

__all__ = ["AdoptedProcess"]


class AdoptedProcess:
    """A running process we did not start, held by a pidfd: whether it runs, and its exit (not how it exited)."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self._pidfd: int | None = pidfd
        self._exited: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<AdoptedProcess pid={self.pid} {'running' if self.running else 'exited'}>"

    @classmethod
    def open(cls, identity: ProcessIdentity, what: str) -> AdoptedProcess:
        """Take hold of the process ``identity`` records; :exc:`~kernel_nanny.NoSuchKernel` naming ``what``
        (the kernel) if it has exited, or if its pid now belongs to a process started at another time."""
        gone = NoSuchKernel(
            f"{what} is gone: its process {identity.pid} has exited (or that pid now belongs to another "
            "program, started at another time); start a new kernel"
        )
        try:
            pidfd = os.pidfd_open(identity.pid)
        except ProcessLookupError:
            raise gone from None
        if identity.start_time is None or ProcessIdentity.of(identity.pid) != identity or _readable(pidfd):
            os.close(pidfd)  # checked with the pidfd held: the pid cannot have moved on since it was opened
            raise gone
        return cls(identity.pid, pidfd)

    @property
    def running(self) -> bool:
        return self._pidfd is not None and not _readable(self._pidfd)

    async def wait(self) -> None:
        """Return once the process has exited (how, only its parent learns); any number may wait."""
        if self._pidfd is None:
            return
        if self._exited is None:
            self._exited = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().add_reader(self._pidfd, self.close)
        await asyncio.shield(self._exited)

    def close(self) -> None:
        """Let go of the pidfd (idempotent): the process counts as exited from then on, and waiters return."""
        if self._pidfd is None:
            return
        if self._exited is not None:
            self._exited.get_loop().remove_reader(self._pidfd)
            if not self._exited.done():
                self._exited.set_result(None)
        os.close(self._pidfd)
        self._pidfd = None


def _readable(pidfd: int) -> bool:
    """Whether a pidfd says its process has exited (without blocking)."""
    return bool(select.select([pidfd], [], [], 0)[0])
