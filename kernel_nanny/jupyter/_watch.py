"""What a provisioner knows of its nanny's kernel, kept current by events.

jupyter_client asks a provisioner ``poll()`` every 100 ms while a kernel shuts
down, and its restarter asks every few seconds. Instead of a request per
question, :class:`NannyWatch` follows the nanny's event stream
(``kernel_died``, ``kernel_restarted``, ``restart_failed``, ``nanny_exiting``)
and counts what happened, so "has the kernel died since I asked it to stop?"
is a comparison of two counters. The nanny process's own end is observed
through a pidfd (Linux), so a nanny that was SIGKILLed is noticed when it
happens, not after missed heartbeats.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from .._tasks import wait_for
from ..client.manager import ManagerClient
from ..client.running import pid_alive
from ..defaults import NANNY_EXIT_CHECK_INTERVAL
from ..protocol import ExitStatus, Message

__all__ = ["NannyWatch", "popen_returncode"]

log = logging.getLogger("kernel_nanny.jupyter")


def popen_returncode(death: Mapping[str, Any] | None) -> int | None:
    """A ``kernel_died`` event's (or ``last_exit``'s) status as :class:`subprocess.Popen` reports it."""
    if death is None:
        return None
    status = ExitStatus.from_dict(death)
    return -status.signal if status.signal is not None else status.exit_code or 0


class NannyWatch:
    """Counts a nanny's kernel deaths and restarts, and notices the nanny's own end."""

    def __init__(self, manager: ManagerClient, nanny_pid: int) -> None:
        self.manager = manager
        self.nanny_pid = nanny_pid
        #: Kernel deaths, restarts (by the nanny or on request) and failed restarts seen so far.
        self.deaths = self.restarts = self.failures = 0
        #: The content of the last ``kernel_died`` event.
        self.last_death: dict[str, Any] | None = None
        #: The nanny said ``nanny_exiting``, or its process is gone.
        self.exiting = False
        self._gone = False
        self._live = asyncio.Event()
        self._changed = asyncio.Event()
        self._pidfd: int | None = None

    @classmethod
    async def attach(cls, manager: ManagerClient, nanny_pid: int, timeout: float) -> NannyWatch:
        """Follow ``manager``'s nanny; returns once the event subscription is live."""
        watch = cls(manager, nanny_pid)
        manager.add_event_handler(watch._on_event)
        watch._watch_process()
        # The nanny greets every new subscriber with a heartbeat: the first event proves we hear it.
        done = await watch.until(lambda: watch._live.is_set() or watch._gone, timeout)
        if not done:
            watch.close()
            raise TimeoutError(f"no event from the nanny of kernel {manager.kernel_id[:8]} within {timeout:g} s")
        return watch

    @property
    def gone(self) -> bool:
        """Whether the nanny process has exited."""
        if not self._gone and self._pidfd is None and not pid_alive(self.nanny_pid):
            self._gone = True
        return self._gone

    def _watch_process(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.nanny_pid)
        except ProcessLookupError:
            self._gone = self.exiting = True
            return
        except (AttributeError, OSError):  # not Linux (or an old kernel): ``gone`` asks the pid instead
            return
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        self._close_pidfd()
        self._gone = self.exiting = True
        self._notify()

    def _on_event(self, event: Message) -> None:
        kind = event.msg_type
        if kind == "heartbeat" and self._live.is_set():
            return  # only the first one (the greeting) tells waiters something
        self._live.set()
        if kind == "kernel_died":
            self.deaths += 1
            self.last_death = dict(event.content)
        elif kind == "kernel_restarted":
            self.restarts += 1
        elif kind == "restart_failed":
            self.failures += 1
        elif kind == "nanny_exiting":
            self.exiting = True
        self._notify()

    def _notify(self) -> None:
        # Waiters hold the current event; a fresh one is armed for the next change.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def marks(self) -> tuple[int, int, int]:
        """The counts so far, (deaths, restarts, failures): later counts above them say what happened since."""
        return self.deaths, self.restarts, self.failures

    @property
    def exit_code(self) -> int | None:
        """The last death's status in :class:`subprocess.Popen` terms (None: none seen)."""
        return popen_returncode(self.last_death)

    async def until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every event); False after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not predicate():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return predicate()
        return True

    async def nanny_exited(self, timeout: float) -> bool:
        """Wait for the nanny process to exit; False if it is still there after ``timeout`` s."""
        if self._pidfd is not None or self._gone:
            return await self.until(lambda: self._gone, timeout)
        # No pidfd: nothing to wait on but the pid itself. A bounded check, and only once the
        # nanny announced its exit, which leaves it a few milliseconds of teardown.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.gone:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(NANNY_EXIT_CHECK_INTERVAL)
        return True

    def kill_nanny(self) -> None:
        """SIGKILL the nanny (its kernel dies with it): the last resort of a stuck shutdown."""
        if not self.gone:
            try:
                os.kill(self.nanny_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Stop following the nanny (it keeps running)."""
        self._close_pidfd()
        try:
            self.manager.remove_event_handler(self._on_event)
        except ValueError:
            pass

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._pidfd)
            except RuntimeError:  # closed outside the loop: the loop is gone, so is its reader
                pass
            os.close(self._pidfd)
            self._pidfd = None
