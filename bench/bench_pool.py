"""The daemon's kernel pool (``[pool]``): pooled kernels handed out, misses, nbclient, memory; jupyter_client beside.

One daemon (``python -m kernel_nanny serve``, a :class:`~bench_daemon.DaemonHome` of its own) serves the run's
runtime dir with two pools of one kernel each:

* ``[pool."pyimport/kernel"]``: what ``DaemonClient.launch("pyimport/kernel")`` takes;
* ``[pool."spec/kn-bench-pool"]`` on tcp without CurveZMQ: what jupyter_client's ``AsyncKernelManager`` (and
  nbclient) take through the kernel-nanny provisioner, for a kernelspec that selects it.

The benchmark installs two kernelspecs that select the provisioner (``"kernel_provisioner": {"provisioner_name":
"kernel-nanny"}`` in their metadata), both running the runner's command (``sys.executable -m ipykernel_launcher
-f {connection_file}``): ``kn-bench-pool``, which the daemon pools, and ``kn-bench-nanny``, which it does not
(a user with a daemon but no pool for that kernel). jupyter_client's side runs the runner's ``kn-bench-python``
spec on its local provisioner. The provisioner's ``use_daemon`` is left at its default (True): with the daemon
running in the run's runtime dir, every provisioner launch goes through it.

Jobs, interleaved (every round in :func:`~_common.round_order`; one warm-up of each first, not recorded):

* ``hit``: ``DaemonClient.launch("pyimport/kernel")`` (a pooled kernel), then a ``KernelClient`` on it until
  its ``wait_for_ready`` returns. Every sample must be a hit (``DaemonLaunch.pool == "hit"``; else this raises).
* ``hit-bind``: the same with ``cwd`` given, so the daemon runs the binding code in the kernel first.
* ``theirs``: ``AsyncKernelManager`` cold start on ``kn-bench-python`` (start_kernel + client + wait_for_ready),
  exactly ``Theirs`` of ``_sides``: the baseline of both hits.
* ``prov-hit``: ``AsyncKernelManager(kernel_name="kn-bench-pool")`` start_kernel + client + wait_for_ready (a
  pooled kernel through the provisioner; the daemon's log must say it came from the pool).
* ``miss``: ``DaemonClient.launch("spec/kn-bench-python")`` (the runner's spec, same command; no pool) -> ready,
  next to ``local``: ``launch_local`` of the same command (ipc, as the daemon's ``auto`` picks for ipykernel),
  and ``nanny``: a nanny started from this process (``start_kernel``, supervised), which splits the miss's cost.
* ``nb-miss`` / ``nb-hit`` / ``nb-theirs``: nbclient runs a 20-cell notebook (``x = i``, ``print(x)``) on
  ``kn-bench-nanny`` (provisioner -> daemon -> a new kernel), ``kn-bench-pool`` (a pooled one) and
  ``kn-bench-python`` (jupyter_client's local provisioner); each run's provisioner class is checked. And
  ``nb-hit-refilled``: the pooled run again, waiting (untimed) before the first cell until the pool refilled.

Before every sample (untimed) the benchmark waits until both pools are full again (``DaemonClient.pools(wait=...)``,
then until each reports all its kernels ready and none starting), then 0.2 s: no sample starts while an earlier
one's refill runs (a hit's own refill starts during it, as it would for a user). Then the memory of the pooled
kernels and their nannies, and of the fork server if the daemon runs one.

Cleanup: a running daemon refills its pools as their kernels stop, so :class:`PoolHome` stops the daemon first
(SIGTERM), then runs ``python -m kernel_nanny stop --all --now`` with no daemon (every nanny of the runtime dir,
pooled ones too), then checks that every nanny it saw is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import (
    BENCH_KERNEL_NAME,
    REGISTRY,
    Config,
    Row,
    fmt_bytes,
    fmt_time,
    orders,
    ratio_ci,
    round_order,
    stray_processes,
    wait_gone,
)
from _sides import READY_TIMEOUT, TYPE_ID, Nanny, Ours, Theirs, is_nanny_process
from bench_daemon import QUIET, DaemonHome
from bench_nanny import _goal_row, _median

from kernel_nanny import KernelClient

MiB = 2**20
#: The kernelspec the daemon pools (provisioner kernel-nanny), and one it does not.
POOL_SPEC = "kn-bench-pool"
NOPOOL_SPEC = "kn-bench-nanny"
POOL_CONFIG = (
    f'\n[pool."{TYPE_ID}"]\nsize = 1\n'
    f'\n[pool."spec/{POOL_SPEC}"]\nsize = 1\ntransport = "tcp"\nencryption = "disabled"\n'
)
#: Seconds to wait for the pools to be full again before a sample.
REFILL_TIMEOUT = 120.0
#: Pause after the pools are full, before a sample (the new kernel's last start-up work).
SETTLE = 0.2
CELLS = 20

GOAL_HIT = 0.05
GOAL_PROVISIONER_HIT = 0.05
GOAL_MISS = 1.05
GOAL_NB_MISS = 1.0
GOAL_NB_HIT = 0.6
GOAL_FORKSERVER_RSS = 30 * MiB
GOAL_FORKED_PRIVATE = 8 * MiB

#: The module a nanny fork server runs as (kernel_nanny.nanny.forkserver), and the socket it leaves if not stopped.
FORKSERVER_MODULE = "kernel_nanny.nanny.forkserver"
FORKSERVER_SOCKET = "kernel-nanny-forkserver.sock"


# -- the daemon with pools --------------------------------------------------------------------------------


class PoolHome(DaemonHome):
    """A :class:`DaemonHome` whose daemon keeps pools: cleaned up daemon first, then every nanny."""

    def __init__(self, runtime: Path, label: str, pools: str) -> None:
        super().__init__(runtime, label)
        with open(self.config_file, "a") as f:
            f.write(pools)
        self.refill_retries = 0

    async def wait_full(self, timeout: float = REFILL_TIMEOUT) -> dict[str, Any]:
        """Until every pool holds all its kernels, ready, none starting; the last ``pools()`` status.

        ``pools(wait=...)`` says when the pools are *settled*, which a pool backing off after a failure also is:
        that raises here, with the daemon's reason. A status that says settled while a pool is still short
        (its filler not woken yet) is asked again (counted in ``refill_retries``).
        """
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while True:
            status = await self.client.pools(wait=max(0.0, deadline - time.monotonic()))
            failing = [p for p in status["pools"] if p.get("failures")]
            if failing:
                raise RuntimeError(f"a pool fails to fill: {failing}")
            if status["settled"] and all(p["ready"] >= p["size"] and not p["starting"] for p in status["pools"]):
                return status
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the pools were not full after {timeout:g} s: {status}")
            self.refill_retries += 1
            await asyncio.sleep(0.05)

    async def pooled(self) -> list[dict[str, Any]]:
        """The pooled kernels (``list_kernels(pooled=True, info=True)``), with their nanny's info."""
        assert self.client is not None
        return [dict(e) for e in await self.client.list_kernels(pooled=True, info=True) if e.get("pool")]

    async def cleanup(self) -> list[str]:
        """Stop the daemon (so it refills nothing), then ``stop --all --now`` by the runtime dir (no daemon runs:
        every nanny there, pooled ones too), then the checks of :meth:`DaemonHome.cleanup`."""
        if not self._cleaned:
            try:
                if self.running and self.client is not None:
                    try:  # remember every nanny, pooled ones too, to check below that they are gone
                        entries = await self.client.list_kernels(pooled=True)
                        self.nanny_pids.update(int(e["nanny_pid"]) for e in entries)
                    except Exception as exc:
                        self.notes.append(f"pool: could not list the daemon's kernels before stopping it: {exc!r}")
                await self.stop()
            finally:
                notes = await super().cleanup()
            servers = fork_servers(self.runtime)  # the daemon's fork server ends with it (its lifeline)
            if servers and not await wait_gone(servers, 5.0):
                self.notes.append(f"pool: fork server(s) {servers} still ran 5 s after the daemon stopped")
            socket_file = self.runtime / FORKSERVER_SOCKET
            if socket_file.exists():
                self.notes.append(f"pool: {FORKSERVER_SOCKET} was left in the runtime dir; the benchmark removes it")
                socket_file.unlink(missing_ok=True)
            return notes
        return []

    def _check_files(self) -> None:
        before = len(self.notes)
        super()._check_files()
        for i in range(before, len(self.notes)):
            if "kernel records left in its state dir" in self.notes[i]:
                self.notes[i] += (
                    " (expected here: the daemon was stopped before 'stop --all', so that it would not refill its "
                    "pools, and the nannies stopped without it leave their records to the next daemon, which prunes "
                    "them; the benchmark removes its state dir)"
                )


