"""The Slurm commands (sbatch, squeue, scancel, scontrol, sacct), run here or on a login host, and what they say.

The one seam between the Slurm provider and Slurm. Slurm's own words reach
the user: a refused submission raises :exc:`SlurmError` with sbatch's
message. A controller that does not answer raises :exc:`SlurmUnreachable`,
which callers treat as "state unknown", never as a dead job.

Queue states map to three: ``pending`` (PENDING, CONFIGURING, REQUEUED...),
``running`` (RUNNING, COMPLETING, SUSPENDED...) and ``ended`` with a reason
(:data:`END_REASONS`): ``time_limit``, ``preempted``, ``node_fail``,
``oom``, ``cancelled``, or ``exited`` with the exit code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from .._exceptions import LaunchError
from .._tasks import wait_for
from ..defaults import SLURM_COMMAND_TIMEOUT

__all__ = ["END_REASONS", "JobStatus", "SlurmCommands", "SlurmError", "SlurmUnreachable", "local_runner"]

log = logging.getLogger("kernel_nanny.providers.slurm")

#: A job's end state (Slurm's word) -> the death reason kernel-nanny reports.
END_REASONS = {
    "TIMEOUT": "time_limit",
    "DEADLINE": "time_limit",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "node_fail",
    "BOOT_FAIL": "node_fail",
    "OUT_OF_MEMORY": "oom",
    "CANCELLED": "cancelled",
    "REVOKED": "cancelled",
    "COMPLETED": "exited",
    "FAILED": "exited",
    "SPECIAL_EXIT": "exited",
}
_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING"}
#: What squeue and scontrol print when slurmctld does not answer.
_UNREACHABLE = re.compile(r"Unable to contact slurm controller|Socket timed out|Connection refused|Zero Bytes")
#: squeue's fields, in the order of ``_SQUEUE_FORMAT``.
_SQUEUE_FORMAT = "%i|%T|%r|%N|%S|%L|%V"

#: Runs ``argv`` (with ``stdin``) where the Slurm commands are; returns (exit status, stdout, stderr).
Runner = Callable[[list[str], "str | None"], Awaitable[tuple[int, str, str]]]


class SlurmError(LaunchError):
    """A Slurm command refused what was asked (its message says why)."""


class SlurmUnreachable(SlurmError):
    """slurmctld did not answer: the state of a job is unknown, not ended."""


@dataclass(frozen=True)
class JobStatus:
    """A job as the queue shows it (None fields: Slurm did not say)."""

    job_id: str
    #: Slurm's state word (PENDING, RUNNING, TIMEOUT, ...).
    state: str
    #: Why it waits (Priority, Resources, ...) or how it ended (None, NonZeroExitCode, ...).
    reason: str = ""
    node: str = ""
    #: The expected (pending) or actual (running) start, ISO 8601 local time as Slurm prints it.
    start_time: str | None = None
    #: Seconds of walltime left; None: unlimited or unknown.
    time_left: float | None = None
    submit_time: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    #: The job's stdout file, as Slurm expanded it (``StdOut``).
    output: str | None = None

    @property
    def phase(self) -> str:
        """``pending``, ``running`` or ``ended``."""
        if self.state in _PENDING:
            return "pending"
        if self.state in END_REASONS:
            return "ended"
        return "running"

    @property
    def end_reason(self) -> str:
        """The death reason of an ended job (see :data:`END_REASONS`)."""
        return END_REASONS.get(self.state, "exited")

    def describe(self) -> str:
        """``PENDING (Resources), expected to start 2026-12-03T14:00:00`` and the like, for progress lines."""
        text = f"{self.state} ({self.reason})" if self.reason else self.state
        if self.phase == "pending" and self.start_time:
            text += f", expected to start {self.start_time}"
        return text


def local_runner(environment: Mapping[str, str] | None = None) -> Runner:
    """Run the Slurm commands on this machine, with ``environment`` added to ours."""
    env = {**os.environ, **environment} if environment else None

    async def run(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found"
        try:
            out, err = await wait_for(
                process.communicate(stdin.encode() if stdin is not None else None), SLURM_COMMAND_TIMEOUT
            )
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            return 124, "", f"{argv[0]} did not finish within {SLURM_COMMAND_TIMEOUT:g} s"
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    return run


class SlurmCommands:
    """The Slurm commands a kernel needs, through a :data:`Runner` (here, or on a login host over SSH)."""

    def __init__(
        self,
        runner: Runner,
        *,
        where: str = "this machine",
        fix: str = "the Slurm client commands must be installed here (Debian: apt install slurm-client), "
        "or set [providers.slurm] login to a cluster login host",
    ) -> None:
        self._runner = runner
        #: Where the commands run, for messages (``this machine``, ``login host hpc``).
        self.where = where
        self._fix = fix

    def __repr__(self) -> str:
        return f"<SlurmCommands on {self.where}>"

    async def run_raw(self, argv: list[str]) -> tuple[int, str, str]:
        """Run any command where the Slurm commands run (a probe); its exit status, stdout and stderr."""
        return await self._runner(argv, None)

    async def _run(self, argv: list[str], stdin: str | None = None, *, check: bool = True) -> tuple[int, str, str]:
        status, out, err = await self._runner(argv, stdin)
        log.debug("%s -> %d: %s %s", shlex.join(argv), status, out.strip()[:200], err.strip()[:200])
        if status == 127:
            raise SlurmError(f"'{argv[0]}' was not found on {self.where}: {self._fix}")
        if check and status != 0:
            message = _message(err, out, status)
            error = SlurmUnreachable if _UNREACHABLE.search(message) else SlurmError
            raise error(f"{argv[0]} on {self.where} failed: {message}")
        return status, out, err

    async def submit(self, script: str) -> str:
        """Submit a batch ``script`` (on sbatch's stdin); the job id."""
        _, out, _ = await self._run(["sbatch", "--parsable"], script)
        job_id = out.strip().split(";", 1)[0]  # "<id>" or "<id>;<cluster>"
        if not job_id.isdigit():
            raise SlurmError(f"sbatch on {self.where} printed {out.strip()!r}, not a job id")
        return job_id

    async def status(self, job_id: str) -> JobStatus | None:
        """The job's state from the queue (any state, while slurmctld keeps the record); None once forgotten."""
        status, out, err = await self._run(
            ["squeue", "--noheader", "--states=all", "--jobs", job_id, "--format", _SQUEUE_FORMAT], check=False
        )
        if status != 0:
            message = _message(err, out, status)
            if "Invalid job id" in message:
                return None
            error = SlurmUnreachable if _UNREACHABLE.search(message) else SlurmError
            raise error(f"squeue on {self.where} failed: {message}")
        for line in out.splitlines():
            fields = line.split("|")
            if len(fields) == 7 and fields[0] == job_id:
                job, state, reason, node, start, left, submit = fields
                return JobStatus(
                    job_id=job,
                    state=state.split()[0] if state else "UNKNOWN",
                    reason="" if reason == "None" else reason,
                    node=node,
                    start_time=_time_or_none(start),
                    time_left=_seconds(left),
                    submit_time=_time_or_none(submit),
                )
        return None

    async def end_status(self, job_id: str) -> JobStatus | None:
        """An ended job's state with its exit code: from scontrol while Slurm keeps the record, else sacct."""
        status, out, _ = await self._run(["scontrol", "--oneliner", "show", "job", job_id], check=False)
        if status == 0 and out.strip():
            fields = dict(
                re.findall(r"(?:^|\s)(JobState|Reason|ExitCode|NodeList|StartTime|SubmitTime|StdOut)=(\S*)", out)
            )
            code, _, signum = fields.get("ExitCode", "0:0").partition(":")
            return JobStatus(
                job_id=job_id,
                state=fields.get("JobState", "UNKNOWN"),
                reason=fields.get("Reason", "").replace("None", ""),
                node=fields.get("NodeList", ""),
                start_time=_time_or_none(fields.get("StartTime", "")),
                submit_time=_time_or_none(fields.get("SubmitTime", "")),
                exit_code=int(code) if code.isdigit() else None,
                signal=int(signum) if signum.isdigit() and int(signum) else None,
                output=fields.get("StdOut") or None,
            )
        return await self.accounting(job_id)

    async def accounting(self, job_id: str) -> JobStatus | None:
        """The job's record in Slurm's accounting (sacct); None where accounting is disabled or has no record."""
        argv = ["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", job_id]
        status, out, _ = await self._run([*argv, "--format", "JobID,State,ExitCode,NodeList,Start,Submit"], check=False)
        if status != 0:
            return None  # "Slurm accounting storage is disabled", or no slurmdbd
        for line in out.splitlines():
            fields = line.split("|")
            if len(fields) == 6 and fields[0] == job_id:
                job, state, exit_code, node, start, submit = fields
                code, _, signum = exit_code.partition(":")
                return JobStatus(
                    job_id=job,
                    state=state.split()[0] if state else "UNKNOWN",  # "CANCELLED by 0"
                    node=node,
                    start_time=_time_or_none(start),
                    submit_time=_time_or_none(submit),
                    exit_code=int(code) if code.isdigit() else None,
                    signal=int(signum) if signum.isdigit() and int(signum) else None,
                )
        return None

    async def tail(self, path: str, lines: int = 15) -> list[str] | None:
        """The last ``lines`` of ``path`` where the commands run (a job's output); None if unreadable there."""
        status, out, _ = await self._run(["tail", "-n", str(lines), "--", path], check=False)
        return out.rstrip().splitlines() if status == 0 else None

    async def cancel(self, job_id: str) -> None:
        """scancel the job (a job that already ended is no error)."""
        status, out, err = await self._run(["scancel", job_id], check=False)
        message = _message(err, out, status)
        if status != 0 and not re.search(r"already completing or completed|Invalid job id", message):
            error = SlurmUnreachable if _UNREACHABLE.search(message) else SlurmError
            raise error(f"scancel on {self.where} failed: {message}")

    async def our_jobs(self, name_prefix: str) -> list[JobStatus]:
        """This user's queued and running jobs whose name starts with ``name_prefix``."""
        _, out, _ = await self._run(["squeue", "--noheader", "--me", "--format", f"%j|{_SQUEUE_FORMAT}"])
        jobs = []
        for line in out.splitlines():
            name, _, rest = line.partition("|")
            fields = rest.split("|")
            if name.startswith(name_prefix) and len(fields) == 7:
                jobs.append(JobStatus(job_id=fields[0], state=fields[1], reason=fields[2], node=fields[3]))
        return jobs


def _message(err: str, out: str, status: int) -> str:
    text = " ".join((err.strip() or out.strip()).split())
    return text or f"exit status {status}"


def _time_or_none(text: str) -> str | None:
    text = text.strip()
    if not text or text in ("N/A", "Unknown", "None"):
        return None
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return None
    return text


def _seconds(text: str) -> float | None:
    """``[days-]hours:minutes:seconds`` (or shorter) as seconds; None for UNLIMITED and the like."""
    days, _, clock = text.strip().rpartition("-")
    parts = clock.split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3 or (days and not days.isdigit()):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return float(seconds + int(days or 0) * 86400)
