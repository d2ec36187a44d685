"""Background tasks that are never lost and never fail silently.

Every long-lived task kernel-nanny starts goes through :class:`TaskGroup`: it
keeps a strong reference (asyncio only keeps weak ones), logs an unexpected
failure, and cancels everything in one call at teardown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

__all__ = ["TaskGroup", "wait_for"]

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], seconds: float | None) -> T:
    """``asyncio.wait_for`` that never swallows a cancellation.

    Up to Python 3.11, ``asyncio.wait_for`` returns the result instead of
    raising ``CancelledError`` when its task is cancelled just as the awaited
    operation completes (gh-86296). A task cancelled that way carries on: a
    ``ManagerClient.wait()`` cancelled at the moment its info reply arrived
    went on waiting for a death that never came, and its canceller waited
    for ever. Raises ``asyncio.TimeoutError`` after ``seconds`` (None: no limit).
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})  # let it finish cancelling (its own clean-up runs now)
        raise asyncio.TimeoutError
    return task.result()


class TaskGroup:
    """Owns background tasks for one object's lifetime."""

    def __init__(self, logger: logging.Logger) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log = logger

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def cancel(self) -> None:
        """Ask every task to stop (the synchronous half of :meth:`cancel_all`)."""
        current = _current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    async def cancel_all(self) -> None:
        current = _current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # called outside a running loop (e.g. close() at teardown)
        return None