# -- kernelspecs and notebooks ----------------------------------------------------------------------------


def install_specs() -> Path:
    """``kn-bench-pool`` and ``kn-bench-nanny``, selecting the kernel-nanny provisioner, in a new dir put first
    on ``JUPYTER_PATH`` (the caller restores it and removes the dir)."""
    root = Path(tempfile.mkdtemp(prefix="kn-bench-pool-specs-"))
    for name in (POOL_SPEC, NOPOOL_SPEC):
        folder = root / "kernels" / name
        folder.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({name})",
            "language": "python",
            "interrupt_mode": "signal",
            "metadata": {
                "supported_encryption": ["curve"],
                "kernel_provisioner": {"provisioner_name": "kernel-nanny"},
            },
        }
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return root


def notebook() -> Any:
    """20 small code cells: ``x = i`` and ``print(x)`` in turn."""
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [f"x = {i // 2}" if i % 2 == 0 else "print(x)" for i in range(CELLS)]
    return new_notebook(cells=[new_code_cell(source) for source in cells])


async def run_notebook(
    kernel_name: str, between: Callable[[], Awaitable[Any]] | None = None
) -> tuple[dict[str, float], str]:
    """One nbclient run of :func:`notebook` on ``kernel_name``: its phases (seconds) and the provisioner's class.

    ``between``, if given, is awaited once the kernel is ready, before the cells, and left out of the times.
    """
    from nbclient import NotebookClient

    nb = notebook()
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=60)
    t0 = time.perf_counter()
    # The kernel's own output is thrown away, as everywhere here (the kernel-nanny provisioner ignores these).
    async with client.async_setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        t1 = time.perf_counter()
        assert client.km is not None and client.kc is not None
        provisioner = type(client.km.provisioner).__name__
        if between is not None:
            await between()
        t1b = time.perf_counter()
        await client.async_wait_for_reply(client.kc.kernel_info())
        for index, cell in enumerate(nb.cells):
            await client.async_execute_cell(cell, index)
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    last = nb.cells[-1].outputs
    if not last or last[0].get("text") != f"{(CELLS - 1) // 2}\n":
        raise RuntimeError(f"the notebook's last cell printed {last!r}")
    phases = {"start": t1 - t0, "cells": t2 - t1b, "shutdown": t3 - t2}
    return {**phases, "total": sum(phases.values())}, provisioner


