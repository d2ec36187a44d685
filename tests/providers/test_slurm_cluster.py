"""The test Slurm cluster itself (slurm_cluster.py): the facts the Slurm provider's tests build on."""

from __future__ import annotations

import pytest

from .slurm_cluster import SlurmCluster


async def test_a_batch_job_runs_on_the_node_and_leaves_the_queue(slurm: SlurmCluster, tmp_path):
    output = tmp_path / "job-%j.out"
    job_id = slurm.run("sbatch", "--parsable", f"--output={output}", "--wrap", "echo ran $SLURM_JOB_ID").strip()
    await slurm.wait_gone(job_id, 60)
    # Ended, the job stays readable (MinJobAge) with its final state.
    assert slurm.status(job_id) == "COMPLETED"
    assert (tmp_path / f"job-{job_id}.out").read_text() == f"ran {job_id}\n"


async def test_holding_all_cpus_makes_the_next_job_pend_on_resources(slurm: SlurmCluster):
    async with slurm.hold_all_cpus() as blocker:
        assert slurm.live_jobs() == {blocker: "RUNNING"}
        waiting = slurm.run("sbatch", "--parsable", "--cpus-per-task=1", "--wrap", "true").strip()
        slurm.wait_for_job(lambda job: job["id"] == waiting and job["reason"] == "Resources", 30)
        assert slurm.live_jobs()[waiting] == "PENDING"
        slurm.run("scancel", waiting)
        await slurm.wait_gone(waiting, 60)
    assert slurm.status(blocker) == "CANCELLED" and slurm.status(waiting) == "CANCELLED"


def test_a_stopped_controller_fails_the_commands_and_a_restarted_one_keeps_the_queue(slurm: SlurmCluster):
    held = slurm.run("sbatch", "--parsable", "--hold", "--wrap", "true").strip()
    slurm.stop_controller()
    try:
        with pytest.raises(RuntimeError, match="Unable to contact slurm controller"):
            slurm.run("squeue")
    finally:
        slurm.start_controller()
    [job] = [job for job in slurm.queue() if job["id"] == held]
    assert (job["state"], job["reason"]) == ("PENDING", "JobHeldUser")
    slurm.run("scancel", held)
