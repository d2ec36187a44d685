"""A private event loop in a background thread, for the blocking wrappers.

Blocking classes run their async twin's coroutines here, so they never touch
(or need) the caller's event loop and messages keep flowing between calls.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ._exceptions import ClientClosed

__all__ = ["BlockingTwin", "LoopThread", "blocking"]

T = TypeVar("T")


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


def blocking(method: Callable[..., Awaitable[T]]) -> Callable[..., T]:
    """Make a blocking method from an async one of the wrapped object (``self._async``)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        result: T = self._loop.run(method(self._async, *args, **kwargs))
        return result

    return wrapper


class BlockingTwin:
    """Base of the blocking classes: an async object driven on a private loop thread.

    Subclasses set ``_thread_name`` and declare their methods with :func:`blocking`;
    the async object must offer ``close()`` and ``async wait_closed()``.
    """

    _thread_name = "kernel-nanny"

    def __init__(self, async_object: Any) -> None:
        self._loop = LoopThread(self._thread_name)
        self._async = async_object

    def __repr__(self) -> str:
        return f"<Blocking{repr(self._async)[1:]}"

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connection_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._async.connection_info
        return info

    def close(self) -> None:
        """Close the async object and stop the background loop (idempotent)."""
        if not self._loop.loop.is_closed():
            self._loop.call(self._async.close)
            self._loop.run(self._async.wait_closed())
            self._loop.stop()
