"""The one back-off of kernel-nanny: waits that double from a first delay up to a limit.

Restarts, reconnections, pool refills and queue checks all retry this way,
so their waits read alike in the logs and are tuned the same way (the
values are in :mod:`kernel_nanny.defaults`).
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["backoff_delay", "backoff_delays"]

#: Doubling stops long before a float could overflow; every limit is reached well before this.
_MAX_DOUBLINGS = 64


def backoff_delay(attempt: int, first: float, limit: float) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): ``first``, doubling each time, never more than ``limit``."""
    return float(min(limit, first * 2 ** min(max(attempt - 1, 0), _MAX_DOUBLINGS)))


def backoff_delays(first: float, limit: float) -> Iterator[float]:
    """:func:`backoff_delay` for attempts 1, 2, 3...: for a loop that retries until it succeeds."""
    attempt = 1
    while True:
        yield backoff_delay(attempt, first, limit)
        attempt += 1
