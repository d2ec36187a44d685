"""Counting automatic restarts against a :class:`~kernel_nanny.config.RestartPolicy`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..config import RestartPolicy

__all__ = ["RestartBudget"]


class RestartBudget:
    """Remembers when automatic restarts happened and says whether another is allowed."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._recent: deque[float] = deque()

    def _prune(self) -> None:
        horizon = self._clock() - self.policy.window
        while self._recent and self._recent[0] <= horizon:
            self._recent.popleft()

    @property
    def used(self) -> int:
        self._prune()
        return len(self._recent)

    def allows_another(self) -> bool:
        return self.used < self.policy.max_restarts

    def next_delay(self) -> float:
        return self.policy.delay(self.used + 1)

    def record(self) -> None:
        self._recent.append(self._clock())
