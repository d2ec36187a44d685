"""Logging that cannot be flooded: a burst of lines per interval, then a count."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .defaults import BAD_INPUT_LOG_INTERVAL

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Logs at most ``burst`` warnings per ``interval`` seconds and counts the rest.

    A client sending thousands of bad messages must not fill the disk or the
    journal; the first few are logged in full, then one line says how many
    were suppressed.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = 5,
        interval: float = BAD_INPUT_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._window_start = -interval
        self._count = 0
        self.suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._window_start >= self._interval:
            if self.suppressed:
                self._log.warning("(%d similar messages suppressed)", self.suppressed)
            self._window_start, self._count, self.suppressed = now, 0, 0
        self._count += 1
        if self._count <= self._burst:
            self._log.warning(message, *args)
        else:
            self.suppressed += 1
