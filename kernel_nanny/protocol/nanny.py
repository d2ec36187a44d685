"""The nanny protocol's vocabulary: versions, requests, events, signal names.

Messages use the Jupyter wire format, signed with the kernel's key. Requests go
to ``nanny_control`` (ROUTER) as ``<name>_request`` and are answered with
``<name>_reply`` whose content has ``status: ok`` or ``status: error`` with
``ename``/``evalue``. Events are published on ``nanny_events`` (XPUB) with the
event name as the message type and as the ZeroMQ topic.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .manager import ExitStatusDict
from .message import Message

__all__ = [
    "NANNY_EVENTS",
    "NANNY_PROTOCOL_VERSION",
    "NANNY_REQUESTS",
    "HeartbeatContent",
    "JournalEntry",
    "JournalInfo",
    "KernelDiedContent",
    "NannyInfo",
    "journal_end",
    "parse_signal",
]

#: Version of the nanny protocol; the major part changes on incompatible changes.
NANNY_PROTOCOL_VERSION = "1.3"

NANNY_REQUESTS = ("is_alive", "interrupt", "signal", "kill", "restart", "shutdown", "info", "replay")
NANNY_EVENTS = (
    "kernel_started",
    "kernel_died",
    "kernel_restarted",
    "restart_failed",
    "stream",
    "heartbeat",
    "nanny_exiting",
)


class NannyInfo(TypedDict):
    """The content of an ``info_reply`` (without ``status``): the nanny's view of its kernel."""

    nanny_protocol_version: str
    nanny_version: str
    kernel_id: str
    kernel_type: str
    name: str | None
    #: The kernel process's pid (None when the kernel runs elsewhere, e.g. in a container).
    pid: int | None
    nanny_pid: int
    alive: bool
    #: The nanny's state: ``starting``, ``running``, ``restarting``, ``dead`` or ``stopping``.
    state: str
    #: The kernel's last ``status`` on iopub (``starting``, ``idle``, ``busy``) and since when (epoch seconds).
    execution_state: str
    execution_state_since: float
    last_activity: float
    started: float
    kernel_started: float | None
    restart_count: int
    restart_policy: dict[str, Any]
    last_exit: ExitStatusDict | None
    log_file: str
    heartbeat_interval: float
    #: Where the kernel runs, when not on the nanny's machine (a Slurm kernel: ``slurm_job``,
    #: ``node``, ``job_state``, ``time_left`` seconds); None for a local kernel.
    placement: dict[str, Any] | None
    #: The journal of the kernel's output, as it stands (None before the kernel's first start).
    journal: JournalInfo | None
    #: The key of the daemon pool the kernel waits in, unclaimed (None once claimed, or never pooled).
    pool: str | None
    #: Why a pooled kernel may no longer be handed out (someone ran code in it, it died...), else None.
    disturbed: str | None


class JournalInfo(TypedDict):
    """The ``journal`` of an ``info_reply``: the seqs a replay can return, and the caps against their use."""

    #: The oldest entry still kept (``last_seq + 1`` when none is) and the newest (0 before the first).
    first_seq: int
    last_seq: int
    #: The caps (bytes) and what is used of them.
    memory_bytes: int
    memory_used: int
    disk_bytes: int
    disk_used: int
    #: Whether entries still go to disk (false with ``disk_bytes`` 0, or after a write error such as a full disk).
    disk_enabled: bool


def journal_end(info: Mapping[str, Any] | None) -> int:
    """The seq of the last entry of the journal an ``info_reply`` describes: where following it from now starts
    (0 with no journal, or no info)."""
    journal = (info or {}).get("journal")
    return int(journal["last_seq"]) if journal else 0


class HeartbeatContent(TypedDict):
    """The content of a ``heartbeat`` event."""

    state: str
    pid: int | None
    restart_count: int


class KernelDiedContent(ExitStatusDict):
    """The content of a ``kernel_died`` event: how the kernel ended, and what happens next."""

    #: Whether the nanny restarts the kernel.
    restarting: bool
    #: Whether a request (kill, restart, shutdown) caused the death.
    requested: bool


def parse_signal(value: int | str) -> int:
    """A signal number from ``9``, ``"9"``, ``"KILL"`` or ``"SIGKILL"``; ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a signal: {value!r}")
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        number = int(value)
        try:
            return int(_signal.Signals(number))
        except ValueError:
            raise ValueError(f"no signal number {number}") from None
    if isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            return int(_signal.Signals[name])
        except KeyError:
            raise ValueError(f"unknown signal name {value!r}") from None
    raise ValueError(f"a signal is a number or a name, got {type(value).__name__}")


@dataclass(frozen=True)
class JournalEntry:
    """One entry of a nanny's journal, as :meth:`ManagerClient.replay <kernel_nanny.ManagerClient.replay>` gives it.

    ``kind`` is ``iopub`` (``message`` is the kernel's iopub message, verified
    with the kernel's key), a marker (``kernel_started``, ``kernel_died``,
    ``kernel_restarted``, ``restart_failed``: ``content`` is the event's), or
    ``lost``: entries after the cursor were dropped from the bounded journal
    before they could be read (``content["count"]`` of them), so a gap is never silent.
    """

    seq: int
    received: float
    kind: str
    message: Message | None = None
    content: dict[str, Any] = field(default_factory=dict)
