"""What to launch and how: one typed request, validated once where input enters.

Every entry point (the CLI, the daemon's API, the jupyter_client provisioner,
the compat managers, :class:`~kernel_nanny.KernelExecution`, the Python API)
turns its input into a :class:`LaunchRequest` and hands it to
:func:`~kernel_nanny.start_kernel`; nothing below reads raw ``launch_params``
keys. A wrong value fails here, with an error naming the field, before any
process starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .._exceptions import LaunchError
from ..client.running import ProcessIdentity
from ..config import JournalLimits, RestartPolicy
from .command import KernelCommand
from .params import LaunchParams

__all__ = ["LaunchRequest", "valid_kernel_name"]


def valid_kernel_name(name: object) -> bool:
    """Whether ``name`` can name a kernel: a non-empty string without ``/`` (``/`` separates a type id's parts)."""
    return isinstance(name, str) and bool(name) and "/" not in name


@dataclass(frozen=True, kw_only=True)
class LaunchRequest:
    """A kernel launch: which kernel, where, with which options, and whether a nanny supervises it.

    ``kernel_type`` is a type id (``spec/python3``); with an explicit
    ``command`` it only labels the kernel (``ps``, logs). ``switches`` are
    added to the kernel's command line (types whose provider describes them as
    a command). ``cwd`` is the kernel's working directory: a relative one is
    resolved against ours now and must exist; an absolute one is passed on as it
    is (it may name a directory on another host or in a container).
    ``params`` are the :class:`LaunchParams` (a dict is validated into one).
    ``supervised`` runs the kernel behind its own nanny process, which outlives
    the caller; ``name`` (unique among running kernels, no ``/``),
    ``restart_policy`` and ``journal`` (the caps of the nanny's record of the
    kernel's output, :class:`~kernel_nanny.JournalLimits`; a dict is validated
    into one) apply to supervised kernels, ``heartbeat_interval`` is the
    nanny's (seconds).

    ``owner`` ties a supervised kernel to a process: the pid of the process
    whose end, however it ends (SIGKILL included), ends the kernel; None (the
    default) makes it persistent. ``owner_start_time`` proves that a pid
    still names the owner (clock ticks after boot, ``/proc/<pid>/stat``); it
    is read here, where the request is made, when not given.
    """

    kernel_type: str
    command: KernelCommand | None = None
    switches: Sequence[str] = ()
    cwd: str | None = None
    params: LaunchParams = field(default_factory=LaunchParams)
    name: str | None = None
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    journal: JournalLimits = field(default_factory=JournalLimits)
    supervised: bool = False
    heartbeat_interval: float | None = None
    owner: int | None = None
    owner_start_time: int | None = None
    pool: str | None = None

    def __post_init__(self) -> None:
        # Whether the type exists is the finder's to say (its error lists the known ones): here only its form.
        if not isinstance(self.kernel_type, str):
            raise LaunchError(f"launch request field 'kernel_type' must be a kernel type id, got {self.kernel_type!r}")
        if self.command is not None and not isinstance(self.command, KernelCommand):
            raise LaunchError(f"launch request field 'command' must be a KernelCommand, got {self.command!r}")
        if isinstance(self.switches, str) or not all(isinstance(s, str) for s in self.switches):
            raise LaunchError(f"launch request field 'switches' must be a list of strings, got {self.switches!r}")
        object.__setattr__(self, "switches", tuple(self.switches))
        object.__setattr__(self, "cwd", _checked_cwd(self.cwd))
        if not isinstance(self.params, LaunchParams):
            object.__setattr__(self, "params", LaunchParams.from_mapping(self.params))
        if self.name is not None and not valid_kernel_name(self.name):
            raise LaunchError(f"launch request field 'name' must be non-empty and contain no '/', got {self.name!r}")
        if not isinstance(self.restart_policy, RestartPolicy):
            try:
                policy = RestartPolicy.from_dict(dict(self.restart_policy))
            except (TypeError, ValueError) as exc:
                raise LaunchError(f"launch request field 'restart_policy': {exc}") from None
            object.__setattr__(self, "restart_policy", policy)
        if not isinstance(self.journal, JournalLimits):
            try:
                limits = JournalLimits.from_dict(dict(self.journal))
            except (TypeError, ValueError) as exc:
                raise LaunchError(f"launch request field 'journal': {exc}") from None
            object.__setattr__(self, "journal", limits)
        if not isinstance(self.supervised, bool):
            raise LaunchError(f"launch request field 'supervised' must be true or false, got {self.supervised!r}")
        interval = self.heartbeat_interval
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < float("inf")
        ):
            raise LaunchError(f"launch request field 'heartbeat_interval' must be seconds > 0, got {interval!r}")
        self._check_owner()
        if self.pool is not None and (not isinstance(self.pool, str) or not self.pool or not self.supervised):
            raise LaunchError(f"launch request field 'pool' must be the pool key of a supervised kernel: {self.pool!r}")

    def _check_owner(self) -> None:
        owner, start_time = self.owner, self.owner_start_time
        if owner is None:
            if start_time is not None:
                raise LaunchError("launch request field 'owner_start_time' needs an 'owner'")
            return
        if isinstance(owner, bool) or not isinstance(owner, int) or owner <= 0:
            raise LaunchError(f"launch request field 'owner' must be a process id, got {owner!r}")
        if not self.supervised:
            raise LaunchError(
                "launch request field 'owner' applies to supervised kernels (an unsupervised kernel is "
                "its starter's child and ends with it already)"
            )
        if start_time is None:
            start_time = ProcessIdentity.of(owner).start_time
            if start_time is None:
                raise LaunchError(f"launch request field 'owner': no process {owner} is running")
            object.__setattr__(self, "owner_start_time", start_time)
        elif isinstance(start_time, bool) or not isinstance(start_time, int) or start_time < 0:
            raise LaunchError(f"launch request field 'owner_start_time' must be clock ticks >= 0, got {start_time!r}")

    def with_params(self, **changes: Any) -> LaunchRequest:
        """The same request with some launch parameters changed (validated again)."""
        return replace(self, params=LaunchParams.from_mapping({**self.params.to_dict(), **changes}))

    def to_dict(self) -> dict[str, Any]:
        """The request as a JSON-ready dict (what :meth:`from_dict` takes)."""
        return {
            "kernel_type": self.kernel_type,
            "command": None if self.command is None else self.command.to_dict(),
            "switches": list(self.switches),
            "cwd": self.cwd,
            "params": self.params.to_dict(),
            "name": self.name,
            "restart_policy": self.restart_policy.to_dict(),
            "journal": self.journal.to_dict(),
            "supervised": self.supervised,
            "heartbeat_interval": self.heartbeat_interval,
            "owner": self.owner,
            "owner_start_time": self.owner_start_time,
            "pool": self.pool,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LaunchRequest:
        """A request from :meth:`to_dict`'s output; unknown keys are an error naming them."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise LaunchError(f"unknown launch request field(s) {', '.join(unknown)}")
        values = dict(data)
        if values.get("command") is not None:
            try:
                values["command"] = KernelCommand.from_dict(values["command"])
            except (TypeError, ValueError) as exc:
                raise LaunchError(f"launch request field 'command': {exc}") from None
        for key in ("params", "restart_policy", "journal"):
            if values.get(key) is None:
                values.pop(key, None)
        return cls(**values)


def _checked_cwd(cwd: object) -> str | None:
    if cwd is None:
        return None
    if not isinstance(cwd, (str, os.PathLike)) or not os.fspath(cwd):
        raise LaunchError(f"launch request field 'cwd' must be a directory path, got {cwd!r}")
    path = os.fspath(cwd)
    if not isinstance(path, str):
        raise LaunchError(f"launch request field 'cwd' must be a text path, got {cwd!r}")
    if os.path.isabs(path):
        return path
    absolute = os.path.abspath(path)
    if not os.path.isdir(absolute):
        raise LaunchError(f"launch request field 'cwd': no directory {path!r} here ({absolute})")
    return absolute
