#!/usr/bin/env python3
"""Run kernel-nanny's benchmarks side by side with jupyter_client + ipykernel, in one process.

    python3 bench/run.py              # everything (~7 minutes)
    python3 bench/run.py --quick      # smaller loops (~2 minutes; rough numbers)
    python3 bench/run.py --only cold-start --only restart
    python3 bench/run.py --list

Prints a table (operation | n | kernel-nanny median/p99 | jupyter_client median/p99 | ratio) and
writes every sample to bench/results/<timestamp>.json. See bench/README.md for how to read it.
These are measurements, not tests: nothing here fails because of a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    OURS,
    REGISTRY,
    THEIRS,
    Config,
    Row,
    child_pids,
    fmt_value,
    leftover_files,
    prepare_environment,
    ratio_ci,
    settle_strays,
    stray_processes,
    summarize,
)

#: name -> (module, function, what it measures, time limit in seconds (full run))
BENCHMARKS: dict[str, tuple[str, str, str, float]] = {
    "protocol": ("bench_protocol", "bench_protocol", "execute_request build/serialise+sign/verify+deserialise", 120),
    "iopub-recv": ("bench_protocol", "bench_iopub_recv", "recv + deserialise of queued iopub messages (sync zmq)", 120),
    "client-iopub": ("bench_protocol", "bench_client_iopub", "async clients consuming an iopub burst", 120),
    "journal": ("bench_journal", "bench_journal", "nanny iopub journal: append, replay (memory, disk), RSS", 180),
    "lossless": (
        "bench_lossless",
        "bench_lossless",
        "flushed prints with the CPUs saturated: lines delivered (journal, kernel socket, jupyter_client)",
        1200,
    ),
    "journal-cost": (
        "bench_lossless",
        "bench_journal_cost",
        "a nanny with its journal vs without: round trip, nanny CPU per print, idle RSS",
        600,
    ),
    "cold-start": ("bench_kernel", "bench_cold_start", "start a kernel -> ready (ipc, tcp, tcp+curve)", 240),
    "roundtrip": ("bench_kernel", "bench_roundtrip", "execute/kernel_info round trips, flushed prints", 240),
    "interrupt": ("bench_kernel", "bench_interrupt", "interrupt a busy loop -> KeyboardInterrupt reply", 120),
    "shutdown": ("bench_kernel", "bench_shutdown", "graceful shutdown and shutdown now=True", 240),
    "restart": ("bench_kernel", "bench_restart", "restart -> ready with a connected client", 240),
    "concurrent": ("bench_kernel", "bench_concurrent", "10 kernels started concurrently -> all ready", 240),
    "nanny-control": (
        "bench_nanny",
        "bench_nanny_control",
        "ManagerClient.is_alive round trip (ipc, tcp), zmq floor",
        120,
    ),
    "nanny-death": (
        "bench_nanny",
        "bench_nanny_death",
        "kernel SIGKILLed -> kernel_died event / restarter callback",
        240,
    ),
    "nanny-restart": (
        "bench_nanny",
        "bench_nanny_restart",
        "cold starts (launch_local; a nanny: start_kernel, supervised) and restarts -> ready",
        300,
    ),
    "nanny-interrupt": ("bench_nanny", "bench_nanny_interrupt", "interrupt via ManagerClient vs local signal", 120),
    "ssh": ("bench_ssh", "bench_ssh", "ssh provider: launch -> ready and interrupt through the forward", 300),
    "nanny-memory": (
        "bench_nanny",
        "bench_nanny_memory",
        "nanny process RSS/PSS and CPU, idle and after executions",
        180,
    ),
    "jupyter-notebook": (
        "bench_jupyter",
        "bench_jupyter_notebook",
        "nbclient 20-cell notebook: kernel-nanny provisioner vs local provisioner",
        300,
    ),
    "daemon-api": ("bench_daemon", "bench_daemon_api", "DaemonClient list_kernels/info round trips, zmq floor", 120),
    "daemon-launch": (
        "bench_daemon",
        "bench_daemon_launch",
        "launch through the daemon vs a nanny (start_kernel, supervised), launch_local, jc -> ready",
        240,
    ),
    "daemon-adopt": (
        "bench_daemon",
        "bench_daemon_adopt",
        "daemon restart re-adopting 20 nannies -> READY=1; daemon RSS/PSS",
        240,
    ),
    "pool": (
        "bench_pool",
        "bench_pool",
        "daemon pool: hits (DaemonClient.launch, provisioner), a miss, nbclient, memory vs jupyter_client",
        480,
    ),
    "gateway": (
        "bench_gateway",
        "bench_gateway",
        "jupyter_server in gateway mode on the daemon's gateway vs local kernels: round trip, new kernel; daemon RSS",
        600,
    ),
    "slurm": (
        "bench_slurm",
        "bench_slurm",
        "Slurm provider: launch -> ready, interrupt, restart in place, re-attach (needs slurm-wlm)",
        300,
    ),
    "docker-launch": (
        "bench_docker",
        "bench_docker_launch",
        "Docker provider launch -> ready vs local cold starts (needs dockerd; see bench_docker.py)",
        300,
    ),
    "env": (
        "bench_env",
        "bench_env",
        "Python environments as kernel types: listing 100 (vs jc over 100 kernelspecs), exec in one vs --python",
        300,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller loops, about 2 minutes (rough numbers)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this benchmark (repeat or comma-separate; see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--output", metavar="PATH", help="JSON file to write (default bench/results/<timestamp>.json)")
    parser.add_argument("--no-json", action="store_true", help="do not write a JSON file")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    args.names = names or list(BENCHMARKS)
    return args


# -- output ------------------------------------------------------------------------------------------


def _cell(samples: list[float], p99_min: int, unit: str = "s") -> str:
    if not samples:
        return "-"
    s = summarize(samples)
    if s["n"] >= p99_min:
        return f"{fmt_value(s['median'], unit)} / {fmt_value(s['p99'], unit)}"
    return f"{fmt_value(s['median'], unit)} / {fmt_value(s['max'], unit)}*"


def _goal_cell(row: Row) -> str:
    if not row.goal:
        return ""
    verdict = {True: "met", False: "NOT met", None: "?"}[row.goal_met]
    return f"{row.goal}: {verdict}"


def _ratio_cell(row: Row) -> str:
    r = row.ratio()
    if math.isnan(r):
        return "-"
    lo, hi = ratio_ci(row.ours, row.theirs)
    return f"{r:.2f}" + ("" if math.isnan(lo) else f" [{lo:.2f}-{hi:.2f}]")


def render_table(rows: list[Row]) -> str:
    header = ["operation", "n", f"{OURS} median / p99", f"{THEIRS} median / p99", "ratio [95% CI]"]
    with_goals = any(row.goal for row in rows)
    if with_goals:
        header.append("goal (issue)")
    lines = [header]
    for row in rows:
        n = "/".join(str(len(x)) for x in (row.ours, row.theirs) if x) or "0"
        line = [
            row.operation,
            n,
            _cell(row.ours, row.p99_min_samples, row.unit),
            _cell(row.theirs, row.p99_min_samples, row.unit),
            _ratio_cell(row),
        ]
        if with_goals:
            line.append(_goal_cell(row))
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        cells = [c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths, strict=True))]
        out.append("| " + " | ".join(cells) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def environment_info() -> dict[str, Any]:
    import ipykernel
    import jupyter_client
    import orjson
    import tornado
    import zmq

    import kernel_nanny

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except Exception:
            return ""

    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {
            "kernel_nanny": kernel_nanny.__version__,
            "jupyter_client": jupyter_client.__version__,
            "ipykernel": ipykernel.__version__,
            "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(),
            "tornado": tornado.version,
            "orjson": orjson.__version__,
        },
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "kernel_nanny")),
    }


# -- running -------------------------------------------------------------------------------------------


async def run_all(args: argparse.Namespace, cfg: Config, runtime_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    import importlib

    rows: list[Row] = []
    report: dict[str, Any] = {"benchmarks": {}, "errors": {}, "stragglers_killed": {}}
    for name in args.names:
        module_name, func_name, _what, limit = BENCHMARKS[name]
        func = getattr(importlib.import_module(module_name), func_name)
        if cfg.quick:
            limit = min(limit, 60)
        print(f"[{name}] running...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            if asyncio.iscoroutinefunction(func):
                got = await asyncio.wait_for(func(cfg), limit)
            else:
                got = func(cfg)
            rows += got
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise  # Ctrl-C: stop here (the finally below still kills what is left)
        except Exception as exc:  # report it and go on with the next benchmark
            report["errors"][name] = "".join(traceback.format_exception(exc))
            print(f"[{name}] FAILED: {exc!r}", file=sys.stderr, flush=True)
        finally:
            killed = await REGISTRY.kill_all()
            # Nannies (and their kernels) are not our children: find them by the run's runtime dir.
            killed += await settle_strays(runtime_dir)
            if killed:
                report["stragglers_killed"][name] = killed
                print(f"[{name}] had to kill leftover kernels: {killed}", file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - t0
        report["benchmarks"][name] = {"seconds": elapsed}
        print(f"[{name}] done in {elapsed:.1f} s", file=sys.stderr, flush=True)
    return rows, report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, (_m, _f, what, _l) in BENCHMARKS.items():
            print(f"{name:16} {what}")
        return 0
    cfg = Config(quick=args.quick)
    env = prepare_environment()  # before anything imports jupyter_client or kernel_nanny
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows: list[Row] = []
    report: dict[str, Any] = {}
    try:
        rows, report = asyncio.run(run_all(args, cfg, env.runtime_dir))
    finally:
        strays = [f"pid {pid}: {cmd}" for pid, cmd in stray_processes(env.runtime_dir)]
        if strays:  # detached nannies would outlive us: stop them (SIGTERM lets them remove their files)
            asyncio.run(settle_strays(env.runtime_dir, grace=0))
        leftovers = leftover_files(env.runtime_dir)
        children = child_pids()
        shutil.rmtree(env.root, ignore_errors=True)
    total = time.perf_counter() - t0

    print()
    print(render_table(rows))
    print()
    print("ratio = kernel-nanny median / jupyter_client median (< 1: kernel-nanny faster), with a 95% bootstrap")
    print("interval; '*': fewer than 50 samples, the max is shown instead of p99.")
    seen_notes: set[str] = set()
    for row in rows:
        for note in row.notes:
            if note not in seen_notes:
                seen_notes.add(note)
                print(f"  - {note}")
    goals = [row for row in rows if row.goal]
    if goals:
        print("\nGoals (from the issue; reported, never asserted):")
        for row in goals:
            verdict = {True: "met", False: "NOT MET", None: "not judged"}[row.goal_met]
            print(f"  - {row.operation.strip()}: goal {row.goal} -> {verdict} ({row.goal_detail})")
    for name, text in report.get("errors", {}).items():
        print(f"\n[{name}] FAILED:\n{text}")
    if leftovers:
        print(f"\nLEFTOVER FILES in the runtime dir: {leftovers}")
    if children:
        print(f"\nLEFTOVER CHILD PROCESSES: {children}")
    if strays:
        print(f"\nLEFTOVER PROCESSES of this run (terminated now): {strays}")
    print(f"\ntotal {total:.1f} s, load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")

    if not args.no_json:
        document = {
            "started": started.isoformat(),
            "seconds": total,
            "quick": cfg.quick,
            "benchmarks_run": args.names,
            "environment": environment_info(),
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "results": [row.to_json() for row in rows],
            "errors": report.get("errors", {}),
            "stragglers_killed": report.get("stragglers_killed", {}),
            "leftover_runtime_files": leftovers,
            "leftover_child_processes": children,
            "leftover_processes": strays,
            "per_benchmark": report.get("benchmarks", {}),
        }
        path = Path(args.output) if args.output else HERE / "results" / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1))
        print(f"results: {path}")
    return 1 if report.get("errors") or leftovers or children or strays else 0


if __name__ == "__main__":
    sys.exit(main())
