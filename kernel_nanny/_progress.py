"""A one-line status on a terminal while the command waits: what it waits for, for how long, how to stop.

Nothing is shown for waits under a second, nor when stderr is not a terminal
(scripts and logs get no carriage returns). The line is redrawn once a second
(a display clock, not a poll: nothing is checked) and erased when the wait ends.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["Progress"]

#: Waits shorter than this show nothing.
SHOW_AFTER = 1.0


class Progress:
    """``async with Progress("spec/python3 to become ready"):`` around a wait."""

    def __init__(self, what: str, *, stop_hint: str = "Ctrl-C stops waiting", stream: TextIO | None = None) -> None:
        self.what = what
        self.stop_hint = stop_hint
        self._stream = stream or sys.stderr
        self._task: asyncio.Task[None] | None = None
        self._shown = False

    def update(self, what: str) -> None:
        """Wait for ``what`` from now on (a queued job's state: ``Slurm job 12 PENDING (Resources)``)."""
        self.what = what

    def on_launch_event(self, event: str, content: Mapping[str, Any]) -> None:
        """A launch listener (:func:`kernel_nanny.launch.progress.listening`): show what the launch waits for."""
        message = content.get("message")
        if event == "kernel_pending" and isinstance(message, str):
            self.update(message)

    async def __aenter__(self) -> Progress:
        if self._stream.isatty():
            self._task = asyncio.get_running_loop().create_task(self._show(time.monotonic()))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    async def _show(self, since: float) -> None:
        await asyncio.sleep(SHOW_AFTER)
        while True:
            self._shown = True
            waited = time.monotonic() - since
            self._stream.write(f"\r\x1b[Kkernel-nanny: waiting for {self.what} ({waited:.0f} s; {self.stop_hint})")
            self._stream.flush()
            await asyncio.sleep(1.0)
