"""The Slurm provider's settings: ``[providers.slurm]`` and one ``[providers.slurm.kernels.<name>]`` per kernel type.

Every job setting may be given in ``[providers.slurm]`` (a default for all
kernels) and overridden per kernel. Parsed and checked when the provider
loads, so a typo is reported with its key before anything is submitted.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import ConfigTable
from .ssh_config import SSHHost, parse_host

__all__ = ["LOGIN_HOST_NAME", "SlurmCluster", "SlurmKernel", "parse_slurm"]

#: Slurm's time formats: minutes, minutes:seconds, hours:minutes:seconds, days-hours[:minutes[:seconds]].
_TIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}(:\d{1,2})?)?|UNLIMITED|INFINITE)$")
#: Memory as sbatch takes it: a number with an optional K/M/G/T suffix.
_MEMORY = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)

#: Settings of a job, allowed in [providers.slurm] (defaults) and in each kernel's table.
_JOB_KEYS = {"partition", "time", "cpus", "memory", "gres", "account", "qos", "sbatch", "setup", "python", "output"}
_KERNEL_KEYS = _JOB_KEYS | {"kernel", "display_name", "language"}
#: An ssh host's settings but the remote kernel-nanny ones (nothing but the Slurm commands runs there).
_LOGIN_KEYS = {"host", "port", "user", "key", "keys", "known_hosts", "connect_timeout"}
#: The login host's name in messages and for ``kernel-nanny ssh-trust``.
LOGIN_HOST_NAME = "slurm-login"
_CLUSTER_KEYS = _JOB_KEYS | {"kernels", "login", "callback_address", "bind_address", "environment"}


@dataclass(frozen=True)
class SlurmKernel:
    """One ``slurm/<name>`` kernel type: the job to submit, and the kernel type its nanny runs there."""

    name: str
    #: The kernel type the in-job nanny runs on the node (``spec/python3``).
    kernel: str
    partition: str | None = None
    #: Slurm's time limit (``60`` minutes, ``"02:00:00"``, ``"1-00:00:00"``); None: the partition's default.
    time: str | None = None
    cpus: int | None = None
    #: ``--mem``: ``"16G"``, ``"4000M"``.
    memory: str | None = None
    gres: str | None = None
    account: str | None = None
    qos: str | None = None
    #: Extra sbatch options, one per ``#SBATCH`` line (``"--constraint=a100"``).
    sbatch: tuple[str, ...] = ()
    #: Shell lines run in the job before the nanny (``module load ...``, ``source .../activate``).
    setup: tuple[str, ...] = ()
    #: The Python on the node with kernel-nanny installed.
    python: str = field(default_factory=lambda: sys.executable)
    #: The job's stdout/stderr file on the node (sbatch ``--output`` patterns: %j is the job id).
    output: str = "/tmp/kernel-nanny-%u-%j.out"
    display_name: str = ""
    language: str = ""


@dataclass(frozen=True)
class SlurmCluster:
    """How to reach the cluster: its login host (None: the Slurm commands run here) and the callback."""

    kernels: Mapping[str, SlurmKernel] = field(default_factory=dict)
    #: Run the Slurm commands there over SSH, and reach the nodes through it; None: directly.
    login: SSHHost | None = None
    #: Where nodes reach this machine for the job's one callback (direct reach). None: this host's address.
    callback_address: str | None = None
    #: The address the in-job nanny binds on the node. None: the node's address on its route to the
    #: launcher (with ``login``: to the login host), which can therefore reach it.
    bind_address: str | None = None
    #: Environment of the Slurm commands (``SLURM_CONF`` of a second cluster...), here or on the login host.
    environment: Mapping[str, str] = field(default_factory=dict)


def parse_slurm(table: Mapping[str, Any]) -> SlurmCluster:
    """The settings of a ``[providers.slurm]`` table, checked; a wrong one raises :exc:`~kernel_nanny.ConfigError`
    naming the file, the table and the key."""
    settings = ConfigTable.of(table, "providers.slurm")
    settings.check_keys(_CLUSTER_KEYS)
    login = None
    if "login" in settings:
        settings.table("login").check_keys(_LOGIN_KEYS)
        login = replace(parse_host(settings, "login"), name=LOGIN_HOST_NAME)
    defaults = _job_settings(settings)
    kernels_table = settings.table("kernels")
    kernels = {}
    for name in kernels_table:
        if "/" in name or not name:
            raise kernels_table.error(name, "a kernel's name may not be empty or contain '/'")
        entry = kernels_table.table(name)
        entry.check_keys(_KERNEL_KEYS)
        kernel = entry.string("kernel", None)
        if kernel is None or "/" not in kernel:
            raise entry.error("kernel", "missing: the kernel type to run in the job, e.g. kernel = 'spec/python3'")
        if kernel.startswith("slurm/"):
            raise entry.error("kernel", f"{kernel!r} would submit a job from the job: name a kernel type of the node")
        kernels[name] = SlurmKernel(
            name=name,
            kernel=kernel,
            display_name=entry.string("display_name", ""),
            language=entry.string("language", ""),
            **{**defaults, **_job_settings(entry)},
        )
    environment = settings.table("environment")
    for name, value in environment.items():
        if not isinstance(value, str):
            raise environment.invalid(name, "a string")
    return SlurmCluster(
        kernels=kernels,
        login=login,
        environment=dict(environment),
        callback_address=settings.string("callback_address", None),
        bind_address=settings.string("bind_address", None),
    )


def _job_settings(table: ConfigTable) -> dict[str, Any]:
    """The job settings ``table`` gives (only those: the rest fall back to the defaults)."""
    given: dict[str, Any] = {
        "partition": table.string("partition", None),
        "cpus": table.whole_number("cpus", None, minimum=1),
        "gres": table.string("gres", None),
        "account": table.string("account", None),
        "qos": table.string("qos", None),
        "sbatch": table.string_list("sbatch", None),
        "setup": table.string_list("setup", None),
        "python": table.string("python", None),
        "output": table.string("output", None),
    }
    if "time" in table:
        value = table["time"]
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else value
        if not isinstance(text, str) or not _TIME.match(text):
            raise table.invalid("time", "minutes (60) or a Slurm time ('02:00:00', '1-00:00:00')")
        given["time"] = text
    if "memory" in table:
        value = table["memory"]
        if not isinstance(value, str) or not _MEMORY.match(value):
            raise table.invalid("memory", "a size as sbatch --mem takes it ('16G', '4000M')")
        given["memory"] = value
    for key in ("sbatch",):
        for line in given[key] or ():
            if not line.startswith("-"):
                raise table.error(key, f"each entry is an sbatch option such as '--constraint=a100', got {line!r}")
    return {key: value for key, value in given.items() if value is not None}
