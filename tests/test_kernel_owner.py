"""A kernel started through compat or KernelExecution ends when the process that started it ends.

Each test runs the client as a real subprocess, learns its nanny and kernel,
ends the client (a normal exit without shutdown, or SIGKILL) and waits on
pidfds of the nanny and the kernel: the event of their exit, no polling.
Persistent kernels (``persistent=True``, group kernels, ``kernel-nanny start``)
stay.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from kernel_nanny import ManagerClient
from kernel_nanny.client.running import RunningKernel, find_running_kernel

from .helpers import ProcessExit

#: Starts a kernel the way the test says, prints its id, then waits for stdin to close and exits without
#: shutting the kernel down (unless it is killed before).
CLIENT = textwrap.dedent(
    """
    import json, sys
    how = sys.argv[1]
    if how.startswith("compat"):
        from kernel_nanny.compat import KernelManager

        km = KernelManager("pyimport/kernel", **({"persistent": True} if how == "compat-persistent" else {}))
        km.start_kernel()
        ref = km.kernel_id
    else:
        from kernel_nanny import BlockingKernelExecution

        options = {"group": sys.argv[2]}
        if how == "group-tied":
            options["persistent"] = False
        execution = BlockingKernelExecution("pyimport/kernel", **options)
        execution.start()
        ref = execution.name
    print(json.dumps(ref), flush=True)
    sys.stdin.read()
    """
)


@dataclass
class Started:
    process: asyncio.subprocess.Process
    kernel: RunningKernel
    kernel_pid: int

    async def end(self, how: str) -> None:
        """End the client: ``exit`` (stdin closed: a normal exit without shutdown) or a signal's name."""
        if how == "exit":
            assert self.process.stdin is not None
            self.process.stdin.close()
        else:
            self.process.send_signal(getattr(signal, how))
        await self.process.wait()


@asynccontextmanager
async def client_process(*args: str) -> AsyncIterator[Started]:
    """The client subprocess and its kernel; whatever survives the test is stopped after it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    kernel: RunningKernel | None = None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        assert line, "the client exited before starting its kernel"
        kernel = find_running_kernel(json.loads(line))
        async with ManagerClient(kernel.info) as manager:
            kernel_pid = (await manager.info())["pid"]
        yield Started(process, kernel, kernel_pid)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        if kernel is not None and kernel.nanny.is_nanny():
            async with ManagerClient(kernel.info) as manager:
                await manager.shutdown(now=True)


async def assert_ends_with_its_client(started: Started, how: str) -> None:
    nanny, kernel = ProcessExit(started.kernel.nanny_pid), ProcessExit(started.kernel_pid)
    await started.end(how)
    await nanny.wait()
    await kernel.wait()
    assert not started.kernel.connection_file.exists()


async def assert_running(kernel: RunningKernel) -> None:
    assert kernel.nanny.is_nanny()
    async with ManagerClient(kernel.info) as manager:
        assert await manager.is_alive()


@pytest.mark.parametrize("how", ["exit", "SIGKILL"])
async def test_a_compat_kernel_ends_with_the_process_that_started_it(how):
    async with client_process("compat") as started:
        await assert_ends_with_its_client(started, how)


async def test_a_persistent_compat_kernel_outlives_its_process():
    async with client_process("compat-persistent") as started:
        await started.end("SIGKILL")
        await assert_running(started.kernel)


async def test_a_group_kernel_outlives_its_process_unless_asked_not_to():
    group = f"owner-{os.getpid()}"
    async with client_process("group", group) as started:
        await started.end("SIGKILL")
        await assert_running(started.kernel)
    async with client_process("group-tied", f"{group}-tied") as started:
        await assert_ends_with_its_client(started, "SIGKILL")


@pytest.fixture
def started_by_the_cli() -> Iterator[RunningKernel]:
    cli = [sys.executable, "-m", "kernel_nanny"]
    result = subprocess.run([*cli, "start", "pyimport/kernel"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    kernel = find_running_kernel(result.stdout.split()[0])
    yield kernel
    subprocess.run([*cli, "stop", kernel.kernel_id], check=True, timeout=120)


async def test_kernels_of_kernel_nanny_start_outlive_the_command(started_by_the_cli):
    # The command has exited before the fixture returns: its kernel is persistent, as it always was.
    await assert_running(started_by_the_cli)
