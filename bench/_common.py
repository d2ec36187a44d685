"""Shared pieces of the benchmarks: environment, statistics, result rows, kernel bookkeeping.

Nothing here asserts anything about timings: the benchmarks measure and report,
they never pass or fail on a number.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

OURS = "kernel-nanny"
THEIRS = "jupyter_client"

#: The name of the kernelspec the runner installs (in a private JUPYTER_PATH) for jupyter_client,
#: so that both implementations start exactly ``sys.executable -m ipykernel_launcher``.
BENCH_KERNEL_NAME = "kn-bench-python"


# -- environment ---------------------------------------------------------------


@dataclass
class BenchEnvironment:
    """Private directories for one run: the runtime dir (connection files, ipc sockets) and a data dir."""

    root: Path
    runtime_dir: Path
    data_dir: Path


def prepare_environment() -> BenchEnvironment:
    """Point Jupyter at private temp directories. Call before importing jupyter_client or kernel_nanny.

    * ``JUPYTER_RUNTIME_DIR``: connection files and ipc sockets of both implementations land here, so
      leftovers are easy to find (the runner reports them) and the user's runtime dir is never touched.
    * ``JUPYTER_PLATFORM_DIRS=1``: silences jupyter_core's migration warning.
    * ``JUPYTER_PATH``: a kernelspec ``kn-bench-python`` whose argv is ``sys.executable -m
      ipykernel_launcher -f {connection_file}``: the exact command kernel-nanny's ``pyimport/kernel``
      runs. (An installed ``python3`` spec may say plain ``python``, which can be a different interpreter
      or a slow shim.)
    """
    root = Path(tempfile.mkdtemp(prefix="kn-bench-"))
    runtime = root / "rt"
    runtime.mkdir(mode=0o700)
    data = root / "data"
    spec_dir = data / "kernels" / BENCH_KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (kernel-nanny bench)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"supported_encryption": ["curve"]},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    os.environ["JUPYTER_PATH"] = str(data) + (
        os.pathsep + os.environ["JUPYTER_PATH"] if os.environ.get("JUPYTER_PATH") else ""
    )
    # The kernels we start inherit this; ipykernel must not try to talk to a terminal or a display.
    os.environ.setdefault("MPLBACKEND", "Agg")
    return BenchEnvironment(root, runtime, data)


@dataclass(frozen=True)
class Config:
    """How hard to work: ``quick`` shrinks every loop (a smoke run, numbers are rough)."""

    quick: bool = False

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


# -- statistics ------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of already sorted values."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    values = sorted(samples)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": values[0],
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": values[-1],
    }


def ratio_ci(ours: Sequence[float], theirs: Sequence[float], rounds: int = 1000, seed: int = 1) -> tuple[float, float]:
    """95% bootstrap interval of median(ours) / median(theirs)."""
    if len(ours) < 3 or len(theirs) < 3:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    # Bootstrapping 10,000-sample series 1000 times is slow and pointless; thin them first.
    a = list(ours) if len(ours) <= 2000 else rng.sample(list(ours), 2000)
    b = list(theirs) if len(theirs) <= 2000 else rng.sample(list(theirs), 2000)
    ratios = []
    for _ in range(rounds):
        ma = statistics.median(rng.choices(a, k=len(a)))
        mb = statistics.median(rng.choices(b, k=len(b)))
        if mb > 0:
            ratios.append(ma / mb)
    ratios.sort()
    return (percentile(ratios, 2.5), percentile(ratios, 97.5))


# -- results -------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table: the same operation timed for both implementations (seconds).

    ``ours`` or ``theirs`` may be empty for an informational row (a floor, or a figure only one side
    has). ``notes`` is free text shown under the table; ``extra`` goes to the JSON only.

    ``unit`` is ``"s"`` (seconds) or ``"B"`` (bytes, e.g. a resident set size). ``goal`` names a target
    from the issue the row answers (e.g. ``"p50 <= 0.5 ms"``), ``goal_met`` says whether this run met it
    and ``goal_detail`` shows the figures it was judged on. A goal is reported, never asserted: a missed
    goal does not change the exit status.
    """

    benchmark: str
    operation: str
    ours: list[float] = field(default_factory=list)
    theirs: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Show p99 only with this many samples; below, the table shows the max (marked).
    p99_min_samples: int = 50
    unit: str = "s"
    goal: str = ""
    goal_met: bool | None = None
    goal_detail: str = ""

    def ratio(self) -> float:
        if not self.ours or not self.theirs:
            return math.nan
        theirs = statistics.median(self.theirs)
        return statistics.median(self.ours) / theirs if theirs else math.nan

    def to_json(self) -> dict[str, Any]:
        lo, hi = ratio_ci(self.ours, self.theirs)
        return {
            "benchmark": self.benchmark,
            "operation": self.operation,
            "unit": self.unit,
            OURS: summarize(self.ours),
            THEIRS: summarize(self.theirs),
            "ratio_of_medians": None if math.isnan(self.ratio()) else self.ratio(),
            "ratio_ci95": None if math.isnan(lo) else [lo, hi],
            "goal": {"goal": self.goal, "met": self.goal_met, "detail": self.goal_detail} if self.goal else None,
            "notes": self.notes,
            "extra": self.extra,
            "samples": {OURS: self.ours, THEIRS: self.theirs},
        }


