"""A private event loop in a background thread, for the blocking wrappers.

Blocking classes run their async twin's coroutines here, so they never touch
(or need) the caller's event loop and messages keep flowing between calls.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, overload

from ._exceptions import ClientClosed
from ._lifetime import LifetimeState, closed_error

__all__ = ["BlockingTwin", "LoopThread", "blocking", "shared_loop"]

T = TypeVar("T")
TwinT = TypeVar("TwinT", bound="BlockingTwin")


class LoopThread:
    """Owns one event loop running in one daemon thread until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception)."""
        if self.loop.is_closed():
            coro.close()
            raise ClientClosed("the blocking client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking method was called from its own event loop thread (e.g. in a hook)")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def run_async(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on this loop, from any loop (cancelling the wait cancels it there)."""
        if asyncio.get_running_loop() is self.loop:
            return await awaitable

        async def there() -> T:
            return await awaitable

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(there(), self.loop))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a plain function on the loop thread (for code that needs the running loop)."""

        async def invoke() -> T:
            return fn(*args)

        return self.run(invoke())

    def stop(self) -> None:
        """Stop the loop and join the thread (idempotent)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


_shared: LoopThread | None = None
_shared_lock = threading.Lock()


def shared_loop() -> LoopThread:
    """The process's loop thread for connections that outlive their caller's event loop.

    jupyter_client's synchronous managers run each call on whichever loop is
    at hand (the thread's own, or a runner thread's when a loop is running
    already), but sockets with reader tasks, futures and pidfd readers belong
    to one loop. The provisioner and :mod:`kernel_nanny.compat`'s async
    classes keep their nanny and kernel connections here, so every caller
    reaches them with :meth:`LoopThread.run_async`. Started at first use; a
    daemon thread, never stopped (one for all kernels, however many).
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoopThread("kernel-nanny-shared")
        return _shared


@overload
def blocking(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]: ...


@overload
def blocking(method: Callable[..., T]) -> Callable[..., T]: ...


def blocking(method: Callable[..., Any]) -> Callable[..., Any]:
    """Make a blocking method from a method of the wrapped object (``self._async``).

    The method is called on the loop thread, so a plain method that needs the
    running loop (jupyter_client's ``start_channels()``, an ``execute()`` that
    may return an awaitable) is wrapped the same way as a coroutine function.
    """

    @functools.wraps(method)
    def wrapper(self: BlockingTwin, *args: Any, **kwargs: Any) -> Any:
        self._check_open()

        async def call() -> Any:
            result = method(self._async, *args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return self._loop.run(call())

    return wrapper


class BlockingTwin:
    """Base of the blocking classes: an async object driven on a private loop thread.

    Subclasses set ``_thread_name`` and declare their methods with :func:`blocking`;
    the async object has the one lifetime (:mod:`kernel_nanny._lifetime`), and
    so has the twin: :meth:`close` (also at the end of a ``with`` block) closes
    both, and a closed twin refuses calls and a new ``with`` (:exc:`ClientClosed`).

    The loop thread starts with the twin and :meth:`close` stops it for good.
    Two variations serve jupyter_client's managers (:mod:`kernel_nanny.compat`),
    whose users never close them: with ``_loop_on_demand`` the thread starts
    at the first call and :meth:`_release_loop` stops it until the next one;
    a twin made with ``owner=`` (a manager a ``MultiKernelManager`` hands
    out) runs on its owner's thread and never stops it.
    """

    _thread_name = "kernel-nanny"
    #: Start the loop thread at the first call (and again after :meth:`_release_loop`).
    _loop_on_demand = False

    def __init__(self, async_object: Any, *, owner: BlockingTwin | None = None) -> None:
        self._async = async_object
        self._owner = owner
        eager = owner is None and not self._loop_on_demand
        self._own_loop = LoopThread(self._thread_name) if eager else None

    @classmethod
    def _around(cls: type[TwinT], async_object: Any, *, owner: BlockingTwin | None = None) -> TwinT:
        """A twin of an async object that exists already (a subclass's constructor makes a new one)."""
        twin = cls.__new__(cls)
        BlockingTwin.__init__(twin, async_object, owner=owner)
        return twin

    @property
    def _loop(self) -> LoopThread:
        if self._owner is not None:
            return self._owner._loop
        loop = self._own_loop
        if loop is None or (self._loop_on_demand and loop.loop.is_closed()):
            loop = self._own_loop = LoopThread(self._thread_name)
        return loop

    def _release_loop(self) -> None:
        """Stop this twin's own loop thread (an owner's thread keeps running)."""
        if self._owner is None and self._own_loop is not None:
            self._own_loop.stop()

    def __repr__(self) -> str:
        return f"<Blocking{repr(self._async)[1:]}"

    def __enter__(self: TwinT) -> TwinT:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        """The async object's lifetime is the twin's: once it is closed, every call raises ClientClosed."""
        if self._async.closed:
            raise closed_error(self)

    @property
    def connection_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._async.connection_info
        return info

    def close(self) -> None:
        """Close the async object (``close()``, then ``wait_closed()``) and stop the background loop (idempotent)."""
        if self._async.state is not LifetimeState.CLOSED:
            self._loop.call(self._async.close)
            self._loop.run(self._async.wait_closed())
        self._release_loop()
