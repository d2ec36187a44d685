"""Runs that outlive their caller: a record of each run in a kernel behind a nanny, and re-joining it.

A :class:`~kernel_nanny.KernelExecution` in a kernel behind a nanny queues
all its commands in the kernel at once and writes a :class:`RunRecord` (0600,
in the nanny's 0700 state directory, so it goes with the kernel): which
``execute_request`` msg_ids make up the run, and the journal's ``seq`` just
before the first. If the caller dies, the kernel runs the commands to the end
anyway, and the nanny's journal records their output. :func:`rejoin` reads
that output back from the record's ``seq`` (all of it, then the rest live)
and works out the return code the first caller would have returned: ``0``, or
``1`` at the first command that published an ``error`` (Jupyter kernels
publish one for each command that raised; after it, the kernel aborts the
queued rest).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ._exceptions import KernelDied, KernelNotRunning, NoSuchKernel
from .client import ManagerClient
from .client.running import RunningKernel, list_running_kernels
from .paths import nanny_state_dir, secure_directory, write_private_file
from .protocol import ExitStatus, Message

__all__ = ["RunRecord", "commands_digest", "find_run", "going_run", "rejoin"]

log = logging.getLogger("kernel_nanny.execution")

OutputHook = Callable[[Message], None]

#: A run's return codes: every command ran, or one raised.
OK, FAILED = 0, 1


def commands_digest(commands: Sequence[str]) -> str:
    """What identifies a run's commands (for ``exec --group`` to tell the same run from another)."""
    return hashlib.sha256("\0".join(commands).encode()).hexdigest()[:16]


@dataclass
class RunRecord:
    """One run of commands in a kernel behind a nanny, as written when its commands were queued."""

    execution_id: str
    kernel_id: str
    group: str | None
    digest: str
    msg_ids: list[str]
    #: The journal's last seq before the first command was sent: the run's output comes after it.
    since: int
    pid: int
    started: float
    #: The return code, once whoever followed the run to its end wrote it.
    result: int | None = None

    @classmethod
    def new(cls, kernel_id: str, group: str | None, commands: Sequence[str], since: int) -> RunRecord:
        return cls(
            uuid.uuid4().hex[:12], kernel_id, group, commands_digest(commands), [], since, os.getpid(), time.time()
        )

    @property
    def path(self) -> Path:
        return _runs_dir(self.kernel_id) / f"{self.execution_id}.json"

    def save(self) -> None:
        """Write the record (atomically, 0600); a kernel whose directory is gone has no record to keep."""
        try:
            secure_directory(self.path.parent)
            write_private_file(self.path, json.dumps(asdict(self)).encode())
        except OSError as exc:
            log.warning("cannot write the record of run %s (%s): it cannot be re-joined", self.execution_id, exc)

    @classmethod
    def load(cls, path: Path) -> RunRecord | None:
        try:
            data = json.loads(path.read_bytes())
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignored the run record %s: %s", path, exc)
            return None


def _runs_dir(kernel_id: str) -> Path:
    return nanny_state_dir(kernel_id, create=False) / "runs"


def _records(kernel: RunningKernel) -> list[RunRecord]:
    """The kernel's run records, oldest first."""
    try:
        paths = list(_runs_dir(kernel.kernel_id).glob("*.json"))
    except OSError:
        return []
    records = [record for path in paths if (record := RunRecord.load(path)) is not None]
    return sorted(records, key=lambda record: record.started)


def find_run(execution_id: str) -> tuple[RunningKernel, RunRecord]:
    """The running kernel and the record of run ``execution_id`` (what ``exec`` printed when it began)."""
    for kernel in list_running_kernels():
        for record in _records(kernel):
            if record.execution_id == execution_id:
                return kernel, record
    raise NoSuchKernel(
        f"no run {execution_id!r} in any running kernel (a run's record goes with its kernel; "
        "'kernel-nanny ps' lists the kernels)"
    )


async def going_run(kernel: RunningKernel, manager: ManagerClient) -> RunRecord | None:
    """The kernel's newest run whose last command has not finished (per the journal), if any.

    A run whose last command's entries were partly dropped (the journal's caps) is not taken for
    going: its end may be among them, and following it could wait for ever.
    """
    for record in reversed(_records(kernel)):
        if record.result is not None or not record.msg_ids:
            continue
        async for entry in manager.replay(record.since, parent_msg_id=record.msg_ids[-1]):
            if entry.kind == "lost" or _is_idle(entry.message):
                break
        else:
            return record
    return None


async def rejoin(manager: ManagerClient, record: RunRecord, output_hook: OutputHook | None = None) -> int:
    """Follow run ``record`` to its end and return its code (see the module docstring).

    ``output_hook`` sees each output of the run's commands, from the first that the journal
    still holds: entries its size caps dropped before anyone read them are logged as a warning
    with their count (the output is then incomplete). A run its first caller saw to the end
    returns the code that caller recorded, after the output the journal holds.
    Raises :exc:`~kernel_nanny.KernelDied` if the kernel dies before the run
    ends, :exc:`~kernel_nanny.KernelNotRunning` if it is stopped.
    """
    commands = list(record.msg_ids)
    failed: set[str] = set()
    entries = manager.replay(record.since) if record.result is not None else manager.follow(record.since)
    async for entry in entries:
        if entry.kind == "lost":  # the bounded journal dropped them before anyone read them: say so, never skip
            log.warning(
                "run %s in kernel %s: %d of its journal entries were dropped before this caller read them "
                "(the journal's size caps, [journal] memory and disk); its output shown here is incomplete",
                record.execution_id,
                record.kernel_id[:12],
                entry.content["count"],
            )
            continue
        if entry.kind == "kernel_died" and record.result is None:
            raise KernelDied("the kernel died while running the code", status=ExitStatus.from_dict(entry.content))
        message = entry.message
        if message is None or message.parent_id not in commands:
            continue
        parent = message.parent_id
        if message.msg_type == "error":
            failed.add(parent)
        if _is_idle(message):
            # Commands end in order: an idle of a later one means those before it ended too (their idles lost).
            commands = commands[commands.index(parent) + 1 :]
            if failed or not commands:
                if record.result is None:
                    record.result = FAILED if failed else OK
                    record.save()
                return record.result
        elif message.msg_type not in ("status", "execute_input") and output_hook is not None:
            output_hook(message)
    if record.result is not None:
        return record.result
    raise KernelNotRunning.named(record.kernel_id[:12], "stopped")


def _is_idle(message: Message | None) -> bool:
    return message is not None and message.msg_type == "status" and message.content.get("execution_state") == "idle"