def goal_over_local(samples: Mapping[str, Sequence[float]], side: str, extra_seconds: float) -> dict[str, Any]:
    """The :class:`Row` goal fields (``**`` them in) of a providers' launch benchmark: ``side``'s launch ->
    ready at most ``extra_seconds`` over the local cold start (``samples["local"]``), medians."""
    theirs, local = statistics.median(samples[side]), statistics.median(samples["local"])
    extra = theirs - local
    return {
        "goal": f"<= local cold start + {extra_seconds:g} s",
        "goal_met": extra <= extra_seconds,
        "goal_detail": f"{side} {fmt_time(theirs)} - local {fmt_time(local)} = {fmt_time(extra)} "
        f"(ratio {theirs / local:.2f})",
    }


# -- timing helpers ---------------------------------------------------------------------


def orders(rounds: int) -> Iterable[tuple[int, bool]]:
    """``(round, ours_first)``: A,B then B,A then A,B... so neither side always goes first."""
    for i in range(rounds):
        yield i, i % 2 == 0


def round_order(items: Sequence[T], rnd: int, forward: bool) -> list[T]:
    """Round ``rnd``'s order of ``items`` (``rnd, forward`` from :func:`orders`): rotated by ``rnd``
    and reversed every other round, so that no item always runs first, or always after the same one."""
    shift = rnd % len(items)
    order = [*items[shift:], *items[:shift]]
    return order if forward else order[::-1]


async def sample_interleaved(
    jobs: Mapping[str, Callable[[], Awaitable[float]]], rounds: int, settle: float = 0.0
) -> dict[str, list[float]]:
    """Run each job once as a warm-up (cold caches; not recorded), then once per round in
    :func:`round_order`; returns what each run returned (a time), by job name.

    ``settle`` seconds pass before every run (e.g. for the previous kernel's teardown).
    """
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for name in jobs:
        await asyncio.sleep(settle)
        await jobs[name]()
    for rnd, forward in orders(rounds):
        for name in round_order(list(jobs), rnd, forward):
            await asyncio.sleep(settle)
            samples[name].append(await jobs[name]())
    return samples


def timed_start(start: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[float]]:
    """A job for :func:`sample_interleaved`: time ``start()`` (a kernel launched until it is ready),
    then stop what it started (``stop(now=True)``, untimed)."""

    async def run() -> float:
        elapsed, kernel = await timed(start())
        await kernel.stop(now=True)
        return elapsed

    return run


