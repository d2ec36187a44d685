"""Kernels from Python environments (issue 16): listing 100 environments, and ``exec`` in one of them.

The benchmark makes its environments under a temp dir: 40 conda-layout prefixes (venvs given
``conda-meta/``, half in an envs_dir, half named only by an ``environments.txt``; every tenth has an
``activate.d`` script, every fifth a kernelspec), 40 venvs, 10 uv-layout projects and 5 pixi-layout
projects of 2 environments; every one has ipykernel as ``--system-site-packages`` of this Python.

* list: ``find_kernels()`` of the four providers, warm file cache (a first listing is not recorded),
  next to jupyter_client's ``KernelSpecManager.get_all_specs()`` over 100 installed kernelspecs: what
  one would list after ``ipykernel install`` in each environment instead. Goal: <= 50 ms.
* exec: ``kernel-nanny exec venv/<name> -c pass`` vs ``kernel-nanny exec --python <env> -c pass``,
  the same interpreter, interleaved; the commands find the environments through a
  ``KERNEL_NANNY_CONFIG`` file naming the benchmark's directories. Goal: <= 1.05x. A conda
  environment with an ``activate.d`` script (run through ``/bin/sh``) is timed too.

Nothing here asserts on a timing: the goals are reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from _common import Config, Row, fmt_time, orders, sample_interleaved

from kernel_nanny import KernelFinder
from kernel_nanny.discovery.environments import CondaProvider, PixiProvider, UvProvider, VenvProvider

#: The issue's goals.
GOAL_LIST_SECONDS = 0.050
GOAL_EXEC_RATIO = 1.05


def _environment(path: Path) -> Path:
    """A venv that has this Python's packages (ipykernel among them), without pip: quick to make."""
    venv.create(path, system_site_packages=True, with_pip=False, symlinks=True)
    if sys.prefix != sys.base_prefix:  # run from a venv: the new one's base lacks this one's packages
        [site_packages] = path.glob("lib/python*/site-packages")
        (site_packages / "kn-bench.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return path


def make_environments(root: Path) -> dict[str, object]:
    """The 100 environments; returns the providers' settings naming them."""
    envs_dir, elsewhere, venvs, projects = root / "conda-envs", root / "elsewhere", root / "venvs", root / "projects"
    listed = []
    for i in range(40):
        prefix = _environment((envs_dir if i % 2 else elsewhere) / f"c{i:02d}")
        (prefix / "conda-meta").mkdir()
        if i % 10 == 0:
            (prefix / "etc" / "conda" / "activate.d").mkdir(parents=True)
            (prefix / "etc" / "conda" / "activate.d" / "bench.sh").write_text("export KN_BENCH=1\n")
        if i % 5 == 0:
            spec = prefix / "share" / "jupyter" / "kernels" / "python3"
            spec.mkdir(parents=True)
            (spec / "kernel.json").write_text(
                json.dumps({"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]})
            )
        if i % 2 == 0:
            listed.append(str(prefix))
    (root / "environments.txt").write_text("".join(f"{p}\n" for p in listed))
    for i in range(40):
        _environment(venvs / f"v{i:02d}")
    for i in range(10):
        project = projects / f"uv{i:02d}"
        _environment(project / ".venv")
        (project / "uv.lock").write_text("")
    for i in range(5):
        for name in ("default", "test"):
            prefix = _environment(projects / f"pixi{i}" / ".pixi" / "envs" / name)
            (prefix / "conda-meta").mkdir()
    return {
        "conda": {
            "envs_dirs": [str(envs_dir)],
            "environments_files": [str(root / "environments.txt")],
            "condarc_files": [],
        },
        "venv": {"directories": [str(venvs)]},
        "uv": {"project_roots": [str(projects)]},
        "pixi": {"project_roots": [str(projects)]},
    }


def finder(settings: dict[str, dict[str, list[str]]]) -> KernelFinder:
    providers = [CondaProvider(), VenvProvider(), UvProvider(), PixiProvider()]
    for provider in providers:
        provider.load_config(settings[provider.id])
    return KernelFinder(providers)


def _kernelspecs(root: Path, count: int) -> Path:
    """``count`` installed kernelspecs, one per environment, as ``ipykernel install --prefix`` would write them."""
    kernels = root / "jupyter" / "kernels"
    for i in range(count):
        spec = kernels / f"env{i:03d}"
        spec.mkdir(parents=True)
        argv = [f"{root}/venvs/v00/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": f"env {i}", "language": "python"}))
    return kernels


async def bench_env(cfg: Config) -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="kn-bench-env-"))
    try:
        made = time.perf_counter()
        settings = make_environments(root)
        made = time.perf_counter() - made
        return [*_listing(cfg, root, settings, made), *await _exec(cfg, root, settings)]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _listing(cfg: Config, root: Path, settings: dict[str, object], made: float) -> list[Row]:
    from jupyter_client.kernelspec import KernelSpecManager

    kernel_finder = finder(settings)  # type: ignore[arg-type]
    listed = list(kernel_finder.find_kernels())  # the first, cold listing: not recorded
    environments = {attributes["env_path"] for _, attributes in listed}
    ksm = KernelSpecManager(kernel_dirs=[str(_kernelspecs(root, len(environments)))], ensure_native_kernel=False)
    ksm.get_all_specs()
    samples: dict[str, list[float]] = {"ours": [], "theirs": []}
    calls = {"ours": lambda: list(kernel_finder.find_kernels()), "theirs": ksm.get_all_specs}
    for _, ours_first in orders(cfg.n(50, 10)):
        for side in ("ours", "theirs") if ours_first else ("theirs", "ours"):
            start = time.perf_counter()
            calls[side]()
            samples[side].append(time.perf_counter() - start)
    ours, theirs = samples["ours"], samples["theirs"]
    median = statistics.median(ours)
    note = (
        f"env-list: find_kernels() of conda, venv, uv and pixi over {len(environments)} environments "
        f"({len(listed)} kernel types: each environment's ipykernel and 8 kernelspecs inside; made in "
        f"{made:.1f} s), warm cache; theirs = jupyter_client KernelSpecManager.get_all_specs() over "
        f"{len(environments)} installed kernelspecs"
    )
    return [
        Row(
            "env",
            f"list {len(environments)} environments / jc get_all_specs of as many kernelspecs",
            ours,
            theirs,
            notes=[note],
            goal=f"<= {GOAL_LIST_SECONDS * 1000:g} ms",
            goal_met=median <= GOAL_LIST_SECONDS,
            goal_detail=f"median {fmt_time(median)}",
        )
    ]


