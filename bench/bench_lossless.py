"""No lost output under load (issue 13): flushed prints while every CPU is busy with other processes.

One kernel of each side, then ``os.cpu_count()`` busy-looping processes, then one cell of N flushed
prints (100,000; 20,000 with ``--quick``) through:

* ours, following the nanny's journal (``KernelClient``'s default for a kernel behind a nanny);
* ours, subscribed to the kernel's own iopub socket (``journal=False``), as every Jupyter client is;
* jupyter_client's ``BlockingKernelClient.execute_interactive``, on a kernel of its own.

Each counts the lines it was given, and checks their order. A PUB socket drops messages for a
subscriber whose queue is full, so a client that cannot keep up loses lines; the journal's client
reads on from the nanny's record instead. The rows are counts and times, with the goal (100% of
lines delivered by kernel-nanny's clients) judged on the journal-following client.

A second pair of rows times ``execute_interactive("1")`` on an idle machine, following the journal
and subscribed to the kernel's socket, in one run: what the lossless path costs per round trip.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from _common import Config, Row, orders
from _sides import Nanny, Theirs
from bench_nanny import cpu_seconds, memory

from kernel_nanny import KernelClient, Message

GOAL = "100% of lines delivered"


class _Lines:
    """Counts printed lines from stream messages (dicts or Messages) and whether they came in order."""

    def __init__(self) -> None:
        self.count = 0
        self.in_order = True
        self._partial = ""

    def feed(self, text: str) -> None:
        text = self._partial + text
        *lines, self._partial = text.split("\n")
        for line in lines:
            if line != str(self.count):
                self.in_order = False
            self.count += 1


def _saturate() -> list[subprocess.Popen[bytes]]:
    """One busy loop per CPU, at the same priority as everything else."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]


async def _ours(info: Any, lines: int, *, journal: bool) -> tuple[_Lines, float, int]:
    seen = _Lines()

    def hook(msg: Message) -> None:
        if msg.msg_type == "stream":
            seen.feed(msg.content.get("text", ""))

    async with KernelClient(info, journal=journal) as kc:
        await kc.wait_for_ready()
        t0 = time.perf_counter()
        await kc.execute_interactive(f"for i in range({lines}): print(i, flush=True)", output_hook=hook)
        return seen, time.perf_counter() - t0, kc.lost


#: Seconds jupyter_client's execute_interactive may wait for the idle status: it waits for ever when the
#: kernel's socket dropped it, so the count is taken then.
THEIR_TIMEOUT = 240


def _theirs(theirs: Theirs, lines: int) -> tuple[_Lines, float, bool]:
    """What jupyter_client's client got, how long it took, and whether it gave up waiting for the idle status."""
    seen = _Lines()

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            seen.feed(msg["content"].get("text", ""))

    kc = theirs.km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        t0 = time.perf_counter()
        try:
            code = f"for i in range({lines}): print(i, flush=True)"
            kc.execute_interactive(code, output_hook=hook, timeout=THEIR_TIMEOUT)
        except TimeoutError:
            return seen, time.perf_counter() - t0, True
        return seen, time.perf_counter() - t0, False
    finally:
        kc.stop_channels()


async def _roundtrips(info: Any, rounds: int) -> dict[bool, list[float]]:
    samples: dict[bool, list[float]] = {True: [], False: []}
    async with KernelClient(info, journal=True) as following, KernelClient(info, journal=False) as subscribed:
        clients = {True: following, False: subscribed}
        for kc in clients.values():
            await kc.wait_for_ready()
            for _ in range(20):
                await kc.execute_interactive("1")
        for _, forward in orders(rounds):
            for journal in (True, False) if forward else (False, True):
                t0 = time.perf_counter()
                await clients[journal].execute_interactive("1")
                samples[journal].append(time.perf_counter() - t0)
    return samples


