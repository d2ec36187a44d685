"""What every provider benchmark measures the same way: launch -> ready and interrupt, against local kernels.

A provider's kernel (SSH, Slurm) is timed interleaved with our local kernel and jupyter_client's, so
that the three share the machine's noise; the rows judge the issue's goal against the local side.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from _common import Config, Row, fmt_time, goal_over_local, ratio_ci, sample_interleaved, timed_start
from _sides import READY_TIMEOUT, Ours, Theirs, time_our_interrupt, time_their_interrupt

from kernel_nanny import KernelClient

__all__ = ["interrupt_rows", "launch_rows", "ready_clients"]


async def launch_rows(
    cfg: Config, side: str, launch: Callable[[], Awaitable[Ours]], *, what: str, note: str, extra: float
) -> list[Row]:
    """``launch`` (a provider's kernel, ready) vs our local and jupyter_client's cold starts."""
    jobs = {
        side: timed_start(launch),
        "local": timed_start(lambda: Ours.launch("ipc")),
        "theirs": timed_start(lambda: Theirs.launch("tcp", "disabled")),
    }
    samples = await sample_interleaved(jobs, cfg.n(8, 2))  # the warm-up pays for cold caches, a first handshake
    return [
        Row(
            side,
            f"launch -> ready: {what} / jc local start",
            samples[side],
            samples["theirs"],
            notes=[note],
            **goal_over_local(samples, side, extra),
        ),
        Row(side, "launch -> ready: local ours (ipc) / jc local start", samples["local"], samples["theirs"]),
    ]


@asynccontextmanager
async def ready_clients(kernels: list[Any]) -> AsyncIterator[list[KernelClient]]:
    """A ready client for each of our ``kernels`` (all of them stopped afterwards, with the others)."""
    clients: list[KernelClient] = []
    try:
        for kernel in kernels:
            client = KernelClient(kernel.info)
            clients.append(client)
            await client.wait_for_ready(timeout=READY_TIMEOUT)
        yield clients
    finally:
        for client in clients:
            client.close()
            await client.wait_closed()


async def interrupt_rows(
    cfg: Config, side: str, launch: Callable[[], Awaitable[Ours]], *, what: str, note: str, goal_ratio: float
) -> list[Row]:
    """Interrupt round trips through ``launch``'s manager vs our local kernel's and jupyter_client's."""
    kernels: list[Any] = []
    try:
        kernels = [await launch(), await Ours.launch("ipc"), await Theirs.launch("tcp", "disabled")]
        remote, local, theirs = kernels
        async with ready_clients([remote, local]) as clients:

            async def ours_once(client: KernelClient, manager: Any) -> float:
                _, replied = await time_our_interrupt(client, manager.interrupt)
                return replied

            times = await sample_interleaved(
                {
                    side: lambda: ours_once(clients[0], remote.manager),
                    "local": lambda: ours_once(clients[1], local.manager),
                    "theirs": lambda: time_their_interrupt(theirs.kc, theirs.km),
                },
                cfg.n(15, 4),
            )
    finally:
        await asyncio.gather(*(k.stop(now=True) for k in kernels), return_exceptions=True)
    ratio = statistics.median(times[side]) / statistics.median(times["local"])
    lo, hi = ratio_ci(times[side], times["local"])
    return [
        Row(
            side,
            f"interrupt -> KeyboardInterrupt reply: {what} / jc local",
            times[side],
            times["theirs"],
            notes=[note],
            goal=f"<= {goal_ratio:g}x local",
            goal_met=ratio <= goal_ratio,
            goal_detail=f"{side} / local (LocalKernelManager) medians {ratio:.2f} [{lo:.2f}-{hi:.2f}]: "
            f"{fmt_time(statistics.median(times[side]))} vs {fmt_time(statistics.median(times['local']))}",
        ),
        Row(side, "interrupt -> KeyboardInterrupt reply: local ours / jc local", times["local"], times["theirs"]),
    ]
