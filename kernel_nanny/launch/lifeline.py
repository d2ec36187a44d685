"""Make a kernel's whole process group die with the process that owns it.

A tiny ``sh`` watcher, in its own session, reads from a pipe whose only write
end the owner holds. If the owner dies, however it dies (SIGKILL included),
the kernel sees EOF and kills the kernel's process group: the kernel and
everything it started. When the owner stops the kernel itself, it "disarms"
the watcher first. This reacts to the event (EOF) with no polling, and, unlike
``PR_SET_PDEATHSIG``, it also covers the kernel's own children.
"""

from __future__ import annotations

import asyncio
import logging
import os

__all__ = ["Lifeline"]

log = logging.getLogger("kernel_nanny.launch")

# POSIX sh (dash) takes no "--" before a negative pid: "-<pgid>" names the process group.
_WATCHER = 'read -r word; [ "$word" = disarm ] || kill -9 "-$1" 2>/dev/null'


class Lifeline:
    """One watcher for one process group."""

    def __init__(self, process: asyncio.subprocess.Process, write_fd: int) -> None:
        self._process = process
        self._write_fd: int | None = write_fd

    @classmethod
    async def attach(cls, pgid: int) -> Lifeline:
        read_fd, write_fd = os.pipe()  # not inheritable: only the watcher gets (a copy of) the read end
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                _WATCHER,
                "kernel-nanny-lifeline",
                str(pgid),
                stdin=read_fd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        return cls(process, write_fd)

    async def disarm(self) -> None:
        """Tell the watcher to exit without killing anything, and reap it."""
        if self._write_fd is None:
            return
        try:
            os.write(self._write_fd, b"disarm\n")
        except OSError:  # the watcher is already gone
            pass
        finally:
            os.close(self._write_fd)
            self._write_fd = None
        await self._process.wait()
