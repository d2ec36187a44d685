"""A kernel killed by the OOM killer is reported as ``oom``: a real memory cgroup, a real OOM kill."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from kernel_nanny import KernelClient, ManagerClient

LIMIT = 400 * 1024 * 1024  # room for the nanny and an idle kernel, not for the allocation below


def _memory_cgroup() -> Path:
    """A fresh memory cgroup below ours (cgroup v1 or v2). Needs root; CI runs as root."""
    name = f"kn-oom-{uuid.uuid4().hex[:8]}"
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            group = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / name
            group.mkdir()
            (group / "memory.limit_in_bytes").write_text(str(LIMIT))
            return group
    unified = (
        Path("/sys/fs/cgroup")
        / Path(Path("/proc/self/cgroup").read_text().split("::", 1)[1].strip()).relative_to("/")
        / name
    )
    unified.mkdir()
    (unified / "memory.max").write_text(str(LIMIT))
    return unified


@pytest.fixture
def cgroup():
    group = _memory_cgroup()
    yield group
    # every process must have left before the group can go
    for _ in range(500):  # the nanny exits just after answering the shutdown
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"processes still in {group}: {(group / 'cgroup.procs').read_text()}")


async def test_oom_killed_kernel_is_reported_as_oom(cgroup):
    # Start the nanny from a helper process that first joins the cgroup, so the
    # nanny and its kernel are born inside it (the way a container runs them).
    starter = textwrap.dedent(
        f"""
        import asyncio, json, os
        with open({str(cgroup / "cgroup.procs")!r}, "w") as f:
            f.write(str(os.getpid()))
        from kernel_nanny import LaunchRequest, RestartPolicy, start_kernel
        async def start():
            return await start_kernel(LaunchRequest(
                kernel_type="pyimport/kernel", params={{"echo_output": False}}, supervised=True,
                restart_policy=RestartPolicy(max_restarts=0), heartbeat_interval=0.2))
        info, manager = asyncio.run(start())
        print(json.dumps(info))
        """
    )
    out = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    async with ManagerClient(info) as manager:
        try:
            kernel_pid = (await manager.info())["pid"]
            assert str(kernel_pid) in (cgroup / "cgroup.procs").read_text()
            death = asyncio.ensure_future(manager.wait())
            await asyncio.sleep(0)
            async with KernelClient(info) as kc:
                await kc.wait_for_ready(timeout=30)
                await kc.send("execute_request", {"code": "hog = bytearray(2 * 1024**3)", "silent": False})
                status = await asyncio.wait_for(death, 60)
            assert status.reason == "oom"
            assert status.signal == 9
            details = await manager.info()
            assert details["last_exit"]["reason"] == "oom" and details["state"] == "dead"
        finally:
            await manager.shutdown(now=True)


def test_an_oom_kill_during_an_execution_says_oom(cgroup):
    # The whole execution (its nanny and kernel included) runs in a helper that joined the cgroup.
    # A group kernel, because the nanny is what tells an OOM kill from another SIGKILL.
    runner = textwrap.dedent(
        f"""
        import json, os
        with open({str(cgroup / "cgroup.procs")!r}, "w") as f:
            f.write(str(os.getpid()))
        from kernel_nanny import BlockingManagerClient, KernelDied
        from kernel_nanny.execution import BlockingKernelExecution
        with BlockingKernelExecution("pyimport/kernel", group={cgroup.name!r}) as execution:
            try:
                code = execution.run(["hog = bytearray(2 * 1024**3)", "print('never')"], timeout=60)
            except KernelDied as died:
                print(json.dumps({{"reason": died.reason, "signal": died.signal, "message": str(died)}}))
            else:
                print(json.dumps({{"returned": code}}))
            with BlockingManagerClient(execution.connection_info) as manager:  # a group kernel outlives us
                manager.shutdown(now=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    died = json.loads(out.stdout)
    assert died == {"reason": "oom", "signal": 9, "message": "the kernel died while running the code (SIGKILL, oom)"}
