"""A Slurm kernel's job: the batch script that starts it, and its state as JSON (what re-attaching needs).

The state is written 0600 as ``slurm-<job id>.json`` in the runtime directory,
beside the kernels' connection files, while the job runs: a new process (or
a daemon after a restart) rebuilds the manager from it
(:meth:`SlurmKernelManager.from_json <kernel_nanny.providers.slurm.SlurmKernelManager.from_json>`),
and ``kernel-nanny ps`` tells a job of ours with no state from one with.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import LaunchError
from ..launch.callback import CallbackAddress
from ..launch.job import JOB_ENV, JOB_MODULE, JobKernel
from ..paths import runtime_dir, write_private_file
from ..protocol.manager_state import dump_manager_state, load_manager_state, wrong_field
from .slurm_config import SlurmKernel

__all__ = ["JOB_NAME_PREFIX", "STATE_KIND", "SlurmKernelState", "batch_script", "state_file"]

#: Every job kernel-nanny submits is named ``kernel-nanny:<kernel type name>``: how ps finds ours.
JOB_NAME_PREFIX = "kernel-nanny:"
STATE_KIND = "slurm"
#: The fields a state must have (the rest have defaults).
_REQUIRED = ("job_id", "kernel_type", "inner_type", "nanny_info")


def state_file(job_id: str) -> Path:
    """Where the state of the kernel in job ``job_id`` is kept."""
    return runtime_dir() / f"slurm-{job_id}.json"


def batch_script(
    kernel: SlurmKernel, callback: CallbackAddress, *, cwd: str | None, startup_timeout: float, bind_address: str | None
) -> str:
    """The batch script for ``kernel``: its ``#SBATCH`` options, the set-up lines, then the in-job nanny.

    The set-up lines run under ``set -e``: a failing ``module load`` ends the
    job with its message in the output file, instead of starting a kernel in
    the wrong environment.
    """
    # --no-requeue: a requeued job (preempted in REQUEUE mode, its node failed) would start a fresh kernel that
    # nobody can reach (the callback is over) while the launcher waits on it as pending. Not requeued, the job
    # ends (PREEMPTED, NODE_FAIL) and the kernel's death says why.
    options = [
        f"--job-name={JOB_NAME_PREFIX}{kernel.name}",
        f"--output={kernel.output}",
        "--ntasks=1",
        "--no-requeue",
    ]
    for flag, value in (
        ("--partition", kernel.partition),
        ("--time", kernel.time),
        ("--cpus-per-task", kernel.cpus),
        ("--mem", kernel.memory),
        ("--gres", kernel.gres),
        ("--account", kernel.account),
        ("--qos", kernel.qos),
        ("--chdir", cwd),
    ):
        if value is not None:
            options.append(f"{flag}={value}")
    options.extend(kernel.sbatch)
    job = JobKernel(kernel=kernel.kernel, callback=callback, bind_address=bind_address, startup_timeout=startup_timeout)
    lines = ["#!/bin/bash", *(f"#SBATCH {option}" for option in options)]
    lines += ["# Written by kernel-nanny: a kernel-nanny nanny for this job's kernel.", "set -e", *kernel.setup]
    lines += [
        f"export {JOB_ENV}={shlex.quote(job.to_json())}",
        f"exec {shlex.quote(kernel.python)} -m {JOB_MODULE}",
        "",
    ]
    return "\n".join(lines)


@dataclass
class SlurmKernelState:
    """Everything known about a Slurm kernel: enough for any process to take it over (:meth:`to_json`)."""

    job_id: str
    #: ``slurm/<name>``, and the kernel type the job runs.
    kernel_type: str
    inner_type: str
    #: The in-job nanny's connection info (kernel channels, nanny sockets, key, CurveZMQ keys).
    nanny_info: dict[str, Any]
    cluster: str = ""
    node: str = ""
    #: The job settings asked for (partition, time, cpus, memory, gres, account, qos).
    requested: dict[str, Any] = field(default_factory=dict)
    #: What Slurm granted, as the job's environment says (cpus, memory, gpus).
    granted: dict[str, Any] = field(default_factory=dict)
    submit_time: str | None = None
    start_time: str | None = None
    #: Unix time at which the walltime runs out; None: no limit.
    deadline: float | None = None
    #: The login host's settings (``[providers.slurm] login``) when the commands run there.
    login: dict[str, Any] | None = None
    #: The Slurm commands' environment (``[providers.slurm] environment``).
    environment: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The state as JSON, with the kernel's key: write it only where :func:`state_file` does (0600)."""
        return dump_manager_state(STATE_KIND, asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> SlurmKernelState:
        """A state :meth:`to_json` wrote; anything else raises :exc:`~kernel_nanny.InvalidRequest` saying why."""
        state = load_manager_state(text, STATE_KIND, _REQUIRED)
        fields = {key: value for key, value in state.items() if key not in ("kind", "version")}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise wrong_field(STATE_KIND, exc) from None

    @property
    def time_left(self) -> float | None:
        """Seconds of walltime left now; None: no limit."""
        return None if self.deadline is None else max(0.0, self.deadline - time.time())

    def save(self) -> Path:
        """Write the state to :func:`state_file` (0600, atomically)."""
        path = state_file(self.job_id)
        try:
            write_private_file(path, self.to_json().encode())
        except OSError as exc:
            raise LaunchError(
                f"cannot write the state of Slurm job {self.job_id} to {path}: {exc.strerror or exc}; without it no "
                "other process could re-attach to the kernel, so the job is cancelled"
            ) from exc
        return path

    def forget(self) -> None:
        """Remove the state file (the job has ended)."""
        state_file(self.job_id).unlink(missing_ok=True)
