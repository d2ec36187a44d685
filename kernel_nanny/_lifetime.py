"""One lifetime for every long-lived object, in asyncssh's words.

::

    obj.close()              synchronous and idempotent: starts closing
    await obj.wait_closed()  finishes closing (waits for close() if nobody called it yet)
    obj.abort()              closes forcefully, where the object owns a process or a kernel
    async with obj: ...      uses it, then close() and wait_closed(), also when the body raises

An object goes ``open -> closing -> closed`` and never back: once closing,
using it or entering ``async with`` again raises :exc:`ClientClosed` naming
it. Clients, the SSH tunnel, the Docker stream threads, executions and the
compat managers all follow this, so callers learn one vocabulary and each
class writes only its teardown (:meth:`Lifetime._begin_closing` and
:meth:`Lifetime._finish_closing`), never the bookkeeping around it.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TypeVar

from ._exceptions import ClientClosed

__all__ = ["Lifetime", "LifetimeState", "closed_error"]

L = TypeVar("L", bound="Lifetime")


def closed_error(obj: object) -> ClientClosed:
    """The error for using ``obj`` (or entering it again) once it was closed; it names the object."""
    return ClientClosed(f"{obj!r} was closed; it cannot be used or reopened (make a new one)")


class LifetimeState(enum.Enum):
    """Where an object is in its one lifetime (shown in reprs as ``state=open``)."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Lifetime:
    """The lifetime methods, the state and its checks; a subclass supplies the teardown.

    ``_begin_closing()`` is the synchronous part (fail pending requests,
    cancel tasks, close sockets) that :meth:`close` runs once;
    ``_finish_closing()`` the part that needs awaiting (wait for tasks,
    shut an own kernel down) that the first :meth:`wait_closed` runs once,
    shielded, so a cancelled waiter does not cut it short.
    """

    _state = LifetimeState.OPEN
    _close_called: asyncio.Future[None] | None = None
    _teardown: asyncio.Future[None] | None = None

    @property
    def state(self) -> LifetimeState:
        """``open``, ``closing`` (close() or abort() was called) or ``closed`` (the teardown finished)."""
        return self._state

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or ``abort()``) was called: the object is closing or closed."""
        return self._state is not LifetimeState.OPEN

    def close(self) -> None:
        """Start closing (idempotent); :meth:`wait_closed` finishes it."""
        if self._state is not LifetimeState.OPEN:
            return
        self._state = LifetimeState.CLOSING
        if self._close_called is not None and not self._close_called.done():
            self._close_called.set_result(None)
        self._begin_closing()

    async def wait_closed(self) -> None:
        """Finish closing; on an open object, first wait for somebody to :meth:`close` it."""
        if self._state is LifetimeState.OPEN:
            if self._close_called is None:
                self._close_called = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._close_called)
        if self._teardown is None:
            self._teardown = asyncio.ensure_future(self._finish_closing())
            self._teardown.add_done_callback(self._now_closed)
        await asyncio.shield(self._teardown)

    def _now_closed(self, _: asyncio.Future[None]) -> None:
        self._state = LifetimeState.CLOSED

    def _check_open(self) -> None:
        """Raise :exc:`ClientClosed`, naming this object, unless it is open."""
        if self._state is not LifetimeState.OPEN:
            raise closed_error(self)

    async def __aenter__(self: L) -> L:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def _begin_closing(self) -> None:
        """The synchronous teardown (nothing by default)."""

    async def _finish_closing(self) -> None:
        """The teardown that needs awaiting (nothing by default)."""