async def timed(awaitable: Awaitable[Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = await awaitable
    return time.perf_counter() - t0, result


def fmt_time(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 0:  # a difference of two times
        return "-" + fmt_time(-seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def fmt_bytes(size: float) -> str:
    if size is None or math.isnan(size):
        return "-"
    return f"{size / 2**20:.1f} MiB"


def fmt_value(value: float, unit: str = "s") -> str:
    """A figure in a row's unit: seconds or bytes."""
    return fmt_bytes(value) if unit == "B" else fmt_time(value)


# -- kernel bookkeeping --------------------------------------------------------------------


class KernelRegistry:
    """Every kernel a benchmark starts is registered here, so the runner can kill stragglers.

    Benchmarks shut their kernels down in ``finally`` blocks; this is the second line of defence
    (a benchmark that was cancelled by its time limit mid-start, say).
    """

    def __init__(self) -> None:
        self._killers: dict[int, tuple[str, Callable[[], Awaitable[None]]]] = {}
        self._next = 0

    def add(self, what: str, killer: Callable[[], Awaitable[None]]) -> int:
        self._next += 1
        self._killers[self._next] = (what, killer)
        return self._next

    def discard(self, token: int) -> None:
        self._killers.pop(token, None)

    async def kill_all(self) -> list[str]:
        """Kill whatever is still registered; returns what it had to kill (should be empty)."""
        killed = []
        for token, (what, killer) in list(self._killers.items()):
            try:
                await asyncio.wait_for(killer(), 15)
            except Exception as exc:  # keep going: the others must still be killed
                what += f" (kill failed: {exc!r})"
            killed.append(what)
            self._killers.pop(token, None)
        return killed


REGISTRY = KernelRegistry()


def leftover_files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def child_pids() -> list[int]:
    """Our live child processes (Linux ``/proc``; empty elsewhere)."""
    me = os.getpid()
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == me and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def stray_processes(runtime_dir: Path) -> list[tuple[int, str]]:
    """Live processes started during this run, wherever they were reparented: ``(pid, command line)``.

    A nanny forks away from us (init adopts it), so :func:`child_pids` cannot see it, nor its kernel.
    Every process this run starts inherits ``JUPYTER_RUNTIME_DIR`` pointing at the run's private
    temp dir (or at a directory inside it), so that is what is looked for in each process's
    environment (Linux ``/proc``).
    """
    marker = f"JUPYTER_RUNTIME_DIR={runtime_dir}".encode()
    # A benchmark may give a process a runtime dir of its own inside the run's (a second daemon does).
    nested = marker + b"/"
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if not any(var == marker or var.startswith(nested) for var in f.read().split(b"\0")):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            if stat[stat.rfind(")") + 2 :].split()[:1] == ["Z"]:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found.append((int(entry), cmdline))
    return found


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a live (not zombie) process? (Linux ``/proc``)"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[:1] != ["Z"]


async def wait_gone(pids: Iterable[int], seconds: float) -> bool:
    """Wait until none of ``pids`` is alive; False if some still are after ``seconds``."""
    pids = list(pids)
    deadline = time.monotonic() + seconds
    while any(pid_alive(p) for p in pids):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def settle_strays(runtime_dir: Path, grace: float = 2.0) -> list[str]:
    """Processes of this run still alive after ``grace`` seconds are terminated; returns what was found.

    SIGTERM first (a nanny then shuts its kernel down and removes its files), SIGKILL 5 s later. The
    pids come from :func:`stray_processes`, so only processes this run started are ever signalled.
    """
    deadline = time.monotonic() + grace
    strays = stray_processes(runtime_dir)
    while strays and time.monotonic() < deadline:  # processes on their way out are not strays
        await asyncio.sleep(0.05)
        strays = stray_processes(runtime_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid, _ in strays if pid_alive(pid)]
        for pid in alive:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        if await wait_gone(alive, 5.0):
            break
    return [f"pid {pid}: {cmdline}" for pid, cmdline in strays]


async def measure_interleaved(
    variants: dict[str, tuple[Callable[[], Any], bool]], rounds: int, batch: int
) -> dict[str, list[float]]:
    """Time each variant ``batch`` times per round, rotating and reversing their order every round.

    ``variants`` maps a name to ``(operation, is_async)``. Round 0 is a warm-up
    and is not recorded. Interleaving keeps a noisy machine's drift from
    landing on one variant only.
    """
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for rnd, forward in orders(rounds + 1):
        for name in round_order(list(variants), rnd, forward):
            op, is_async = variants[name]
            out = samples[name]
            for _ in range(batch):
                t0 = time.perf_counter()
                if is_async:
                    await op()
                else:
                    op()
                elapsed = time.perf_counter() - t0
                if rnd:
                    out.append(elapsed)
    return samples