# -- memory --------------------------------------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/{pid}/status")


def vm_rss(pid: int) -> int:
    """``VmRSS`` of ``/proc/<pid>/status``, in bytes."""
    return _status_kib(pid, "VmRSS")


def private_bytes(pid: int) -> int:
    """``Private_Clean + Private_Dirty`` of ``/proc/<pid>/smaps_rollup``, in bytes: what this process alone holds."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Private_Clean", "Private_Dirty"):
                total += int(value.split()[0]) * 1024
    return total


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def fork_servers(runtime: Path) -> list[int]:
    """Processes of this run running the nanny fork server."""
    return [pid for pid, cmdline in stray_processes(runtime) if FORKSERVER_MODULE in cmdline]


# -- the benchmark ------------------------------------------------------------------------------------------


def _ratio(ours: list[float], theirs: list[float]) -> tuple[float, str]:
    ratio = _median(ours) / _median(theirs)
    lo, hi = ratio_ci(ours, theirs)
    ci = "" if lo != lo else f" (95% CI {lo:.3f}-{hi:.3f})"
    return ratio, f"ratio of medians {ratio:.3f}{ci}: {fmt_time(_median(ours))} vs {fmt_time(_median(theirs))}"


async def _stop_km(km: Any, kc: Any) -> None:
    if kc is not None:
        kc.stop_channels()
    if km.has_kernel:
        await km.shutdown_kernel(now=True)


async def bench_pool(cfg: Config) -> list[Row]:
    """Pool hits (``DaemonClient.launch``, the provisioner), a miss, nbclient, memory; jupyter_client beside."""
    from jupyter_client import AsyncKernelManager

    rounds = cfg.n(15, 2)
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    samples: dict[str, list[float]] = {}
    info_rtt: list[float] = []
    odd: list[str] = []
    specs: Path | None = None
    saved_path = os.environ.get("JUPYTER_PATH")
    home: PoolHome | None = None
    memory: dict[str, Any] = {}

    def add(values: dict[str, float]) -> None:
        for key, value in values.items():
            samples.setdefault(key, []).append(value)

    try:
        specs = install_specs()
        os.environ["JUPYTER_PATH"] = str(specs) + (os.pathsep + saved_path if saved_path else "")
        home = PoolHome(runtime, "pool", POOL_CONFIG)  # after JUPYTER_PATH: the daemon must see the specs
        await home.start()
        await home.wait_full()
        daemon = home.client
        assert daemon is not None
        pool_home = home

        def log_offset() -> int:
            return pool_home.log_file.stat().st_size

        async def daemon_hit(cwd: str | None, prefix: str) -> dict[str, float]:
            t0 = time.perf_counter()
            result = await daemon.launch(TYPE_ID, cwd=cwd, launch_params=QUIET)
            t1 = time.perf_counter()
            info, manager = dict(result.connection_info), result.manager
            pool_home.nanny_pids.add(int(info["nanny_pid"]))
            token = REGISTRY.add(f"pooled kernel {info['kernel_id'][:12]}", lambda: pool_home.shutdown(info, manager))
            try:
                kc = KernelClient(info)
                try:
                    await kc.wait_for_ready(timeout=READY_TIMEOUT)
                    t2 = time.perf_counter()
                finally:
                    kc.close()
                    await kc.wait_closed()
                if result.pool != "hit":
                    raise RuntimeError(f"{prefix}: DaemonClient.launch was a pool {result.pool!r}, not a hit")
            finally:
                await pool_home.shutdown(info, manager)
                REGISTRY.discard(token)
            return {prefix: t2 - t0, f"{prefix}-launch": t1 - t0, f"{prefix}-ready": t2 - t1}

        async def hit() -> dict[str, float]:
            return await daemon_hit(None, "hit")

        async def hit_bind() -> dict[str, float]:
            return await daemon_hit(os.getcwd(), "hit-bind")

        async def theirs() -> dict[str, float]:
            t0 = time.perf_counter()
            kernel = await Theirs.launch()
            elapsed = time.perf_counter() - t0
            await kernel.stop(now=True)
            return {"theirs": elapsed, "theirs-start": kernel.start_kernel_time}

        async def prov_hit() -> dict[str, float]:
            offset = log_offset()
            km = AsyncKernelManager(kernel_name=POOL_SPEC)
            kc = None
            token = REGISTRY.add(f"jupyter_client kernel on {POOL_SPEC}", lambda: _stop_km(km, kc))
            try:
                t0 = time.perf_counter()
                await km.start_kernel()
                t1 = time.perf_counter()
                kc = km.client()
                kc.start_channels()
                await kc.wait_for_ready(timeout=READY_TIMEOUT)
                t2 = time.perf_counter()
                provisioner = type(km.provisioner).__name__
            finally:
                await _stop_km(km, kc)
                REGISTRY.discard(token)
            if provisioner != "NannyProvisioner":
                raise RuntimeError(f"{POOL_SPEC} ran on {provisioner}, not the kernel-nanny provisioner")
            if f"launched spec/{POOL_SPEC} from the pool" not in pool_home.log_since(offset):
                raise RuntimeError(f"the provisioner's kernel on {POOL_SPEC} did not come from the daemon's pool")
            return {"prov-hit": t2 - t0, "prov-hit-start": t1 - t0, "prov-hit-ready": t2 - t1}

        async def miss() -> dict[str, float]:
            t0 = time.perf_counter()
            result = await daemon.launch(f"spec/{BENCH_KERNEL_NAME}", launch_params=QUIET)
            elapsed = time.perf_counter() - t0
            info, manager = dict(result.connection_info), result.manager
            pool_home.nanny_pids.add(int(info["nanny_pid"]))
            token = REGISTRY.add(f"daemon kernel {info['kernel_id'][:12]}", lambda: pool_home.shutdown(info, manager))
            try:
                if result.pool != "miss":
                    raise RuntimeError(f"spec/{BENCH_KERNEL_NAME} has no pool, yet the launch was a {result.pool!r}")
            finally:
                await pool_home.shutdown(info, manager)
                REGISTRY.discard(token)
            return {"miss": elapsed}

        async def local() -> dict[str, float]:
            t0 = time.perf_counter()
            kernel = await Ours.local()
            elapsed = time.perf_counter() - t0
            await kernel.stop(now=True)
            return {"local": elapsed}

        async def nanny() -> dict[str, float]:
            t0 = time.perf_counter()
            kernel = await Nanny.start()
            elapsed = time.perf_counter() - t0
            await kernel.stop(now=True)
            return {"nanny": elapsed}

        async def refilled() -> None:
            await pool_home.wait_full()
            await asyncio.sleep(SETTLE)

        def notebook_job(
            key: str, spec: str, provisioner: str, line: str | None, between: Callable[[], Awaitable[Any]] | None = None
        ) -> Callable[[], Awaitable[Any]]:
            async def run() -> dict[str, float]:
                offset = log_offset()
                phases, used = await run_notebook(spec, between)
                if used != provisioner:
                    raise RuntimeError(f"nbclient on {spec} ran on {used}, not {provisioner}")
                if line is not None:
                    text = pool_home.log_since(offset)
                    if line not in text or (key == "nb-miss" and "from the pool" in text):
                        raise RuntimeError(f"nbclient on {spec}: the daemon's log has no {line!r}:\n{text}")
                return {f"{key}-{phase}": seconds for phase, seconds in phases.items()}

            return run

        jobs: dict[str, Callable[[], Awaitable[dict[str, float]]]] = {
            "hit": hit,
            "theirs": theirs,
            "prov-hit": prov_hit,
            "miss": miss,
            "local": local,
            "nanny": nanny,
            "nb-miss": notebook_job("nb-miss", NOPOOL_SPEC, "NannyProvisioner", f"launched spec/{NOPOOL_SPEC} as"),
            "nb-hit": notebook_job("nb-hit", POOL_SPEC, "NannyProvisioner", f"launched spec/{POOL_SPEC} from the pool"),
            "nb-theirs": notebook_job("nb-theirs", BENCH_KERNEL_NAME, "LocalProvisioner", None),
            "nb-hit-refilled": notebook_job(
                "nb-hit-refilled", POOL_SPEC, "NannyProvisioner", f"launched spec/{POOL_SPEC} from the pool", refilled
            ),
            "hit-bind": hit_bind,
        }
        ready_for_sample = refilled

        for name in jobs:  # warm-up: imports, caches, the provisioner's loop thread; not recorded
            await ready_for_sample()
            await jobs[name]()
        for rnd, forward in orders(rounds):
            for name in round_order(list(jobs), rnd, forward):
                await ready_for_sample()
                add(await jobs[name]())
            await ready_for_sample()
            for _ in range(10):  # the request every DaemonClient.launch makes first
                t0 = time.perf_counter()
                await daemon.info()
                info_rtt.append(time.perf_counter() - t0)

        # Memory: the pools full, 1 s idle.
        await ready_for_sample()
        await asyncio.sleep(1.0)
        memory = await _memory(pool_home, runtime)
        if pool_home.refill_retries:
            odd.append(
                f"pools(wait=...) said 'settled' {pool_home.refill_retries} time(s) while a pool was still short "
                "of a kernel (asked again)"
            )
    finally:
        try:
            if home is not None:
                await home.cleanup()
        finally:
            if saved_path is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = saved_path
            if specs is not None:
                shutil.rmtree(specs, ignore_errors=True)
    return _rows(cfg, samples, info_rtt, memory, odd + (home.notes if home else []))


async def _memory(home: PoolHome, runtime: Path) -> dict[str, Any]:
    """RSS of the pooled kernels and their nannies; the fork server's and its nannies', if one runs."""
    pooled = await home.pooled()
    out: dict[str, Any] = {"kernel": [], "nanny": [], "nanny-private": [], "types": []}
    nannies = []
    for entry in pooled:
        nanny_pid = int(entry["nanny_pid"])
        kernel_pid = int((entry.get("info") or {}).get("pid") or 0)
        nannies.append(nanny_pid)
        out["types"].append(entry.get("kernel_type") or entry.get("pool"))
        out["nanny"].append(float(vm_rss(nanny_pid)))
        out["nanny-private"].append(float(private_bytes(nanny_pid)))
        if kernel_pid:
            out["kernel"].append(float(vm_rss(kernel_pid)))
    servers = fork_servers(runtime)
    out["forkservers"] = servers
    out["forkserver-rss"] = [float(vm_rss(pid)) for pid in servers]
    forked = [pid for pid in nannies if is_nanny_process(pid) and parent_pid(pid) in servers]
    out["forked"] = forked
    out["forked-private"] = [float(private_bytes(pid)) for pid in forked]
    out["forked-rss"] = [float(vm_rss(pid)) for pid in forked]
    return out


def _rows(
    cfg: Config, s: dict[str, list[float]], info_rtt: list[float], memory: dict[str, Any], notes: list[str]
) -> list[Row]:
    rows: list[Row] = []
    med = _median

    # 1. a pooled kernel through DaemonClient.launch
    ratio, detail = _ratio(s["hit"], s["theirs"])
    hit_parts = (
        f"hit = launch {fmt_time(med(s['hit-launch']))} (of which daemon info() round trip ~{fmt_time(med(info_rtt))}) "
        f"+ KernelClient wait_for_ready {fmt_time(med(s['hit-ready']))}"
    )
    rows.append(
        _goal_row(
            Row(
                "pool",
                "pool hit: DaemonClient.launch + KernelClient.wait_for_ready / jc cold start",
                s["hit"],
                s["theirs"],
                notes=[
                    'pool: one daemon with [pool."pyimport/kernel"] and [pool."spec/kn-bench-pool"] (tcp, encryption '
                    "disabled), size 1 each; before every sample (untimed) both pools are full again "
                    "(DaemonClient.pools(wait=...)) and 0.2 s pass (a hit's own refill starts during it). hit = from "
                    "DaemonClient.launch('pyimport/kernel') until a new KernelClient's wait_for_ready() returns on the "
                    "kernel (every sample checked: DaemonLaunch.pool == 'hit'); theirs = AsyncKernelManager "
                    "start_kernel + client + start_channels + wait_for_ready on kn-bench-python (local provisioner, "
                    "tcp), as cold-start. Both hits are compared with that same cold start",
                    *notes,
                ],
            ),
            f"<= {GOAL_HIT:g}x jc cold start",
            ratio <= GOAL_HIT,
            f"{detail}; {hit_parts}",
        )
    )
    rows.append(Row("pool", "  info: hit, DaemonClient.launch returns (claimed, ready)", s["hit-launch"]))
    rows.append(Row("pool", "  info: hit, then KernelClient(info).wait_for_ready()", s["hit-ready"]))
    rows.append(Row("pool", "  info: DaemonClient.info() round trip (launch's first request)", info_rtt))
    rows.append(
        Row(
            "pool",
            "  info: hit with cwd (binding code run) + wait_for_ready / jc cold start",
            s["hit-bind"],
            s["theirs"],
            notes=[
                "pool: 'hit with cwd' = DaemonClient.launch('pyimport/kernel', cwd=<this process's cwd>): the pool "
                "has no cwd of its own and the launch names one (here the directory the daemon runs in too), so "
                "the daemon runs the binding code in the claimed kernel (chdir, environment, sys.path[0], _dh: a "
                "silent execute_request) before it replies; the provisioner's launches always name a cwd, so their "
                "hits always bind"
            ],
        )
    )
    rows.append(Row("pool", "  info: hit with cwd, DaemonClient.launch returns", s["hit-bind-launch"]))

    # 2. a pooled kernel through the provisioner
    ratio, detail = _ratio(s["prov-hit"], s["theirs"])
    theirs_ready = [t - st for t, st in zip(s["theirs"], s["theirs-start"], strict=True)]
    rows.append(
        _goal_row(
            Row(
                "pool",
                f"pool hit via provisioner: AsyncKernelManager({POOL_SPEC}) start+client+ready / jc cold start",
                s["prov-hit"],
                s["theirs"],
                notes=[
                    f"pool: provisioner hit = AsyncKernelManager(kernel_name='{POOL_SPEC}') (a spec selecting the "
                    "kernel-nanny provisioner; use_daemon at its default, True) start_kernel() + client() + "
                    "start_channels() + wait_for_ready(); the daemon's log is checked after each sample for the "
                    "'from the pool' line. jupyter_client's wait_for_ready() ends only after 0.2 s without an iopub "
                    "message (it flushes iopub), whatever the kernel: that floor is in both columns"
                ],
            ),
            f"<= {GOAL_PROVISIONER_HIT:g}x jc cold start",
            ratio <= GOAL_PROVISIONER_HIT,
            f"{detail}; start_kernel {fmt_time(med(s['prov-hit-start']))} + client wait_for_ready "
            f"{fmt_time(med(s['prov-hit-ready']))} (jupyter_client's 0.2 s iopub flush included)",
        )
    )
    rows.append(
        Row(
            "pool",
            "  info: start_kernel() returns: provisioner hit / jc local provisioner",
            s["prov-hit-start"],
            s["theirs-start"],
        )
    )
    rows.append(
        Row(
            "pool",
            "  info: client + wait_for_ready() after start_kernel: provisioner hit / jc",
            s["prov-hit-ready"],
            theirs_ready,
        )
    )

    # 3. a miss through the daemon
    ratio, detail = _ratio(s["miss"], s["local"])
    rows.append(
        _goal_row(
            Row(
                "pool",
                f"pool miss: DaemonClient.launch(spec/{BENCH_KERNEL_NAME}) / launch_local (in the jc column)",
                s["miss"],
                s["local"],
                notes=[
                    f"pool: miss = DaemonClient.launch('spec/{BENCH_KERNEL_NAME}') (the runner's kernelspec, the same "
                    "command as pyimport/kernel, no pool for it: checked DaemonLaunch.pool == 'miss'), returns when "
                    "the kernel is ready behind a new nanny; compared with launch_local of the same command (ipc, "
                    "our own child, no nanny), whose samples are in the jupyter_client column of that row. The daemon "
                    "starts its nannies however it does at this commit (a fork server, if it runs one: see the memory "
                    "rows)"
                ],
            ),
            f"<= {GOAL_MISS:g}x launch_local",
            ratio <= GOAL_MISS,
            detail,
        )
    )
    rows.append(Row("pool", "  info: launch_local / jc cold start", s["local"], s["theirs"]))
    nanny_ratio, nanny_detail = _ratio(s["nanny"], s["local"])
    rows.append(
        Row(
            "pool",
            "  info: a nanny from this process (start_kernel, supervised) / launch_local (jc column)",
            s["nanny"],
            s["local"],
            notes=[
                "pool: the miss's cost split: a nanny started from this process (start_kernel(supervised), "
                f"{fmt_time(med(s['nanny']))}) is {nanny_ratio:.2f}x launch_local; the daemon adds "
                f"{fmt_time(med(s['miss']) - med(s['nanny']))} over it (medians)"
            ],
        )
    )

    # 4. nbclient
    for key, label, goal in (
        ("nb-miss", f"daemon, no pool ({NOPOOL_SPEC})", GOAL_NB_MISS),
        ("nb-hit", f"daemon pool ({POOL_SPEC})", GOAL_NB_HIT),
    ):
        ratio, detail = _ratio(s[f"{key}-total"], s["nb-theirs-total"])
        row_notes = []
        if key == "nb-miss":
            row_notes = [
                f"pool: nbclient runs a {CELLS}-cell notebook (x = i / print(x)) until it is done and its kernel shut "
                "down (NotebookClient.async_setup_kernel: start + client ready, kernel_info, the cells, shutdown), on "
                f"{NOPOOL_SPEC} (kernel-nanny provisioner; the daemon runs but has no pool for it: what a user with a "
                f"daemon and no pool gets, the provisioner asking the daemon, which starts a kernel: a miss), on "
                f"{POOL_SPEC} (the daemon's pool) and on {BENCH_KERNEL_NAME} (jupyter_client's LocalProvisioner, the "
                "jupyter_client column); each run's provisioner class and the daemon's log line are checked"
            ]
        rows.append(
            _goal_row(
                Row(
                    "pool",
                    f"nbclient {CELLS} cells, provisioner via {label} / local provisioner",
                    s[f"{key}-total"],
                    s["nb-theirs-total"],
                    notes=row_notes,
                ),
                f"<= {goal:g}x local provisioner",
                ratio <= goal,
                detail
                + "; phases (medians) start / cells / shutdown: "
                + " / ".join(fmt_time(med(s[f"{key}-{p}"])) for p in ("start", "cells", "shutdown"))
                + " vs "
                + " / ".join(fmt_time(med(s[f"nb-theirs-{p}"])) for p in ("start", "cells", "shutdown")),
            )
        )
        for phase in ("start", "cells", "shutdown"):
            rows.append(Row("pool", f"  info: nbclient {label}: {phase}", s[f"{key}-{phase}"], s[f"nb-theirs-{phase}"]))
    rows.append(
        Row(
            "pool",
            "  info: nbclient pooled, cells run once the pool refilled / local provisioner",
            s["nb-hit-refilled-total"],
            s["nb-theirs-total"],
            notes=[
                "pool: a pooled kernel taken starts its replacement at once (the pool refills in the background), "
                "which competes for the CPUs with the notebook's first cells. 'once the pool refilled' runs the same "
                "pooled notebook but waits (untimed, left out of the total) between the kernel being ready and the "
                "first cell until the pool is full again: the difference is the cost of that refill to the notebook"
            ],
        )
    )
    for phase in ("start", "cells", "shutdown"):
        rows.append(
            Row(
                "pool",
                f"  info: nbclient pooled, once refilled: {phase}",
                s[f"nb-hit-refilled-{phase}"],
                s[f"nb-theirs-{phase}"],
            )
        )

    # 5. memory
    rows += _memory_rows(memory)
    return rows


def _memory_rows(memory: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    servers = memory.get("forkservers", [])
    running = bool(servers)
    fs_rss = memory.get("forkserver-rss", [])
    forked = memory.get("forked-private", [])
    if running:
        worst = max(fs_rss)
        fs_detail = f"max {worst / MiB:.2f} MiB ({len(servers)} fork server(s): pids {servers})"
        fs_met: bool | None = worst <= GOAL_FORKSERVER_RSS
    else:
        fs_detail, fs_met = "not running: no process of this run runs kernel_nanny.nanny.forkserver", None
    if forked:
        worst = max(forked)
        fk_detail = f"max {worst / MiB:.2f} MiB of {len(forked)} forked nanny(ies)"
        fk_met: bool | None = worst <= GOAL_FORKED_PRIVATE
    elif running:
        fk_detail, fk_met = "no pooled kernel's nanny is a child of the fork server", None
    else:
        fk_detail, fk_met = "not running (no fork server)", None
    rows.append(
        _goal_row(
            Row(
                "pool-memory",
                "fork server RSS (VmRSS)" + ("" if running else ": not running"),
                fs_rss,
                unit="B",
                p99_min_samples=50,
                notes=[
                    "pool-memory: after the timings, both pools full and 1 s idle. Fork server = a process of this run "
                    "whose command line has kernel_nanny.nanny.forkserver (VmRSS of /proc/<pid>/status); forked nanny "
                    "= a pooled kernel's nanny whose parent is that fork server (Private_Clean + Private_Dirty of "
                    "/proc/<pid>/smaps_rollup: what it does not share). Per pooled kernel: the kernel's and its "
                    f"nanny's VmRSS (pools: {memory.get('types')})"
                ],
            ),
            f"RSS <= {GOAL_FORKSERVER_RSS // MiB} MiB",
            fs_met,
            fs_detail,
        )
    )
    rows.append(
        _goal_row(
            Row(
                "pool-memory",
                "forked nanny private memory (Private_Clean+Private_Dirty)" + ("" if forked else ": not running"),
                forked,
                unit="B",
            ),
            f"<= {GOAL_FORKED_PRIVATE // MiB} MiB",
            fk_met,
            fk_detail,
        )
    )
    kernel, nanny = memory.get("kernel", []), memory.get("nanny", [])
    rows.append(Row("pool-memory", "  info: pooled kernel RSS, each", kernel, unit="B"))
    rows.append(Row("pool-memory", "  info: pooled kernel's nanny RSS, each", nanny, unit="B"))
    rows.append(
        Row(
            "pool-memory",
            "  info: pooled kernel's nanny private memory, each",
            memory.get("nanny-private", []),
            unit="B",
        )
    )
    if kernel and nanny:
        rows.append(
            Row(
                "pool-memory",
                "  info: per pooled kernel, kernel + nanny RSS",
                [k + n for k, n in zip(kernel, nanny, strict=False)],
                unit="B",
                notes=[
                    f"pool-memory: a pooled kernel costs about {fmt_bytes(statistics.median(kernel))} (kernel) + "
                    f"{fmt_bytes(statistics.median(nanny))} (nanny) of RSS while it waits (medians; RSS counts shared "
                    "pages in full)"
                ],
            )
        )
    return rows