async def bench_lossless(cfg: Config) -> list[Row]:
    lines = cfg.n(100_000, 20_000)
    ours = await Nanny.start("ipc")
    theirs = await Theirs.launch("ipc")
    try:
        trips = await _roundtrips(ours.info, cfg.n(300, 60))
        busy = _saturate()
        try:
            following, following_s, lost = await _ours(ours.info, lines, journal=True)
            subscribed, subscribed_s, _ = await _ours(ours.info, lines, journal=False)
            result: list[Any] = []
            thread = threading.Thread(target=lambda: result.append(_theirs(theirs, lines)))
            thread.start()
            await asyncio.to_thread(thread.join)
            jupyter, jupyter_s, jupyter_hung = result[0]
        finally:
            for process in busy:
                process.kill()
                process.wait()
    finally:
        await ours.stop()
        await theirs.stop()

    def share(seen: _Lines) -> str:
        order = "in order" if seen.in_order else "OUT OF ORDER"
        return f"{seen.count:,} of {lines:,} lines ({100 * seen.count / lines:.2f}%, {order})"

    delivered = Row(
        "lossless",
        f"{lines:,} flushed prints, CPUs saturated: lines delivered",
        notes=[
            f"ours, following the journal: {share(following)} in {following_s:.1f} s; {lost} entries reported lost",
            f"ours, subscribed to the kernel's iopub (journal=False): {share(subscribed)} in {subscribed_s:.1f} s",
            f"jupyter_client BlockingKernelClient.execute_interactive: {share(jupyter)} in {jupyter_s:.1f} s"
            + (
                f" (then no idle status within {THEIR_TIMEOUT} s: it was dropped, and the call waited)"
                if jupyter_hung
                else ""
            ),
            f"{os.cpu_count()} busy-looping processes ran throughout",
        ],
        extra={
            "lines": lines,
            "journal": following.count,
            "kernel_socket": subscribed.count,
            "jupyter_client": jupyter.count,
        },
        goal=GOAL,
        goal_met=following.count == lines and following.in_order and lost == 0,
        goal_detail=share(following),
    )
    cost = Row(
        "lossless",
        "execute_interactive('1'): following the journal (ours) vs the kernel's socket (theirs column)",
        ours=trips[True],
        theirs=trips[False],
        notes=[
            "both columns are kernel-nanny's KernelClient on one kernel behind a nanny, interleaved; "
            "the ratio is what the lossless path costs per round trip (median "
            f"{statistics.median(trips[True]) * 1e3:.2f} ms vs {statistics.median(trips[False]) * 1e3:.2f} ms)"
        ],
    )
    return [delivered, cost]


async def bench_journal_cost(cfg: Config) -> list[Row]:
    """What recording costs: a nanny with its journal (the default) next to one without (journal memory and
    disk 0), each with a client on the kernel's own socket, interleaved. Rows: the execute round trip, the
    nanny's CPU per flushed print, the nanny's idle RSS (ours column: journal on; theirs column: off)."""
    on = await Nanny.start("ipc")
    off = await Nanny.start("ipc", journal={"memory": 0, "disk": 0})
    sides = {True: on, False: off}
    trips: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    rss: dict[bool, list[float]] = {True: [], False: []}
    prints = cfg.n(10_000, 2_000)
    try:
        await asyncio.sleep(1)  # start-up is over
        for side, nanny in sides.items():
            rss[side].append(memory(nanny.nanny_pid)["rss"])
        async with KernelClient(on.info, journal=False) as with_journal, KernelClient(off.info) as without:
            clients = {True: with_journal, False: without}
            for kc in clients.values():
                await kc.wait_for_ready()
                for _ in range(20):
                    await kc.execute_interactive("1")
            for _, forward in orders(cfg.n(300, 60)):
                for side in (True, False) if forward else (False, True):
                    t0 = time.perf_counter()
                    await clients[side].execute_interactive("1")
                    trips[side].append(time.perf_counter() - t0)
            code = f"for i in range({prints}):\n    print(i, flush=True)"
            for _, forward in orders(cfg.n(6, 2)):
                for side in (True, False) if forward else (False, True):
                    c0 = cpu_seconds(sides[side].nanny_pid)
                    await clients[side].execute_interactive(code, timeout=600)
                    await asyncio.sleep(0.3)  # the nanny has read the last messages
                    cpu[side].append((cpu_seconds(sides[side].nanny_pid) - c0) / prints)
    finally:
        await on.stop()
        await off.stop()

    def ratio_goal(row: Row, limit: float) -> Row:
        ratio = row.ratio()
        row.goal, row.goal_met = f"on/off <= {limit}x", ratio <= limit
        row.goal_detail = f"{ratio:.2f}x"
        return row

    label = "(ours: journal on; theirs column: journal off)"
    rss_row = Row("journal-cost", f"nanny RSS, idle {label}", rss[True], rss[False], unit="B")
    rss_row.goal, rss_row.goal_met = "RSS <= 30 MiB", max(rss[True]) <= 30 * 1024 * 1024
    rss_row.goal_detail = f"{max(rss[True]) / 1024 / 1024:.1f} MiB"
    return [
        ratio_goal(
            Row("journal-cost", f"execute_interactive('1') round trip {label}", trips[True], trips[False]), 1.03
        ),
        ratio_goal(
            Row(
                "journal-cost",
                f"nanny CPU per flushed print {label}",
                cpu[True],
                cpu[False],
                notes=[
                    f"journal-cost: {prints:,} flushed prints per sample; clients on the kernel's socket on both "
                    "sides, so only the nanny differs: with the journal it reads every iopub message, without "
                    "only the status and shutdown messages it acts on"
                ],
            ),
            1.2,
        ),
        rss_row,
    ]
