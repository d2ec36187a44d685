"""Helpers that the tests of several layers share (the fixtures are in the conftest.py files)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from kernel_nanny import KernelClient, ManagerClient
from kernel_nanny.client.kernel import ExecutionResult

T = TypeVar("T")

#: Code that says it runs, then sleeps in C (the kernel is interrupted out of ``time.sleep``).
SLEEP = "print('go', flush=True)\nimport time; time.sleep(60)"
#: Code that says it runs, then loops in Python (the kernel is interrupted between bytecodes).
BUSY_LOOP = "print('go', flush=True)\nwhile True: pass"


class Interruptible(Protocol):
    async def interrupt(self) -> None: ...


async def interrupted(connection_info: Mapping[str, Any], manager: Interruptible, code: str = SLEEP) -> ExecutionResult:
    """Run ``code`` in the kernel, interrupt it through ``manager`` once it runs, and return the result.

    The interrupt waits for the code's first output: ipykernel ignores SIGINT
    between requests, so an earlier one would be lost.
    """
    async with KernelClient(dict(connection_info)) as client:
        await client.wait_for_ready(timeout=30)
        started = asyncio.Event()
        execution = asyncio.ensure_future(client.execute_interactive(code, output_hook=lambda msg: started.set()))
        await asyncio.wait_for(started.wait(), 30)
        await manager.interrupt()
        return await asyncio.wait_for(execution, 30)


class ManagerEvents:
    """A :class:`ManagerClient`'s events but heartbeats, collected from the subscription on, and waited for."""

    def __init__(self, manager: ManagerClient) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()
        manager.add_event_handler(self._on)

    @classmethod
    async def subscribed(cls, manager: ManagerClient) -> ManagerEvents:
        """Events from now on: subscribed before the test acts, so none is missed."""
        events = cls(manager)
        await manager._subscribe()
        return events

    def _on(self, event: Any) -> None:
        if event.msg_type != "heartbeat":
            self.seen.append((event.msg_type, event.content))
            self._changed.set()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.seen]

    def lifecycle(self) -> list[str]:
        """The events about the kernel's life, without its output."""
        return [kind for kind in self.kinds() if kind != "stream"]

    async def until(self, kind: str, count: int = 1, timeout: float = 60) -> dict[str, Any]:
        """Wait until ``count`` events of ``kind`` were seen; returns the content of the last of them."""

        def found() -> dict[str, Any] | None:
            matching = [content for seen_kind, content in self.seen if seen_kind == kind]
            return matching[count - 1] if len(matching) >= count else None

        return await self._when(found, timeout)

    async def first(self, accept: Callable[[str, dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        """The content of the first event (seen or to come) for which ``accept(kind, content)`` is true."""
        return await self._when(lambda: next((c for kind, c in self.seen if accept(kind, c)), None), timeout)

    async def _when(self, found: Callable[[], T | None], timeout: float) -> T:
        async def wait() -> T:
            while (result := found()) is None:
                self._changed.clear()
                await self._changed.wait()
            return result

        return await asyncio.wait_for(wait(), timeout)
