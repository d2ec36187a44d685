"""A launch under way in the daemon: what it starts, and what it reported last (``launch_progress``).

A launch that waits (a Slurm job in the queue) reports its state as it changes
(:func:`~kernel_nanny.launch.progress.report_pending`). In the daemon, the
launch's client is in another process: it asks with a long poll, which the next
report (or the launch's end) answers at once, so a queue line on the client's
terminal changes when the job's state does, with no polling in between.
``kernel-nanny ps`` lists the launches under way (``list_launches``), and
``stop --all`` cancels them (``cancel_launches``): a job queued for hours is
neither hidden nor left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["LaunchProgress"]


class LaunchProgress:
    """One launch: its kernel type and name, its last event (``count`` says how many there were), whether it ended."""

    def __init__(self, type_id: str, name: str | None) -> None:
        self.type_id = type_id
        self.name = name
        self.since = time.time()
        self.count = 0
        self.event = ""
        self.content: dict[str, Any] = {}
        self.done = False
        self._changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return f"<LaunchProgress {self.type_id} name={self.name!r} count={self.count} done={self.done}>"

    def to_dict(self) -> dict[str, Any]:
        """The launch as ``list_launches`` shows it."""
        return {
            "type_id": self.type_id,
            "name": self.name,
            "since": self.since,
            "event": self.event,
            "content": self.content,
        }

    def report(self, event: str, content: Mapping[str, Any]) -> None:
        """A launch listener (:func:`~kernel_nanny.launch.progress.listening`)."""
        self.count += 1
        self.event, self.content = event, dict(content)
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    async def after(self, seen: int, wait: float) -> dict[str, Any]:
        """The state once there is an event after the ``seen`` first, or the launch ended, or ``wait`` passed."""
        if self.count <= seen and not self.done and wait > 0:
            await asyncio.wait({self._changed}, timeout=wait)
        return {"count": self.count, "event": self.event, "content": self.content, "done": self.done}

    def _wake(self) -> None:
        self._changed.set_result(None)
        self._changed = asyncio.get_running_loop().create_future()
