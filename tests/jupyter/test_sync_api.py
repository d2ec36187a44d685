"""jupyter_client's synchronous API and command-line tools through the provisioner.

jupyter_client's synchronous wrappers run each call on whichever event loop is
at hand: the thread's own when none is running, a runner thread's loop when
one is (a tornado callback of ``jupyter kernel``, a ``MultiKernelManager``
calling its ``KernelManager``). The provisioner must work whichever loop asks.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from jupyter_client import KernelManager, MultiKernelManager

from kernel_nanny.client.running import RunningKernel, list_running_kernels, pid_alive

from .conftest import NANNY_SPEC, running_ids

T = TypeVar("T")
JUPYTER = [sys.executable, "-m", "jupyter"]
CLI = [sys.executable, "-m", "kernel_nanny"]
SLEEP = "import time\nprint('go', flush=True)\ntime.sleep(60)"


def in_a_running_loop(call: Callable[[], T]) -> T:
    """Make a synchronous jupyter_client call from inside a running event loop, as ``jupyter kernel`` does.

    jupyter_client then runs it on its runner thread's loop, not the one the kernel started on.
    """

    async def inside() -> T:
        return call()

    return asyncio.run(inside())


def nanny_named(name: str) -> RunningKernel:
    [nanny] = [k for k in list_running_kernels() if k.name == name]
    return nanny


def assert_gone(nanny: RunningKernel) -> None:
    assert nanny.kernel_id not in running_ids()
    assert not pid_alive(nanny.nanny_pid)
    assert not nanny.connection_file.exists()


def interrupted_sleep(kc: Any, interrupt: Callable[[], None]) -> dict[str, Any]:
    """Start a long sleep, call ``interrupt()`` once the cell's code runs; the execute_reply's content."""
    msg_id = kc.execute(SLEEP)
    while True:  # the cell's own output proves its code is running
        msg = kc.get_iopub_msg(timeout=60)
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            break
    interrupt()
    reply = kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    content: dict[str, Any] = reply["content"]
    return content


@pytest.fixture
def no_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if kernel-nanny or jupyter_client logged a warning or an error."""
    with caplog.at_level(logging.WARNING):
        yield
    warnings = [r.getMessage() for r in caplog.get_records("call") if r.levelno >= logging.WARNING]
    assert warnings == []


@pytest.fixture
def started_elsewhere() -> Iterator[Callable[[], set[str]]]:
    """Ids of the nannies started since the test began (by its subprocess); any left at the end are stopped."""
    before = running_ids()

    def new() -> set[str]:
        return running_ids() - before

    yield new
    for kernel_id in new():
        subprocess.run([*CLI, "stop", kernel_id, "--now"], capture_output=True, timeout=120)


def test_a_synchronous_kernel_manager_works_from_another_event_loop(no_warnings):
    km = KernelManager(kernel_name=NANNY_SPEC)
    km.start_kernel()  # on this thread's loop; the calls below run on jupyter_client's runner loop
    try:
        nanny = nanny_named(km.kernel_id)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            reply = interrupted_sleep(kc, lambda: in_a_running_loop(km.interrupt_kernel))
            assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
            in_a_running_loop(km.restart_kernel)
            assert in_a_running_loop(km.is_alive)
            assert nanny_named(km.kernel_id).kernel_id == nanny.kernel_id  # restarted in place
        finally:
            kc.stop_channels()
        in_a_running_loop(km.shutdown_kernel)
        assert not km.has_kernel
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    assert_gone(nanny)


def test_a_synchronous_multi_kernel_manager_starts_interrupts_restarts_and_shuts_down(no_warnings):
    mkm = MultiKernelManager()
    kernel_id = mkm.start_kernel(kernel_name=NANNY_SPEC)
    try:
        nanny = nanny_named(kernel_id)
        kc = mkm.get_kernel(kernel_id).client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            reply = interrupted_sleep(kc, lambda: mkm.interrupt_kernel(kernel_id))
            assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
            mkm.restart_kernel(kernel_id)
            assert mkm.is_alive(kernel_id)
            assert nanny_named(kernel_id).kernel_id == nanny.kernel_id
        finally:
            kc.stop_channels()
        mkm.shutdown_kernel(kernel_id)
        assert kernel_id not in mkm
    finally:
        mkm.shutdown_all(now=True)
    assert_gone(nanny)


def test_jupyter_run_runs_a_script_and_leaves_nothing(tmp_path, started_elsewhere):
    script = tmp_path / "s.py"
    script.write_text("print(6 * 7)\n")
    done = subprocess.run(
        [*JUPYTER, "run", f"--kernel={NANNY_SPEC}", str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout
    assert "ERROR" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert started_elsewhere() == set()


def test_jupyter_kernel_exits_on_sigterm_and_leaves_nothing(started_elsewhere):
    process = subprocess.Popen(
        [*JUPYTER, "kernel", f"--kernel={NANNY_SPEC}"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert process.stderr is not None
    with process, process.stderr:
        try:
            said = ""
            while "To connect a client" not in said:  # said once the kernel runs
                line = process.stderr.readline()
                assert line, f"jupyter kernel exited: {said}"
                said += line
            [nanny] = [k for k in list_running_kernels() if k.kernel_id in started_elsewhere()]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
            said += process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
    assert "ERROR" not in said and "Traceback" not in said, said
    assert_gone(nanny)
