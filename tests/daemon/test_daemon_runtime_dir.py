"""A runtime directory deleted under a running daemon (a tmp cleaner, logind at logout, ``rm -rf``):
the daemon and its nannies publish themselves again, and the daemon stays the only one."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Callable

from kernel_nanny.client.running import pid_alive


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the kernel-nanny command (in this test's environment); a hang fails at the timeout."""
    return subprocess.run(
        [sys.executable, "-m", "kernel_nanny", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


async def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait for a condition that nothing signals: files re-created in a directory (the stdlib has no
    file-system events), checked a few times a second until ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


def listed() -> dict[str, int]:
    """``ps --json``: kernel id -> nanny pid."""
    result = cli("ps", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["kernel_id"]: entry["nanny_pid"] for entry in json.loads(result.stdout)}


def assert_second_daemon_refused(daemon) -> None:
    second = cli("serve", "--config", str(daemon.config_file))
    assert second.returncode == 3, second.stderr
    assert f"already running for this user (pid {daemon.process.pid}" in second.stderr


async def test_a_deleted_runtime_directory_is_restored_and_the_daemon_stays_the_only_one(make_daemon):
    daemon = await make_daemon()
    started = [cli("start", "pyimport/kernel", "--name", f"k{i}") for i in range(2)]
    assert all(result.returncode == 0 for result in started), [result.stderr for result in started]
    kernels = listed()
    assert len(kernels) == 2

    shutil.rmtree(daemon.runtime_dir)
    assert_second_daemon_refused(daemon)  # at once, before anything was restored

    discovery = daemon.runtime_dir / "kernel-nanny-daemon.json"

    def restored() -> bool:
        return discovery.exists() and json.loads(discovery.read_text())["pid"] == daemon.process.pid

    await until(restored, "the daemon re-publishes its discovery file")
    await until(lambda: listed() == kernels, "ps lists both kernels again, through the daemon")
    assert oct(daemon.runtime_dir.stat().st_mode & 0o777) == oct(0o700)
    assert "were deleted: publishing them again" in daemon.log()
    assert_second_daemon_refused(daemon)

    stopped = cli("stop", "--all")
    assert stopped.returncode == 0, stopped.stderr
    assert listed() == {}
    await until(lambda: not any(pid_alive(pid) for pid in kernels.values()), "both nannies exit")
    assert daemon.running
