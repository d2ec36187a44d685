"""Slurm provider benchmarks: a kernel in a Slurm job on an idle single-node cluster vs local kernels.

The cluster is this machine (slurmctld, slurmd and munge started by tests/providers/slurm_cluster.py;
needs root and Debian's slurm-wlm, see .ci/install-test-deps.sh). The job runs the same ``spec``
kernel behind an in-job nanny; the launcher follows the queue and waits for the job's callback. On
one node this measures what the provider adds (sbatch, the scheduler's start, the in-job nanny, the
callback), not a network.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import Config, Row, fmt_time, ratio_ci, sample_interleaved, timed
from _providers import interrupt_rows, launch_rows, ready_clients
from _sides import READY_TIMEOUT, TYPE_ID, Nanny, Ours, Theirs

from kernel_nanny import KernelClient
from kernel_nanny.providers.slurm import SlurmKernelManager, SlurmProvider

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.providers.slurm_cluster import start_slurm_cluster  # noqa: E402

GOAL_LAUNCH_EXTRA = 1.0  # s over the local cold start
GOAL_INTERRUPT_RATIO = 1.5  # x the local interrupt round trip
GOAL_RESTART_RATIO = 1.1  # x a local nanny's restart
GOAL_REATTACH = 0.050  # s: from JSON to the first control request answered


def _provider() -> SlurmProvider:
    provider = SlurmProvider()
    provider.load_config({"kernels": {"bench": {"kernel": TYPE_ID}}})
    return provider


async def launch_in_job(provider: SlurmProvider) -> Ours:
    """A kernel launched through the Slurm provider (its own manager, no local nanny), ready."""
    kernel = await Ours.through(provider, "bench")
    async with KernelClient(kernel.info) as client:
        await client.wait_for_ready(timeout=READY_TIMEOUT)
    return kernel


async def bench_slurm(cfg: Config) -> list[Row]:
    """Launch -> ready, interrupt, restart in place and re-attach from JSON, against local kernels."""
    cluster = start_slurm_cluster()
    try:
        provider = _provider()
        return (
            await _launches(cfg, provider)
            + await _interrupts(cfg, provider)
            + await _restarts(cfg, provider)
            + await _reattach(cfg, provider)
        )
    finally:
        cluster.stop()


async def _launches(cfg: Config, provider: SlurmProvider) -> list[Row]:
    return await launch_rows(
        cfg,
        "slurm",
        lambda: launch_in_job(provider),
        what="slurm/bench (a job)",
        note="slurm: launch = sbatch + the scheduler starting the job + the in-job nanny starting its kernel + "
        "the callback, then wait_for_ready; one idle node, so the queue costs only the scheduler's cycle",
        extra=GOAL_LAUNCH_EXTRA,
    )


async def _interrupts(cfg: Config, provider: SlurmProvider) -> list[Row]:
    return await interrupt_rows(
        cfg,
        "slurm",
        lambda: launch_in_job(provider),
        what="through the in-job nanny",
        note="slurm interrupt: a request to the in-job nanny (tcp + CurveZMQ), which signals its kernel",
        goal_ratio=GOAL_INTERRUPT_RATIO,
    )


async def _restarts(cfg: Config, provider: SlurmProvider) -> list[Row]:
    """A requested restart -> the connected client's kernel ready again: in the job vs a local nanny."""
    kernels: list[Any] = []
    try:
        kernels = [await launch_in_job(provider), await Nanny.start("ipc"), await Theirs.launch("tcp", "disabled")]
        in_job, nanny, theirs = kernels
        async with ready_clients([in_job, nanny]) as clients:

            async def ours_once(client: KernelClient, manager: Any) -> float:
                elapsed, _ = await timed(_restart_ready(client, manager))
                return elapsed

            async def theirs_once() -> float:
                t0 = time.perf_counter()
                await theirs.km.restart_kernel(now=True)
                await theirs.kc.wait_for_ready(timeout=READY_TIMEOUT)
                return time.perf_counter() - t0

            times = await sample_interleaved(
                {
                    "slurm": lambda: ours_once(clients[0], in_job.manager),
                    "nanny": lambda: ours_once(clients[1], nanny.manager),
                    "theirs": theirs_once,
                },
                cfg.n(8, 2),
            )
    finally:
        await asyncio.gather(*(k.stop(now=True) for k in kernels), return_exceptions=True)
    ratio = statistics.median(times["slurm"]) / statistics.median(times["nanny"])
    lo, hi = ratio_ci(times["slurm"], times["nanny"])
    return [
        Row(
            "slurm",
            "restart(now) in place -> ready: in the same job / jc restart_kernel",
            times["slurm"],
            times["theirs"],
            notes=["slurm restart: the in-job nanny restarts its kernel on the same ports; no new job, no queue"],
            goal=f"<= {GOAL_RESTART_RATIO:g}x a local nanny's restart",
            goal_met=ratio <= GOAL_RESTART_RATIO,
            goal_detail=f"slurm / local nanny medians {ratio:.2f} [{lo:.2f}-{hi:.2f}]: "
            f"{fmt_time(statistics.median(times['slurm']))} vs {fmt_time(statistics.median(times['nanny']))}",
        ),
        Row("slurm", "restart(now) -> ready: local nanny / jc restart_kernel", times["nanny"], times["theirs"]),
    ]


async def _restart_ready(client: KernelClient, manager: Any) -> None:
    await manager.restart(now=True)
    await client.wait_for_ready(timeout=READY_TIMEOUT)


async def _reattach(cfg: Config, provider: SlurmProvider) -> list[Row]:
    """From the state JSON to the first answered control request (is_alive), in this process."""
    rounds = cfg.n(20, 5)
    kernel = await launch_in_job(provider)
    times: list[float] = []
    try:
        state = kernel.manager.to_json()
        for _ in range(rounds + 1):
            t0 = time.perf_counter()
            manager = await SlurmKernelManager.from_json(state)
            assert await manager.is_alive()
            times.append(time.perf_counter() - t0)
            await manager.cleanup()
        times = times[1:]  # the first pays for cold imports
    finally:
        await kernel.stop(now=True)
    median = statistics.median(times)
    return [
        Row(
            "slurm",
            "re-attach from JSON -> first control request answered",
            times,
            [],
            notes=["re-attach: SlurmKernelManager.from_json (an info request proves the in-job nanny) + is_alive"],
            goal=f"<= {GOAL_REATTACH * 1000:g} ms",
            goal_met=median <= GOAL_REATTACH,
            goal_detail=f"median {fmt_time(median)}",
        )
    ]