def _cli_exec(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", "exec", *args, "-c", "pass"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"kernel-nanny exec {' '.join(args)} failed: {result.stderr}")
    return elapsed


async def _exec(cfg: Config, root: Path, settings: dict[str, object]) -> list[Row]:
    config = root / "kernel-nanny.toml"
    config.write_text(
        "".join(
            f"[providers.{provider}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())  # type: ignore[attr-defined]
            for provider, table in settings.items()
        )
    )
    env = {**os.environ, "KERNEL_NANNY_CONFIG": str(config)}
    venv_dir, conda_dir = root / "venvs" / "v00", root / "elsewhere" / "c00"  # c00 has an activate.d script

    def job(*args: str):  # type: ignore[no-untyped-def]
        async def run() -> float:
            return await asyncio.to_thread(_cli_exec, *args, env=env)

        return run

    samples = await sample_interleaved(
        {
            "venv": job("venv/v00"),
            "python": job("--python", str(venv_dir)),
            "conda": job("conda/c00"),
            "conda-python": job("--python", str(conda_dir)),
        },
        cfg.n(12, 4),
    )
    ratio = statistics.median(samples["venv"]) / statistics.median(samples["python"])
    note = (
        "env-exec: `kernel-nanny exec TYPE -c pass` as a subprocess, start to exit (a new kernel each time), "
        "interleaved; --python runs the same interpreter without activation, after its `import ipykernel` check"
    )
    return [
        Row(
            "env",
            "exec venv/NAME / exec --python ENV",
            samples["venv"],
            samples["python"],
            notes=[note],
            goal=f"<= {GOAL_EXEC_RATIO:g}x",
            goal_met=ratio <= GOAL_EXEC_RATIO,
            goal_detail=f"ratio of medians {ratio:.3f}",
        ),
        Row(
            "env", "exec conda/NAME (activate.d via sh) / exec --python ENV", samples["conda"], samples["conda-python"]
        ),
    ]
