"""How a Slurm job's end state becomes a kernel's death reason, for the ends this test cluster cannot produce.

A node failure or an out-of-memory kill cannot be caused on the single-node test cluster (it has one node the
tests need, and ``TaskPlugin=task/none``, so no memory enforcement): these tests give :class:`SlurmCommands` the
lines ``scontrol`` and ``sacct`` print for such jobs, through a stand-in for the command runner. The ends the
cluster can produce (cancelled, time_limit, exited, preempted) are tested for real in ``test_slurm.py`` and
``test_slurm_accounting.py``.
"""

from __future__ import annotations

import pytest

from kernel_nanny.providers.slurm_commands import SlurmCommands

SCONTROL = (
    "JobId=42 JobName=kernel-nanny:py UserId=ada(1000) JobState={state} Reason={reason} Dependency=(null) "
    "ExitCode={code} RunTime=00:03:10 SubmitTime=2026-12-04T10:00:00 StartTime=2026-12-04T10:00:01 "
    "NodeList=node7 StdOut=/home/ada/kernel-nanny-42.out"
)

ENDS = [
    # (Slurm's state, its reason, ExitCode, the death reason, exit code, signal)
    ("PREEMPTED", "None", "0:15", "preempted", 0, 15),
    ("NODE_FAIL", "NodeDown", "0:0", "node_fail", 0, None),
    ("BOOT_FAIL", "None", "0:0", "node_fail", 0, None),
    ("OUT_OF_MEMORY", "OutOfMemory", "0:125", "oom", 0, 125),
    ("TIMEOUT", "TimeLimit", "0:15", "time_limit", 0, 15),
    ("DEADLINE", "None", "0:0", "time_limit", 0, None),
    ("CANCELLED", "None", "0:15", "cancelled", 0, 15),
    ("FAILED", "NonZeroExitCode", "3:0", "exited", 3, None),
    ("COMPLETED", "None", "0:0", "exited", 0, None),
]


def _commands(scontrol: str | None, sacct: str | None) -> SlurmCommands:
    async def runner(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        if argv[0] == "scontrol":
            return (0, scontrol, "") if scontrol else (1, "", "slurm_load_jobs error: Invalid job id specified")
        if argv[0] == "sacct":
            return (0, sacct, "") if sacct else (1, "", "Slurm accounting storage is disabled")
        raise AssertionError(f"unexpected command {argv}")

    return SlurmCommands(runner, where="the test")


@pytest.mark.parametrize(("state", "reason", "code", "death", "exit_code", "signal"), ENDS, ids=[e[0] for e in ENDS])
async def test_an_end_state_from_scontrol_is_its_death_reason(state, reason, code, death, exit_code, signal):
    job = await _commands(SCONTROL.format(state=state, reason=reason, code=code), None).end_status("42")
    assert job is not None and job.phase == "ended" and job.end_reason == death
    assert (job.exit_code, job.signal, job.node) == (exit_code, signal, "node7")


@pytest.mark.parametrize(("state", "reason", "code", "death", "exit_code", "signal"), ENDS, ids=[e[0] for e in ENDS])
async def test_once_slurmctld_forgot_the_job_the_end_comes_from_accounting(
    state, reason, code, death, exit_code, signal
):
    # sacct prints "CANCELLED by 1000" for a cancellation.
    shown = f"{state} by 1000" if state == "CANCELLED" else state
    line = f"42|{shown}|{code}|node7|2026-12-04T10:00:01|2026-12-04T10:00:00\n"
    job = await _commands(None, line).end_status("42")
    assert job is not None and job.end_reason == death and (job.exit_code, job.signal) == (exit_code, signal)


async def test_a_job_neither_remembers_has_no_end_status():
    assert await _commands(None, None).end_status("42") is None
