"""Replay protection with bounded memory.

A receiver remembers the signatures of the most recent messages and rejects a
repeat. Memory is bounded by evicting the oldest signature first (a FIFO), so
the guard keeps working for any number of messages; jupyter_protocol 0.2.0
crashed at 65,537 because its eviction used ``random.sample`` on a set.
Signatures are remembered by their 64-bit hash (a third of the memory of the
hex digests; a false alarm needs a 64-bit collision with a recent message).
"""

from __future__ import annotations

from collections import deque

from .._exceptions import ReplayedMessage

__all__ = ["DEFAULT_REPLAY_WINDOW", "ReplayGuard"]

#: How many recent signatures a receiver remembers (as jupyter_client: 2**16).
DEFAULT_REPLAY_WINDOW = 65536


class ReplayGuard:
    """Remembers the last ``window`` signatures and rejects any seen again."""

    __slots__ = ("_order", "_seen", "window")

    def __init__(self, window: int = DEFAULT_REPLAY_WINDOW) -> None:
        if window < 1:
            raise ValueError("replay window must be at least 1")
        self.window = window
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, signature: bytes) -> None:
        """Record ``signature``, or raise :class:`~kernel_nanny.ReplayedMessage` if it is a repeat."""
        digest = hash(signature)
        if digest in self._seen:
            raise ReplayedMessage("duplicate signature: message replayed or sent twice")
        self._seen.add(digest)
        self._order.append(digest)
        if len(self._order) > self.window:
            self._seen.discard(self._order.popleft())
