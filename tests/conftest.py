"""Shared fixtures: an isolated runtime directory and real ipykernel kernels."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator

import pytest

# Every test run gets its own runtime dir (connection files, ipc sockets), so
# tests never touch the user's and leftovers are easy to spot.
_RUNTIME = tempfile.mkdtemp(prefix="kn-test-runtime-")
os.environ["JUPYTER_RUNTIME_DIR"] = _RUNTIME
atexit.register(shutil.rmtree, _RUNTIME, ignore_errors=True)
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # silences jupyter_core's migration warning
# No configuration file of the machine's or the user's leaks into a test: tests that want one write it.
os.environ.pop("KERNEL_NANNY_CONFIG", None)
os.environ["XDG_CONFIG_HOME"] = os.path.join(_RUNTIME, "config")

from kernel_nanny import LaunchRequest, ManagerClient, start_kernel  # noqa: E402
from kernel_nanny.launch import LaunchResult, launch_local  # noqa: E402
from kernel_nanny.launch.command import ipykernel_command  # noqa: E402

IPYKERNEL = ipykernel_command(sys.executable)


def pytest_report_header(config: pytest.Config) -> str:
    """Say up front when the real servers some tests start are missing (scripts/test installs them as root)."""
    check = subprocess.run(
        ["bash", os.path.join(os.path.dirname(__file__), os.pardir, ".ci", "install-test-deps.sh"), "--check"],
        capture_output=True,
        text=True,
    )
    if check.returncode == 0:
        return "real servers: installed (sshd, dockerd, podman, systemd, mmdebstrap, slurmctld + slurmd + munged, slurmdbd + mariadbd, chromium)"
    return (
        f"real servers: {check.stderr.strip()}; the tests that start them will fail. "
        "Install them once, as root: bash .ci/install-test-deps.sh"
    )


@pytest.fixture
def runtime_dir() -> str:
    return _RUNTIME


@pytest.fixture
async def kernel() -> AsyncIterator[LaunchResult]:
    """A ready ipykernel on ipc sockets, shut down (and its files removed) afterwards."""
    result = await launch_local(IPYKERNEL, kernel_name="test/ipykernel", launch_params={"echo_output": False})
    try:
        yield result
    finally:
        assert result.manager is not None
        await result.manager.shutdown(now=True)


@pytest.fixture
async def nanny_kernel() -> AsyncIterator[tuple[dict[str, object], ManagerClient]]:
    """A ready ``pyimport/kernel`` behind its nanny: (connection info, manager), stopped afterwards."""
    request = LaunchRequest(kernel_type="pyimport/kernel", supervised=True, params={"echo_output": False})
    async with start_kernel(request) as (info, manager):
        assert isinstance(manager, ManagerClient)
        yield info, manager


@pytest.fixture
async def tcp_kernel() -> AsyncIterator[LaunchResult]:
    """A ready ipykernel on loopback tcp (CurveZMQ-encrypted, as ipykernel declares support)."""
    result = await launch_local(
        IPYKERNEL, kernel_name="test/ipykernel", launch_params={"transport": "tcp", "echo_output": False}
    )
    try:
        yield result
    finally:
        assert result.manager is not None
        await result.manager.shutdown(now=True)
