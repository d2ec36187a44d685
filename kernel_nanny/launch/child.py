"""Child processes started with :class:`subprocess.Popen`, their exit awaited through a pidfd.

Started without an event loop (a nanny starts its kernel before asyncio is
even imported), awaited later on whichever loop runs by then: a pidfd
becomes readable when the child exits, so there is no polling and no child
watcher, and no waiting for pipes that a grandchild may still hold.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["ChildProcess", "start_child"]


class ChildProcess:
    """A started child process whose exit can be awaited (by any number of waiters)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self._exited: asyncio.Future[int] | None = None

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit code (negative: the signal that ended it), or None while it runs."""
        return self._popen.poll()

    @property
    def running(self) -> bool:
        return self.returncode is None

    async def wait(self) -> int:
        """Wait for the process to exit; returns its return code."""
        import asyncio  # here: starting a child must not import asyncio (see the module docstring)

        if self._popen.poll() is not None:
            return self._popen.returncode
        if self._exited is None:
            self._exited = self._watch()
        return await asyncio.shield(self._exited)

    def _watch(self) -> asyncio.Future[int]:
        import asyncio

        loop = asyncio.get_running_loop()
        exited: asyncio.Future[int] = loop.create_future()
        try:
            pidfd = os.pidfd_open(self._popen.pid)
        except (AttributeError, OSError):  # no pidfd (not Linux >= 5.3): a thread blocks in waitpid instead
            waiting = loop.run_in_executor(None, self._popen.wait)
            waiting.add_done_callback(lambda done: None if exited.done() else exited.set_result(done.result()))
            return exited

        def on_exit() -> None:
            returncode = self._popen.poll()
            if returncode is not None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
                if not exited.done():
                    exited.set_result(returncode)

        loop.add_reader(pidfd, on_exit)
        on_exit()  # it may have exited before the pidfd was open
        return exited


def start_child(argv: Sequence[str], **popen_args: object) -> ChildProcess:
    """``subprocess.Popen(argv, **popen_args)`` as a :class:`ChildProcess`."""
    return ChildProcess(subprocess.Popen(list(argv), **popen_args))  # type: ignore[call-overload]
