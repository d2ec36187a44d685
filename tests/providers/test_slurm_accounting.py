"""The Slurm provider where job accounting is configured (slurmdbd on MariaDB; see slurm_cluster.py).

This cluster forgets an ended job within seconds (MinJobAge 2 s): after that ``scontrol`` and
``squeue`` no longer know it and a job's end comes from ``sacct`` alone. Associations are enforced,
so an account the cluster does not know is refused at submission.
"""

from __future__ import annotations

import pytest

from kernel_nanny import NoSuchKernel
from kernel_nanny.providers.slurm import SlurmKernelManager, SlurmProvider
from kernel_nanny.providers.slurm_commands import SlurmCommands, SlurmError, local_runner

from .slurm_cluster import ACCOUNT, SlurmCluster

pytestmark = pytest.mark.timeout(240)

KERNEL = "spec/python3"


def _provider(**settings: object) -> SlurmProvider:
    provider = SlurmProvider()
    provider.load_config({"kernels": {"py": {"kernel": KERNEL, **settings}}})
    return provider


async def test_sacct_gives_the_end_of_a_job_slurmctld_has_forgotten(slurm_accounting: SlurmCluster):
    failed = slurm_accounting.run("sbatch", "--parsable", "--output=/dev/null", "--wrap", "exit 3").strip()
    cancelled = slurm_accounting.run("sbatch", "--parsable", "--output=/dev/null", "--wrap", "sleep 600").strip()
    slurm_accounting.run("scancel", cancelled)
    for job_id in (failed, cancelled):
        await slurm_accounting.wait_forgotten(job_id, 60)
    commands = SlurmCommands(local_runner())
    assert await commands.status(failed) is None  # squeue no longer knows it

    ended = await commands.end_status(failed)
    assert ended is not None and (ended.state, ended.exit_code, ended.signal) == ("FAILED", 3, None)
    assert ended.end_reason == "exited" and ended.node and ended.submit_time

    ended = await commands.end_status(cancelled)  # sacct says "CANCELLED by 0"
    assert ended is not None and (ended.state, ended.end_reason) == ("CANCELLED", "cancelled")


async def test_a_kernel_whose_job_slurmctld_forgot_is_reattached_to_its_death_reason(
    slurm_accounting: SlurmCluster,
):
    info, manager = await _provider(account=ACCOUNT).launch("py")
    assert isinstance(manager, SlurmKernelManager)
    state, job_id = manager.to_json(), manager.state.job_id
    await manager.cleanup()  # this process lets go; the kernel runs on in its job
    slurm_accounting.run("scancel", job_id)
    await slurm_accounting.wait_forgotten(job_id, 60)
    with pytest.raises(NoSuchKernel, match=f"Slurm job {job_id} is gone: .*cancelled from outside"):
        await SlurmKernelManager.from_json(state)


async def test_an_account_the_cluster_does_not_know_is_slurms_message(slurm_accounting: SlurmCluster):
    with pytest.raises(SlurmError, match="(?i)invalid account"):
        await _provider(account="no-such-account").launch("py")
    assert slurm_accounting.jobs() == []
