"""Make a kernel die with the process that owns it.

A tiny ``sh`` watcher, in its own session, reads from a pipe whose only write
end the owner holds. If the owner dies, however it dies (SIGKILL included),
the watcher sees EOF and runs its action: for a local kernel, kill the
kernel's process group (the kernel and everything it started); for a kernel
in a container, remove the container. When the owner stops the kernel
itself, it "disarms" the watcher first. This reacts to the event (EOF) with no
polling, and, unlike ``PR_SET_PDEATHSIG``, it also covers the kernel's own
children.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Sequence

from .child import ChildProcess, start_child

__all__ = ["Lifeline"]

log = logging.getLogger("kernel_nanny.launch")

# The action is the watcher's arguments, run as a command (not exec'd: "kill" must stay sh's builtin).
_WATCHER = 'read -r word; [ "$word" = disarm ] || "$@" 2>/dev/null'


class Lifeline:
    """One watcher for one kernel: runs an action if the owner dies without disarming it."""

    def __init__(self, process: ChildProcess, write_fd: int) -> None:
        self._process = process
        self._write_fd: int | None = write_fd

    @classmethod
    def attach(cls, pgid: int) -> Lifeline:
        """Kill process group ``pgid`` when the owner dies."""
        # POSIX sh (dash) takes no "--" before a negative pid: "-<pgid>" names the process group.
        return cls.run_on_owner_death(["kill", "-9", f"-{pgid}"])

    @classmethod
    def run_on_owner_death(cls, argv: Sequence[str]) -> Lifeline:
        """Run ``argv`` (a command, or an ``sh`` builtin such as ``kill``) when the owner dies.

        Synchronous, so that it can guard a kernel started before any event loop runs.
        """
        read_fd, write_fd = os.pipe()  # not inheritable: only the watcher gets (a copy of) the read end
        try:
            process = start_child(
                ["/bin/sh", "-c", _WATCHER, "kernel-nanny-lifeline", *argv],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
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
