"""BlockingTwin: the one blocking-twin mechanism, with the two variations jupyter_client's managers need.

The classes built on it (the blocking clients, BlockingKernelExecution, the
compat managers) are tested with real kernels elsewhere; these tests pin the
mechanism itself on a small async object.
"""

from __future__ import annotations

import asyncio
import threading

from kernel_nanny._lifetime import Lifetime
from kernel_nanny._loop import BlockingTwin, blocking


class Counter(Lifetime):
    """An async object with a plain method that needs the running loop, and a coroutine."""

    def __init__(self) -> None:
        self.total = 0

    def thread_name(self) -> str:
        asyncio.get_running_loop()  # raises RuntimeError unless called on the loop thread
        return threading.current_thread().name

    async def add(self, n: int) -> int:
        self.total += n
        return self.total


class BlockingCounter(BlockingTwin):
    _thread_name = "test-twin"

    thread_name = blocking(Counter.thread_name)
    add = blocking(Counter.add)


class OnDemandCounter(BlockingCounter):
    _thread_name = "test-twin-on-demand"
    _loop_on_demand = True


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_plain_methods_and_coroutines_run_on_the_loop_thread():
    with BlockingCounter(Counter()) as twin:
        assert len(_threads("test-twin")) == 1
        assert twin.thread_name() == "test-twin"
        assert twin.add(2) == 2
    assert _threads("test-twin") == []


def test_an_on_demand_loop_starts_at_the_first_call_and_again_after_a_release():
    twin = OnDemandCounter(Counter())
    assert _threads("test-twin-on-demand") == []
    assert twin.add(1) == 1
    assert len(_threads("test-twin-on-demand")) == 1
    twin._release_loop()  # what compat does once a manager's kernel is shut down
    assert _threads("test-twin-on-demand") == []
    assert twin.add(1) == 2  # the same object, driven by a new thread
    twin.close()
    assert _threads("test-twin-on-demand") == []


def test_a_twin_with_an_owner_runs_on_the_owners_thread_and_leaves_it_running():
    owner = OnDemandCounter(Counter())
    shared = BlockingCounter._around(Counter(), owner=owner)
    assert _threads("test-twin") == []  # no thread of its own
    assert shared.thread_name() == "test-twin-on-demand"
    shared.close()
    assert len(_threads("test-twin-on-demand")) == 1
    assert owner.add(5) == 5
    owner.close()
    assert _threads("test-twin-on-demand") == []
