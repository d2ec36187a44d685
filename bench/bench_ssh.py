"""SSH provider benchmarks: a kernel on a "remote" host (a real sshd on loopback) vs local kernels.

The host is this machine, reached through OpenSSH on 127.0.0.1 (tests/providers/ssh_servers.py
starts it; needs root and openssh-server, see .ci/install-test-deps.sh). The remote kernel runs
the same ``pyimport/kernel`` command behind a remote nanny; every message crosses the SSH forward.
On loopback this measures what the provider adds (the SSH handshake, the remote ``kernel-nanny
start``, the forwards), not a network.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from _common import Config, Row, fmt_time, goal_over_local, ratio_ci, sample_interleaved, timed_start
from _sides import READY_TIMEOUT, Ours, Theirs, time_our_interrupt, time_their_interrupt

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
    rounds = cfg.n(8, 2)
    jobs = {
        "ssh": timed_start(lambda: launch_remote(provider)),
        "local": timed_start(lambda: Ours.launch("ipc")),
        "theirs": timed_start(lambda: Theirs.launch("tcp", "disabled")),
    }
    # The warm-up pays for cold disk caches and the first SSH handshake.
    samples = await sample_interleaved(jobs, rounds)
    return [
        Row(
            "ssh",
            "launch -> ready: ssh/bench/pyimport/kernel / jc local start",
            samples["ssh"],
            samples["theirs"],
            notes=[
                "ssh: launch = connect + authenticate (ed25519) + remote `kernel-nanny start` (a remote nanny) + "
                "reading its connection file + 7 forwards, then wait_for_ready through the forwards; sshd on "
                "127.0.0.1, so the network costs nothing"
            ],
            **goal_over_local(samples, "ssh", GOAL_LAUNCH_EXTRA),
        ),
        Row("ssh", "launch -> ready: local ours (ipc) / jc local start", samples["local"], samples["theirs"]),
    ]


async def _interrupts(cfg: Config, provider: SSHProvider) -> list[Row]:
    rounds = cfg.n(15, 4)
    kernels: list[Any] = []
    clients: list[KernelClient] = []
    try:
        kernels = [await launch_remote(provider), await Ours.launch("ipc"), await Theirs.launch("tcp", "disabled")]
        remote, local, theirs = kernels
        for kernel in (remote, local):
            client = KernelClient(kernel.info)
            clients.append(client)
            await client.wait_for_ready(timeout=READY_TIMEOUT)

        async def ours_once(client: KernelClient, manager: Any) -> float:
            _, replied = await time_our_interrupt(client, manager.interrupt)
            return replied

        times = await sample_interleaved(
            {
                "ssh": lambda: ours_once(clients[0], remote.manager),
                "local": lambda: ours_once(clients[1], local.manager),
                "theirs": lambda: time_their_interrupt(theirs.kc, theirs.km),
            },
            rounds,
        )
    finally:
        for client in clients:
            client.close()
            await client.wait_closed()
        await asyncio.gather(*(k.stop(now=True) for k in kernels), return_exceptions=True)
    ratio = statistics.median(times["ssh"]) / statistics.median(times["local"])
    lo, hi = ratio_ci(times["ssh"], times["local"])
    return [
        Row(
            "ssh",
            "interrupt -> KeyboardInterrupt reply: through the ssh forward / jc local",
            times["ssh"],
            times["theirs"],
            notes=[
                "ssh interrupt: SSHKernelManager.interrupt() is a request to the remote nanny through the forward; "
                "the nanny signals the kernel; the reply comes back through the forward"
            ],
            goal=f"<= {GOAL_INTERRUPT_RATIO:g}x local",
            goal_met=ratio <= GOAL_INTERRUPT_RATIO,
            goal_detail=f"ssh / local (LocalKernelManager) medians {ratio:.2f} [{lo:.2f}-{hi:.2f}]: "
            f"{fmt_time(statistics.median(times['ssh']))} vs {fmt_time(statistics.median(times['local']))}",
        ),
        Row("ssh", "interrupt -> KeyboardInterrupt reply: local ours / jc local", times["local"], times["theirs"]),
    ]
