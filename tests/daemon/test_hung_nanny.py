"""A nanny that runs but does not answer (SIGSTOPped, as a hung one): its kernel is not "not running".

``exec`` says the nanny does not answer and what to do; ``stop --all`` stops
every other kernel and reports this one; a group run refuses to replace the
kernel (it may hold state) and finds it again, state and all, once the nanny
is resumed; ``kill`` ends the nanny. Every stopped nanny is SIGCONTed at the
end, so the cleanup can stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_nanny import KernelExecution, NannyUnavailable
from tests.helpers import exits

CLI = [sys.executable, "-m", "kernel_nanny"]
EXIT_FAILED = 3


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180)


def start(name: str) -> int:
    """Start a kernel named ``name``; its nanny's pid."""
    started = run("start", "pyimport/kernel", "--name", name)
    assert started.returncode == 0, started.stderr
    return int(json.loads(Path(started.stdout.split()[1]).read_text())["nanny_pid"])


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The nanny ``pid`` SIGSTOPped for the block (it runs, but answers nothing)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed meanwhile
            os.kill(pid, signal.SIGCONT)


@pytest.mark.parametrize("through_daemon", [False, True], ids=["alone", "daemon"])
async def test_exec_and_stop_all_name_a_hung_nanny_and_stop_the_others(make_daemon, through_daemon):
    if through_daemon:
        await make_daemon()
    hung, healthy = start("hung"), start("healthy")
    with stopped(hung):
        into = run("exec", "hung", "-c", "print(1)")
        assert into.returncode == EXIT_FAILED
        assert f"kernel hung is running, but its nanny (pid {hung}) is stopped (SIGSTOP)" in into.stderr
        assert f"'kill -CONT {hung}'" in into.stderr and "not running" not in into.stderr

        stop_all = run("stop", "--all", "--now")
        assert stop_all.returncode == EXIT_FAILED
        assert f"kernel hung is running, but its nanny (pid {hung}) is stopped" in stop_all.stderr
        assert exits(healthy), "stop --all gave up before the healthy kernel"
    assert run("exec", "hung", "-c", "print(1)").stdout == "1\n"
    assert run("stop", "hung", "--now").returncode == 0


async def test_a_group_kernel_behind_a_hung_nanny_is_refused_not_replaced(isolated):
    group = f"hung{os.getpid()}"
    async with KernelExecution("pyimport/kernel", group=group) as first:
        assert await first.run(["x = 41"]) == 0
        assert first.connection_info is not None
        nanny = int(first.connection_info["nanny_pid"])
    try:
        with stopped(nanny):
            async with KernelExecution("pyimport/kernel", group=group) as second:
                with pytest.raises(NannyUnavailable, match=rf"its nanny \(pid {nanny}\) is stopped"):
                    await second.start()
        async with KernelExecution("pyimport/kernel", group=group) as third:
            seen: list[str] = []
            assert await third.run(["print(x + 1)"], output_hook=lambda m: seen.append(m.content.get("text"))) == 0
            assert not third.started_new and seen == ["42\n"]
    finally:
        run("stop", str(first.name), "--now")


def test_kill_ends_a_hung_nanny_and_its_kernel(isolated):
    hung = start("hung")
    with stopped(hung):
        killed = run("kill", "hung")
        assert killed.returncode == 0, killed.stderr
        assert f"the nanny (pid {hung}) did not answer: killed it and its kernel" in killed.stderr
        assert exits(hung)
    assert json.loads(run("ps", "--json").stdout) == []
