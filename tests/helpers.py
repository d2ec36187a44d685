"""Helpers that the tests of several layers share (the fixtures are in the conftest.py files)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import site
import subprocess
import sys
import venv
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kernel_nanny import KernelClient, ManagerClient
from kernel_nanny.client.kernel import ExecutionResult

#: The command line as a user types it: ``kernel-nanny`` of this Python.
CLI = [sys.executable, "-m", "kernel_nanny"]


def run_cli(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``kernel-nanny ARGS`` to its end; its status, stdout and stderr as text."""
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout)


T = TypeVar("T")

# The code says "go" from a timer thread once its main thread is well inside the sleep or loop: a "go"
# printed before it could draw the interrupt while ipykernel is still flushing the print, where the
# KeyboardInterrupt does not surface as the cell's error.
_GO_SOON = "import threading, time\nthreading.Timer(0.05, print, ('go',), {'flush': True}).start()\n"
#: Code that sleeps in C and says "go" once it does (the kernel is interrupted out of ``time.sleep``).
SLEEP = _GO_SOON + "time.sleep(60)"
#: Code that loops in Python and says "go" once it does (the kernel is interrupted between bytecodes).
BUSY_LOOP = _GO_SOON + "while True: pass"


class Interruptible(Protocol):
    async def interrupt(self) -> None: ...


async def interrupted(connection_info: Mapping[str, Any], manager: Interruptible, code: str = SLEEP) -> ExecutionResult:
    """Run ``code`` in the kernel, interrupt it through ``manager`` once it runs, and return the result.

    The interrupt waits for the code's "go": ipykernel ignores SIGINT between
    requests, so an earlier one would be lost.
    """
    async with KernelClient(dict(connection_info)) as client:
        await client.wait_for_ready(timeout=30)
        started = asyncio.Event()

        def on_output(msg: Any) -> None:
            if msg.msg_type == "stream" and "go" in msg.content.get("text", ""):
                started.set()

        execution = asyncio.ensure_future(client.execute_interactive(code, output_hook=on_output))
        await asyncio.wait_for(started.wait(), 30)
        await manager.interrupt()
        return await asyncio.wait_for(execution, 30)


@contextmanager
def jupyter_client_on(connection_file: str | os.PathLike[str], timeout: float = 30) -> Iterator[Any]:
    """jupyter_client's own BlockingKernelClient on ``connection_file``, ready; its channels stop on exit.

    The interop tests use it to show that a connection file we write is one
    jupyter_client understands (jupyter_client is imported here, not by every test module).
    """
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient()
    kc.load_connection_file(str(connection_file))
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        yield kc
    finally:
        kc.stop_channels()


def environment_with_ipykernel(path: Path) -> Path:
    """A venv at ``path`` (without pip) that imports ipykernel from the Python running the tests.

    ``system_site_packages`` gives a venv its *base* interpreter's packages, which
    do not hold ipykernel when the tests themselves run in a venv: a .pth file
    adds the running interpreter's site directories as well.
    """
    venv.create(path, system_site_packages=True, with_pip=False)
    [site_packages] = path.glob("lib/python*/site-packages")
    (site_packages / "kernel-nanny-tests.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return path


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
        await manager.subscribe()
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


class ProcessExit:
    """The exit of a process that need not be our child, watched from now on by pidfd (not fooled by a reused pid).

    An already-exited process counts as exited.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None

    async def wait(self, timeout: float = 60) -> None:
        """Return once the process has exited (its pidfd becomes readable); TimeoutError after ``timeout`` s."""
        if self._pidfd is None:
            return
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        loop.add_reader(self._pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            await asyncio.wait_for(exited, timeout)
        finally:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


def exits(pid: int) -> bool:
    """Whether process ``pid`` exits (within a minute: an event, not a poll)."""
    with contextlib.suppress(ProcessLookupError):
        pidfd = os.pidfd_open(pid)
        try:
            return bool(select.select([pidfd], [], [], 60)[0])
        finally:
            os.close(pidfd)
    return True


def run_on_a_terminal(*args: str, until: str | None = None, then: list[str] | None = None) -> str:
    """Run the command with stderr (and stdout) on a pseudo-terminal; return all it wrote. When ``until``
    shows up, run ``then`` (another command) and keep reading."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([*CLI, *args], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if until is not None and until.encode() in seen and then is not None:
                subprocess.run([*CLI, *then], capture_output=True, timeout=60)
                then = None
    finally:
        os.close(leader)
        process.wait(timeout=60)
    return seen.decode(errors="replace")
