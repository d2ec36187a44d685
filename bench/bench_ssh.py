"""SSH provider benchmarks: a kernel on a "remote" host (a real sshd on loopback) vs local kernels.

The host is this machine, reached through OpenSSH on 127.0.0.1 (tests/providers/ssh_servers.py
starts it; needs root and openssh-server, see .ci/install-test-deps.sh). The remote kernel runs
the same ``pyimport/kernel`` command behind a remote nanny; every message crosses the SSH forward.
On loopback this measures what the provider adds (the SSH handshake, the remote ``kernel-nanny
start``, the forwards), not a network.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from _common import Config, Row
from _providers import interrupt_rows, launch_rows
from _sides import READY_TIMEOUT, Ours

from kernel_nanny import KernelClient
from kernel_nanny.providers.ssh import SSHProvider

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.providers.ssh_servers import make_keys, python_command, runtime_dir_for, start_sshd  # noqa: E402

GOAL_LAUNCH_EXTRA = 1.0  # s over the local cold start
GOAL_INTERRUPT_RATIO = 2.0  # x the local interrupt round trip
TYPE = "pyimport/kernel"


async def launch_remote(provider: SSHProvider) -> Ours:
    """A kernel launched through the SSH provider (the provider's own manager, no local nanny), ready."""
    kernel = await Ours.through(provider, f"bench/{TYPE}")
    async with KernelClient(kernel.info) as client:  # ready as a client sees it, through the forwards
        await client.wait_for_ready(timeout=READY_TIMEOUT)
    return kernel


def _provider(keys: Path, port: int, known_hosts: Path) -> SSHProvider:
    provider = SSHProvider()
    provider.load_config(
        {
            "hosts": {
                "bench": {
                    "host": "127.0.0.1",
                    "port": port,
                    "user": "root",
                    "keys": [str(keys / "client_key")],
                    "known_hosts": str(known_hosts),
                    "command": python_command(None, runtime_dir_for("root", keys)),
                    "kernels": [TYPE],
                }
            }
        }
    )
    return provider


async def bench_ssh(cfg: Config) -> list[Row]:
    """SSH launch -> ready and interrupt through the forward, against local kernels of both sides."""
    keys = make_keys()
    server = start_sshd(keys)
    try:
        provider = _provider(keys, server.port, server.known_hosts)
        return await _launches(cfg, provider) + await _interrupts(cfg, provider)
    finally:
        server.stop()
        shutil.rmtree(keys, ignore_errors=True)


async def _launches(cfg: Config, provider: SSHProvider) -> list[Row]:
    return await launch_rows(
        cfg,
        "ssh",
        lambda: launch_remote(provider),
        what="ssh/bench/pyimport/kernel",
        note="ssh: launch = connect + authenticate (ed25519) + remote `kernel-nanny start` (a remote nanny) + "
        "reading its connection file + 7 forwards, then wait_for_ready through the forwards; sshd on "
        "127.0.0.1, so the network costs nothing",
        extra=GOAL_LAUNCH_EXTRA,
    )


async def _interrupts(cfg: Config, provider: SSHProvider) -> list[Row]:
    return await interrupt_rows(
        cfg,
        "ssh",
        lambda: launch_remote(provider),
        what="through the ssh forward",
        note="ssh interrupt: SSHKernelManager.interrupt() is a request to the remote nanny through the forward; "
        "the nanny signals the kernel; the reply comes back through the forward",
        goal_ratio=GOAL_INTERRUPT_RATIO,
    )
