"""A full runtime directory: a start says "no space left on <dir>" and leaves nothing half-made.

The runtime directory is a small tmpfs filled to the last block (mounting
needs root; the CI runs as root). ``kernel-nanny start`` and a daemon's
launch must fail with the place named, and no nanny, kernel or file of the
failed launch may remain.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_nanny import LaunchError
from tests.helpers import exits

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def small_tmpfs(directory: Path) -> Iterator[Path]:
    """``directory`` on a 1 MiB tmpfs for the block; ``fill()`` it when the time comes."""
    directory.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


@pytest.fixture
def full_runtime_dir(isolated) -> Iterator[Path]:
    """The test's runtime directory on a small tmpfs; ``fill()`` it once the daemon (if any) is up."""
    with small_tmpfs(Path(os.environ["JUPYTER_RUNTIME_DIR"])) as runtime:
        yield runtime


def fill(directory: Path) -> None:
    with open(directory / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def processes_in(runtime: Path) -> list[int]:
    """Processes started for this runtime directory (they inherit it in their environment)."""
    marker = f"JUPYTER_RUNTIME_DIR={runtime}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def serving(daemon) -> set[int]:
    """The daemon's own processes: itself and its fork server (which stays, as the daemon does)."""
    assert daemon.process is not None
    pids = {daemon.process.pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if b"kernel_nanny.nanny.forkserver" in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
    return pids


def launch_leftovers(runtime: Path) -> list[str]:
    """What a launch makes in the runtime directory (not the daemon's kernel-nanny-daemon.* files)."""
    return sorted(
        p.name
        for p in runtime.iterdir()
        if p.name.startswith(("kernel-", "nanny-", "kn-")) and not p.name.startswith("kernel-nanny-")
    )


def test_start_on_a_full_disk_names_it_and_leaves_nothing(full_runtime_dir):
    fill(full_runtime_dir)
    start = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", "start", "pyimport/kernel"], capture_output=True, text=True, timeout=120
    )
    assert start.returncode == 3
    assert f"kernel-nanny: error: no space left on {full_runtime_dir}" in start.stderr
    assert "Errno" not in start.stderr
    assert all(exits(pid) for pid in processes_in(full_runtime_dir))
    assert launch_leftovers(full_runtime_dir) == []


async def test_a_daemon_launch_on_a_full_disk_names_it_and_leaves_nothing(make_daemon, full_runtime_dir):
    daemon = await make_daemon()
    fill(full_runtime_dir)
    async with daemon.client() as client:
        with pytest.raises(LaunchError, match=f"no space left on {re.escape(str(full_runtime_dir))}") as raised:
            await client.launch("pyimport/kernel")
        assert "Errno" not in str(raised.value)
        assert await client.list_kernels() == []
    assert daemon.running
    assert all(exits(pid) for pid in processes_in(full_runtime_dir) if pid not in serving(daemon))
    assert launch_leftovers(full_runtime_dir) == []


async def test_a_daemon_launch_with_no_room_for_its_record_stops_the_kernel(make_daemon, isolated):
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    with small_tmpfs(Path(os.environ["XDG_STATE_HOME"])) as state:
        daemon = await make_daemon()
        fill(state)
        async with daemon.client() as client:
            with pytest.raises(LaunchError, match=f"no space left on {re.escape(str(daemon.state_dir))}/kernels "):
                await client.launch("pyimport/kernel")
            # A kernel the next daemon could not re-adopt is not left running.
            assert await client.list_kernels() == []
        assert all(exits(pid) for pid in processes_in(runtime) if pid not in serving(daemon))
        assert launch_leftovers(runtime) == []
        await daemon.stop()
