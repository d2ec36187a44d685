"""A real daemon process per test (tests/daemons.py), in its own runtime and state directories."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests.daemons import RunningDaemon


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Fresh runtime and state directories for this test (and the processes it starts)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path


@pytest.fixture
async def make_daemon(isolated):
    """``await make_daemon(config_toml)`` starts a daemon; every daemon and kernel is stopped afterwards."""
    started: list[RunningDaemon] = []

    async def make(config: str = "", start: bool = True) -> RunningDaemon:
        daemon = RunningDaemon(isolated, config)
        if start:
            await daemon.start()
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:  # first: a running daemon would refill its pools as their kernels stop
        if daemon.running:
            await daemon.stop()
    stop_all = await asyncio.create_subprocess_exec(  # without a daemon: every nanny, pooled ones too
        sys.executable,
        "-m",
        "kernel_nanny",
        "stop",
        "--all",
        "--now",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await asyncio.wait_for(stop_all.wait(), 60)
