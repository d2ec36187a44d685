"""The Slurm provider against a real single-node Slurm cluster (slurmctld, slurmd, munge; see slurm_cluster.py).

Every test ends with no job of ours in the queue (the ``slurm`` fixture checks).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import tomllib

from kernel_nanny import (
    InvalidRequest,
    KernelClient,
    KernelDied,
    KernelExecution,
    KernelFinder,
    LaunchError,
    LaunchRequest,
    ManagerClient,
    NoSuchKernel,
    start_kernel,
)
from kernel_nanny.cli import main as cli_main
from kernel_nanny.launch.progress import listening
from kernel_nanny.providers.slurm import SlurmKernelManager, SlurmProvider
from kernel_nanny.providers.slurm_commands import SlurmError
from kernel_nanny.providers.slurm_job import state_file

from ..daemons import RunningDaemon
from ..helpers import interrupted, run_on_a_terminal
from ..reattach import reattach_elsewhere
from .slurm_cluster import SlurmCluster

pytestmark = pytest.mark.timeout(240)

KERNEL = "spec/python3"


def _table(**kernels: Mapping[str, Any]) -> str:
    lines = []
    for name, settings in kernels.items():
        lines.append(f"[providers.slurm.kernels.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in {"kernel": KERNEL, **settings}.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def configure(tmp_path, monkeypatch, slurm):
    """Write a [providers.slurm] configuration for everybody (nannies included); the finder that reads it."""

    def write(**kernels: Mapping[str, Any]) -> KernelFinder:
        path = tmp_path / "config.toml"
        path.write_text(_table(**kernels))
        monkeypatch.setenv("KERNEL_NANNY_CONFIG", str(path))
        return KernelFinder.from_entrypoints()

    return write


@pytest.fixture
async def slurm_daemon(configure, tmp_path, monkeypatch):
    """A daemon offering slurm/py, in runtime and state directories of its own; stopped cleanly afterwards."""
    configure(py={})
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    daemon = RunningDaemon(tmp_path, _table(py={}))
    await daemon.start()
    yield daemon
    assert await daemon.stop() == 0


def _request(name: str = "py", **params: Any) -> LaunchRequest:
    return LaunchRequest(kernel_type=f"slurm/{name}", supervised=True, params=params or None)


async def _run(info: Mapping[str, Any], code: str) -> str:
    async with KernelClient(dict(info)) as kc:
        await kc.wait_for_ready(timeout=60)
        result = await kc.execute_interactive(code, timeout=60)
    assert result.ok, result.error
    return "".join(m.content.get("text", "") for m in result.outputs if m.msg_type == "stream")


class _Events:
    """A nanny's events, collected; ``until(kind)`` returns the first of that kind."""

    def __init__(self, manager: ManagerClient) -> None:
        self.seen: list[Any] = []
        self._changed = asyncio.Event()
        manager.add_event_handler(self._on_event)

    def _on_event(self, event: Any) -> None:
        self.seen.append(event)
        self._changed.set()

    async def until(
        self, kind: str, timeout: float = 120, where: Callable[[Mapping[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        async def found() -> dict[str, Any]:
            while True:
                for event in self.seen:
                    if event.msg_type == kind and where(event.content):
                        return dict(event.content)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(found(), timeout)


# -- listing -----------------------------------------------------------------------------


def test_kernel_types_come_from_the_settings_without_contacting_slurm(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text(_table(gpu={"partition": "gpu", "display_name": "GPU Python"}))
    monkeypatch.setenv("KERNEL_NANNY_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm command can run: listing must not need one
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nowhere.conf"))
    kernels = dict(KernelFinder.from_entrypoints().find_kernels())
    assert kernels["slurm/gpu"]["display_name"] == "GPU Python"
    assert kernels["slurm/gpu"]["kernel"] == KERNEL


# -- the life of a Slurm kernel ---------------------------------------------------------------


async def test_launch_execute_interrupt_restart_in_place_and_kill(configure, slurm: SlurmCluster):
    finder = configure(py={"time": 10})
    async with start_kernel(_request(), finder=finder) as (info, manager):
        assert isinstance(manager, ManagerClient)
        first = await manager.info()
        place = first["placement"]
        job_id = place["slurm_job"]
        assert slurm.jobs() == [job_id] and place["job_state"] == "RUNNING"
        assert 540 < place["time_left"] <= 600
        # Every socket on the node is CurveZMQ-encrypted.
        assert info["transport"] == "tcp" and info["curve_publickey"]
        output = await _run(info, "import os; print(os.environ['SLURM_JOB_ID'], os.getpid())")
        assert output.split()[0] == job_id
        assert (await interrupted(info, manager)).error["ename"] == "KeyboardInterrupt"
        await manager.restart()
        # In place: the same job, a new kernel process.
        after = await _run(info, "import os; print(os.environ['SLURM_JOB_ID'], os.getpid())")
        assert after.split()[0] == job_id and after.split()[1] != output.split()[1]
        assert (await manager.info())["placement"]["slurm_job"] == job_id
        events = _Events(manager)
        await manager.subscribe()
        await manager.kill()
        # (The restart's own death may reach us late, relayed from the job: it says it is restarting.)
        died = await events.until("kernel_died", where=lambda death: not death["restarting"])
        assert died["reason"] == "killed" and died["requested"] and not died["final"]
        assert slurm.jobs() == [job_id]  # killing the kernel keeps the job for a restart
        await manager.restart()
        assert "ok" in await _run(info, "print('ok')")
        assert state_file(job_id).exists() and oct(state_file(job_id).stat().st_mode & 0o777) == "0o600"
    await slurm.wait_gone(job_id, 60)
    assert not state_file(job_id).exists()


async def test_a_pending_job_reports_its_state_and_a_cancelled_start_cancels_it(configure, slurm: SlurmCluster):
    finder = configure(py={})
    pending: list[Mapping[str, Any]] = []
    seen = asyncio.Event()

    def on_event(event: str, content: Mapping[str, Any]) -> None:
        if event == "kernel_pending" and content["state"] == "PENDING" and content["reason"]:
            pending.append(content)
            seen.set()

    async with slurm.hold_all_cpus():
        with listening(on_event):
            launch = asyncio.ensure_future(start_kernel(_request(startup_timeout=300), finder=finder))
            await asyncio.wait_for(seen.wait(), 60)
        job_id = pending[0]["slurm_job"]
        assert pending[0]["reason"] in ("Resources", "Priority") and job_id in pending[0]["message"]
        launch.cancel()  # what Ctrl-C does
        with pytest.raises(asyncio.CancelledError):
            await launch
        # The nanny abandoned the launch: the job was cancelled, and confirmed gone, before the start returned.
        status = slurm.status(job_id)
        assert status in ("", "CANCELLED"), status


async def test_a_launch_that_fails_after_the_job_reported_back_cancels_the_job(configure, slurm: SlurmCluster):
    finder = configure(py={})
    # The job runs and its nanny reports; then its state cannot be written (a directory holds the file's place):
    # the job must not be left running. Job ids count up on this cluster: the next one is a probe's plus one.
    probe = slurm.run("sbatch", "--parsable", "--hold", "--output=/dev/null", "--wrap", "true").strip()
    slurm.run("scancel", probe)
    blocked = state_file(str(int(probe) + 1))
    blocked.mkdir()
    try:
        with pytest.raises(LaunchError, match=str(blocked)):
            await start_kernel(_request(), finder=finder)
        assert slurm.jobs() == []
    finally:
        blocked.rmdir()


async def test_a_start_that_times_out_in_the_queue_cancels_the_job(configure, slurm: SlurmCluster):
    finder = configure(py={})
    async with slurm.hold_all_cpus():
        with pytest.raises(LaunchError) as error:
            await start_kernel(_request(startup_timeout=3), finder=finder)
    message = str(error.value)
    assert "still PENDING" in message and "cancelled it" in message and "--startup-timeout" in message


async def _start_waits_on_a_live_line_then_times_out(slurm: SlurmCluster) -> None:
    """``start`` with the node's CPUs held: one line, redrawn in place (\\r, erased with \\x1b[K), says what the job
    waits for, with Slurm's reason; the start-up timeout then cancels the job."""
    async with slurm.hold_all_cpus():
        screen = await asyncio.to_thread(run_on_a_terminal, "start", "slurm/py", "--startup-timeout", "6")
    found = re.search(r"\r\x1b\[Kkernel-nanny: waiting for Slurm job (\d+) PENDING \((Resources|Priority)\)", screen)
    assert found, screen
    assert "still PENDING" in screen and "cancelled it" in screen
    assert slurm.status(found.group(1)) in ("", "CANCELLED")


async def test_the_cli_start_shows_the_queue_on_a_live_line_and_times_out_with_the_job_cancelled(
    configure, slurm: SlurmCluster
):
    configure(py={})
    await _start_waits_on_a_live_line_then_times_out(slurm)


async def test_through_a_daemon_the_cli_start_shows_the_queue_too(slurm_daemon, slurm: SlurmCluster):
    """The daemon launches the job and passes its queue state on (launch_progress)."""
    await _start_waits_on_a_live_line_then_times_out(slurm)
    assert "launch_request failed: LaunchError: Slurm job" in slurm_daemon.log()  # it was the daemon's launch


def test_the_cli_start_is_cancelled_by_sigterm_while_pending(configure, slurm: SlurmCluster, tmp_path):
    configure(py={})
    env = dict(os.environ)
    with open(tmp_path / "out", "wb") as out:
        with slurm.hold_all_cpus_sync():
            process = subprocess.Popen(
                [sys.executable, "-m", "kernel_nanny", "start", "slurm/py", "--startup-timeout", "300"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            job_id = slurm.wait_for_job(lambda job: job["name"] == "kernel-nanny:py" and job["state"] == "PENDING", 60)
            process.terminate()
            assert process.wait(90) == 130
    assert "interrupted" in (tmp_path / "out").read_text()
    assert slurm.status(job_id) in ("", "CANCELLED")


async def test_an_external_scancel_is_a_cancelled_death_and_final(configure, slurm: SlurmCluster, capsys):
    finder = configure(py={})
    async with start_kernel(_request(), finder=finder) as (info, manager):
        job_id = (await manager.info())["placement"]["slurm_job"]
        events = _Events(manager)
        await manager.subscribe()
        slurm.run("scancel", job_id)
        died = await events.until("kernel_died")
        assert died["reason"] == "cancelled" and died["final"] and not died["restarting"]
        info_now = await manager.info()
        assert info_now["state"] == "dead" and info_now["last_exit"]["reason"] == "cancelled"
        assert await asyncio.to_thread(cli_main, ["ps"]) == 0
        row = next(line for line in capsys.readouterr().out.splitlines() if "slurm/py" in line)
        assert "dead (cancelled)" in row
        with pytest.raises(Exception, match="cannot be restarted in place"):
            await manager.restart()


async def test_a_preempted_job_is_a_preempted_death_not_a_requeue(configure, slurm: SlurmCluster):
    """Preemption in REQUEUE mode would put the job back in the queue, to start a kernel nobody can reach
    while the launcher waited on; kernel-nanny's jobs are not requeueable, so Slurm ends them instead."""
    finder = configure(py={})
    async with start_kernel(_request(), finder=finder) as (info, manager):
        job_id = (await manager.info())["placement"]["slurm_job"]
        events = _Events(manager)
        await manager.subscribe()
        preemptor = await asyncio.to_thread(slurm.preempt_all)
        try:
            died = await events.until("kernel_died", timeout=60)
            assert died["reason"] == "preempted" and died["final"] and not died["restarting"]
            assert slurm.status(job_id) == "PREEMPTED"
            assert (await manager.info())["last_exit"]["reason"] == "preempted"
        finally:
            slurm.run("scancel", preemptor)


@pytest.mark.slow
async def test_a_time_limit_that_runs_out_is_reported_as_time_limit(configure, slurm: SlurmCluster):
    """Slurm time limits are whole minutes: this takes about a minute (plus the cluster's KillWait)."""
    finder = configure(py={"time": 1})
    async with start_kernel(_request(), finder=finder) as (info, manager):
        events = _Events(manager)
        await manager.subscribe()
        died = await events.until("kernel_died", timeout=180)
        assert died["reason"] == "time_limit" and died["final"]


async def test_killing_the_kernel_in_a_kernel_execution_names_the_job_end(configure, slurm: SlurmCluster):
    finder = configure(py={})
    async with KernelExecution(kernel_type="slurm/py", finder=finder) as execution:
        await execution.start()
        assert await execution.run(["print('in the job')"]) == 0
        [job_id] = slurm.jobs()
        run = asyncio.ensure_future(execution.run(["import time; time.sleep(120)"]))
        slurm.run("scancel", job_id)
        with pytest.raises(KernelDied) as died:
            await asyncio.wait_for(run, 120)
        assert died.value.status.reason == "cancelled"
        assert "cancelled from outside" in str(died.value)


# -- re-attaching ---------------------------------------------------------------------------


async def test_the_state_json_reattaches_in_a_new_process_with_full_control(configure, slurm: SlurmCluster):
    configure(py={})
    provider = SlurmProvider()
    provider.load_config(json.loads(json.dumps({"kernels": {"py": {"kernel": KERNEL}}})))
    info, manager = await provider.launch("py")
    assert isinstance(manager, SlurmKernelManager)
    try:
        state = manager.to_json()
        assert json.loads(state)["kind"] == "slurm" and json.loads(state)["job_id"] == manager.state.job_id
        await manager.cleanup()  # this process lets go; the kernel runs on
        result = await reattach_elsewhere(
            "kernel_nanny.providers.slurm:SlurmKernelManager",
            state,
            "alive",
            "execute:import os; print(os.environ['SLURM_JOB_ID'])",
            "interrupt",
            "restart",
            "execute:print('after restart')",
        )
        assert result == {
            "results": [True, f"{manager.state.job_id}\n", "KeyboardInterrupt", "restarted", "after restart\n"]
        }
        again = await SlurmKernelManager.from_state_file(manager.state.job_id)
    except BaseException:
        await manager.shutdown(now=True)
        raise
    await again.shutdown()
    await slurm.wait_gone(manager.state.job_id, 60)
    with pytest.raises(NoSuchKernel, match="is gone|no state"):
        await SlurmKernelManager.from_json(state)


async def test_a_wrong_state_json_is_refused_before_anything_is_contacted():
    with pytest.raises(InvalidRequest, match="kind 'local'"):
        await SlurmKernelManager.from_json(json.dumps({"kind": "local", "version": 1}))
    with pytest.raises(InvalidRequest, match="lacks"):
        await SlurmKernelManager.from_json(json.dumps({"kind": "slurm", "version": 1, "job_id": "1"}))


async def test_a_restarted_daemon_readopts_a_slurm_kernel(configure, slurm: SlurmCluster, tmp_path, monkeypatch):
    configure(py={})
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))  # the daemon's files stay out of the session's
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    daemon = RunningDaemon(tmp_path, _table(py={}))
    await daemon.start()
    try:
        async with daemon.client() as client:
            info, manager = await client.launch("slurm/py", name="on-slurm")
            await manager.cleanup()
        job_id = slurm.jobs()[0]
        await daemon.kill()
        await daemon.start()
        async with daemon.client() as client:
            [entry] = await client.list_kernels(info=True)
            assert entry["name"] == "on-slurm" and entry["info"]["placement"]["slurm_job"] == job_id
            assert "readopted" in await _run(info, "print('readopted')")
            await client.shutdown_kernel("on-slurm")
        await slurm.wait_gone(job_id, 60)
    finally:
        if daemon.running:  # a failed test leaves no kernel behind either
            async with daemon.client() as client:
                for entry in await client.list_kernels():
                    await client.shutdown_kernel(entry["kernel_id"], now=True)
        assert await daemon.stop() == 0


async def test_stop_through_the_daemon_cancels_a_launch_still_in_the_queue(slurm_daemon, slurm: SlurmCluster):
    daemon = slurm_daemon
    async with slurm.hold_all_cpus(), daemon.client() as client:
        launch = asyncio.ensure_future(client.launch("slurm/py", name="queued", launch_params={"startup_timeout": 300}))
        job_id = await asyncio.to_thread(
            slurm.wait_for_job, lambda job: job["name"] == "kernel-nanny:py" and job["state"] == "PENDING", 60
        )
        # What a user types in another terminal: the daemon has no kernel by that name yet, only its launch.
        stop = await asyncio.create_subprocess_exec(sys.executable, "-m", "kernel_nanny", "stop", "queued")
        assert await asyncio.wait_for(stop.wait(), 90) == 0
        assert slurm.status(job_id) in ("", "CANCELLED")  # gone from the queue when the stop returned
        with pytest.raises(LaunchError, match="'queued' was cancelled by a stop request"):
            await launch
        assert await client.list_kernels() == []
    assert "cancelling its launch" in daemon.log()


async def test_ps_lists_an_unnamed_launch_in_the_queue_and_stop_all_cancels_it(slurm_daemon, slurm: SlurmCluster):
    """A Slurm job can wait in the queue for hours before its kernel exists: ps shows it (as pending, with
    the queue's reason, not as a job no kernel owns), and stop --all leaves nothing of it behind."""
    daemon = slurm_daemon
    async with slurm.hold_all_cpus(), daemon.client() as client:
        pending = asyncio.Event()

        def on_event(event: str, content: Mapping[str, Any]) -> None:
            if event == "kernel_pending":
                pending.set()

        launch = asyncio.ensure_future(
            client.launch("slurm/py", launch_params={"startup_timeout": 300}, on_event=on_event)
        )
        await asyncio.wait_for(pending.wait(), 60)
        [under_way] = await client.list_launches()
        job_id = under_way["content"]["slurm_job"]
        assert under_way["type_id"] == "slurm/py" and under_way["name"] is None
        assert slurm.status(job_id) == "PENDING"
        ps = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kernel_nanny", "ps", stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(ps.communicate(), 60)
        row = next(line for line in out.decode().splitlines() if "slurm/py" in line)
        assert " pending " in row and f"Slurm job {job_id} PENDING" in row, out
        assert f"Slurm job {job_id}" not in err.decode()  # not a stray: the launch owns it
        listing = json.loads(await asyncio.to_thread(_cli_output, "ps", "--json"))
        [entry] = [e for e in listing if e["kernel_type"] == "slurm/py"]
        assert entry["kernel_id"] is None and entry["state"] == "pending"
        assert entry["pending"]["slurm_job"] == job_id and entry["pending"]["state"] == "PENDING"
        stop = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kernel_nanny", "stop", "--all", stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(stop.communicate(), 90)
        assert stop.returncode == 0 and "cancelled the launch of slurm/py" in err.decode()
        assert slurm.status(job_id) in ("", "CANCELLED")  # out of the queue when stop returned
        with pytest.raises(LaunchError, match="cancelled by a stop request for all kernels"):
            await launch
        assert await client.list_launches() == [] and await client.list_kernels() == []


async def test_the_cli_start_through_a_daemon_is_cancelled_by_sigterm_while_pending(slurm_daemon, slurm: SlurmCluster):
    daemon = slurm_daemon
    async with slurm.hold_all_cpus():
        start = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kernel_nanny",
            "start",
            "slurm/py",
            "--startup-timeout",
            "300",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        job_id = await asyncio.to_thread(
            slurm.wait_for_job, lambda job: job["name"] == "kernel-nanny:py" and job["state"] == "PENDING", 60
        )
        start.terminate()  # the daemon launched the job: the client's giving up must reach it
        out, _ = await asyncio.wait_for(start.communicate(), 90)
        assert start.returncode == 130, out
        assert slurm.status(job_id) in ("", "CANCELLED")
    assert "cancelled by its client" in daemon.log()
    async with daemon.client() as client:
        assert await client.list_kernels() == []


async def test_ps_shows_the_job_node_state_and_walltime_and_names_jobs_nobody_owns(
    configure, slurm: SlurmCluster, capsys
):
    finder = configure(py={"time": 30})
    stray = slurm.run("sbatch", "--parsable", "--job-name=kernel-nanny:lost", "--wrap", "sleep 300").strip()
    try:
        async with start_kernel(_request(), finder=finder) as (info, manager):
            job_id = (await manager.info())["placement"]["slurm_job"]
            assert await asyncio.to_thread(cli_main, ["ps"]) == 0
            out, err = capsys.readouterr()
            row = next(line for line in out.splitlines() if "slurm/py" in line)
            assert f"slurm job {job_id} on " in row and "RUNNING" in row and "left" in row
            assert f"Slurm job {stray}" in err and f"scancel {stray}" in err and f"Slurm job {job_id} " not in err
    finally:
        slurm.run("scancel", stray)
        await slurm.wait_gone(stray, 60)


# -- Jupyter ----------------------------------------------------------------------------------


async def test_the_provisioner_runs_a_slurm_kernel_and_restarts_it_in_the_same_job(
    configure, slurm, tmp_path, monkeypatch, caplog
):
    from jupyter_client.manager import AsyncKernelManager

    configure(py={})
    spec_dir = tmp_path / "share" / "jupyter" / "kernels" / "on-slurm"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python on Slurm",
                "language": "python",
                "metadata": {
                    "kernel_provisioner": {"provisioner_name": "kernel-nanny", "config": {"kernel_type": "slurm/py"}}
                },
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    km = AsyncKernelManager(kernel_name="on-slurm")
    await km.start_kernel()
    try:
        [job_id] = slurm.jobs()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            reply = await kc.execute_interactive("import os; print(os.environ['SLURM_JOB_ID'])", timeout=60)
            assert reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
        await km.restart_kernel()
        assert slurm.jobs() == [job_id]
        # A job cancelled from outside: jupyter_client sees a dead kernel, and the server's log says why.
        with caplog.at_level("WARNING"):
            slurm.run("scancel", job_id)
            while await km.is_alive():
                await asyncio.sleep(0.2)  # what jupyter_server's restarter does, faster
        assert any("cancelled from outside (scancel)" in record.getMessage() for record in caplog.records)
    finally:
        await km.shutdown_kernel()
    await slurm.wait_gone(job_id, 60)


# -- errors: Slurm's own message, and nothing left queued -------------------------------------


async def test_an_invalid_partition_is_slurms_message(configure, slurm: SlurmCluster):
    finder = configure(py={"partition": "no-such-partition"})
    with pytest.raises(SlurmError, match="(?i)invalid partition"):
        await finder.launch("slurm/py")
    assert slurm.jobs() == []


@pytest.mark.parametrize(
    ("settings", "slurm_says"),
    [
        ({"gres": "gpu:1"}, "(?i)invalid generic resource"),
        ({"cpus": 999}, "(?i)cannot start as asked.*PartitionConfig"),
    ],
    ids=["gres", "cpus"],
)
async def test_a_request_the_cluster_cannot_meet_is_slurms_message(
    configure, slurm: SlurmCluster, settings, slurm_says
):
    """(Accounts and QOS are checked only where accounting enforces them: see test_slurm_accounting.py.)"""
    finder = configure(py=settings)
    with pytest.raises(LaunchError, match=slurm_says):
        await finder.launch("slurm/py")
    assert slurm.jobs() == []


async def test_missing_slurm_commands_are_named_with_the_fix(configure, slurm: SlurmCluster, tmp_path, monkeypatch):
    finder = configure(py={})
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SlurmError, match="'sbatch' was not found on this machine.*slurm-client"):
        await finder.launch("slurm/py")


async def test_a_controller_that_is_down_at_submit_is_named(configure, slurm: SlurmCluster):
    finder = configure(py={})
    slurm.stop_controller()
    try:
        with pytest.raises(SlurmError, match="(?i)unable to contact slurm controller|connect"):
            await finder.launch("slurm/py")
    finally:
        slurm.start_controller()
    assert slurm.jobs() == []


async def test_a_job_that_fails_before_its_nanny_reports_shows_its_output(configure, slurm: SlurmCluster, tmp_path):
    output = tmp_path / "job-%j.out"
    finder = configure(py={"setup": ["echo 'module: cuda/99 not found' >&2", "exit 3"], "output": str(output)})
    with pytest.raises(LaunchError) as error:
        await finder.launch("slurm/py")
    message = str(error.value)
    assert "before its nanny reported" in message and "FAILED" in message and "exit code 3" in message
    assert "module: cuda/99 not found" in message
    assert slurm.jobs() == []


async def test_a_kernel_type_unknown_on_the_node_is_reported_back(configure, slurm: SlurmCluster):
    finder = configure(py={"kernel": "spec/no-such-kernel"})
    with pytest.raises(Exception, match="no-such-kernel"):
        await finder.launch("slurm/py")
    assert slurm.jobs() == []


def test_a_callback_from_a_stranger_is_ignored():
    """Only a report signed with the job's one-time token is taken; a forged one is logged and ignored."""

    async def scenario() -> None:
        from kernel_nanny.launch.callback import CallbackAddress, CallbackListener, call_back

        async with CallbackListener("127.0.0.1") as listener:
            receiving = asyncio.ensure_future(listener.receive())
            forged = CallbackAddress(listener.address.endpoint, listener.address.server_key, "0" * 64)
            with pytest.raises(LaunchError, match="did not acknowledge"):
                await call_back(forged, {"nanny": {"ip": "attacker"}})
            assert not receiving.done()
            await call_back(listener.address, {"nanny": {"ip": "node"}})
            assert (await receiving)["nanny"] == {"ip": "node"}

    asyncio.run(scenario())


def test_slurm_settings_are_checked_with_their_key(tmp_path):
    provider = SlurmProvider()
    with pytest.raises(Exception, match=r"\[providers.slurm.kernels.py\] time"):
        provider.load_config({"kernels": {"py": {"kernel": KERNEL, "time": "soon"}}})
    with pytest.raises(Exception, match="kernel = 'spec/python3'"):
        provider.load_config({"kernels": {"py": {"partition": "debug"}}})
    with pytest.raises(Exception, match="unknown setting"):
        provider.load_config({"kernels": {"py": {"kernel": KERNEL, "gpus": 1}}})
    with pytest.raises(Exception, match="would submit a job from the job"):
        provider.load_config({"kernels": {"py": {"kernel": "slurm/py"}}})
    with pytest.raises(Exception, match=r"\[providers.slurm.login\] command: unknown setting"):
        provider.load_config({"login": {"host": "hpc", "command": "kernel-nanny"}, "kernels": {}})


async def test_a_job_whose_nanny_was_killed_is_named_by_ps_and_taken_over_from_its_state(
    configure, slurm: SlurmCluster, capsys
):
    finder = configure(py={})
    info, manager = await start_kernel(_request(), finder=finder)
    assert isinstance(manager, ManagerClient)
    job_id = (await manager.info())["placement"]["slurm_job"]
    os.kill(int(info["nanny_pid"]), 9)  # the local nanny dies without a word; the job runs on
    await manager.cleanup()
    assert await asyncio.to_thread(cli_main, ["ps"]) == 0
    err = capsys.readouterr().err
    assert (
        f"Slurm job {job_id} (RUNNING" in err and f"from_state_file('{job_id}')" in err and f"scancel {job_id}" in err
    )
    orphan = await SlurmKernelManager.from_state_file(job_id)
    assert "still here" in await _run(orphan.connection_info, "print('still here')")
    await orphan.shutdown()
    await slurm.wait_gone(job_id, 60)


# -- through a login host ----------------------------------------------------------------------


def _login_config(tmp_path, slurm: SlurmCluster, sshd, **cluster: str) -> str:
    login = {
        "host": sshd.address,
        "port": sshd.port,
        "user": "root",
        "keys": [str(sshd.client_key)],
        "known_hosts": str(sshd.known_hosts),
    }
    settings = {
        "environment": f"{{ SLURM_CONF = {json.dumps(str(slurm.conf))}, PATH = {json.dumps(os.environ['PATH'])} }}"
    }
    settings.update({key: json.dumps(value) for key, value in cluster.items()})
    return (
        "[providers.slurm]\n"
        + "".join(f"{key} = {value}\n" for key, value in settings.items())
        + "[providers.slurm.login]\n"
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in login.items())
        + _table(py={})
    )


#: iproute2's ss, found before a test empties PATH (scripts/test installs iproute2).
_SS = shutil.which("ss") or "ss"


def _cli_output(*argv: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "kernel_nanny", *argv], capture_output=True, text=True, check=True
    ).stdout


def _sshd_forwards(sshd: Any) -> list[str]:
    """The ports sshd's processes listen on at its address besides its own: the remote forwards of its clients."""
    listening = subprocess.run([_SS, "-Htlnp"], capture_output=True, text=True, check=True).stdout.splitlines()
    ours = [line for line in listening if '(("sshd' in line and line.split()[3].startswith(f"{sshd.address}:")]
    return [line for line in ours if line.split()[3] != f"{sshd.address}:{sshd.port}"]


def _non_loopback_address() -> str:
    probe = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout.split()
    return next(address for address in probe if "." in address and not address.startswith("127."))


async def test_a_login_host_that_cannot_listen_for_the_callback_is_named_before_submitting(
    slurm: SlurmCluster, sshd, tmp_path
):
    """The test sshd has no 'GatewayPorts clientspecified': asked to listen on another address, OpenSSH
    quietly listens on loopback; the launch says so instead of submitting a job that cannot call back."""
    provider = SlurmProvider()
    config = _login_config(tmp_path, slurm, sshd, callback_address=_non_loopback_address())
    provider.load_config(tomllib.loads(config)["providers"]["slurm"])
    with pytest.raises(LaunchError, match="GatewayPorts clientspecified"):
        await provider.launch("py")
    assert slurm.jobs() == []


async def test_through_a_login_host_commands_forwards_and_reattach_go_over_ssh(
    slurm: SlurmCluster, sshd, tmp_path, monkeypatch
):
    """The Slurm commands run on the login host (sshd here; no Slurm command is on this side's PATH), the
    job calls back through a port the login host listens on, and the node's ports come through SSH forwards."""
    config = tmp_path / "config.toml"
    config.write_text(_login_config(tmp_path, slurm, sshd))
    monkeypatch.setenv("KERNEL_NANNY_CONFIG", str(config))
    provider = SlurmProvider()
    provider.load_config(tomllib.loads(config.read_text())["providers"]["slurm"])
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    monkeypatch.delenv("SLURM_CONF")
    info, manager = await provider.launch("py")
    assert isinstance(manager, SlurmKernelManager)
    try:
        assert info["ip"] == "127.0.0.1" and info["shell_port"] != manager.state.nanny_info["shell_port"]  # forwards
        assert manager.state.login is not None and manager.state.login["port"] == sshd.port
        assert _sshd_forwards(sshd) == []  # the login host listened for the callback only until it was in
        job_id = manager.state.job_id
        assert (await _run(info, "import os; print(os.environ['SLURM_JOB_ID'])")).strip() == job_id
        assert (await interrupted(info, manager)).error["ename"] == "KeyboardInterrupt"
        await manager.restart()
        assert "again" in await _run(info, "print('again')")
        result = await reattach_elsewhere(
            "kernel_nanny.providers.slurm:SlurmKernelManager", manager.to_json(), "alive", "execute:print('there')"
        )
        assert result == {"results": [True, "there\n"]}
    finally:
        await manager.shutdown()
    await slurm.wait_gone(job_id, 60)


async def test_an_unreachable_controller_is_not_a_dead_kernel(configure, slurm: SlurmCluster, capsys):
    """Interrupts, restarts and code go to the in-job nanny, not to slurmctld: with the controller down
    the kernel works on, and ps says it cannot check the queue instead of declaring anything dead."""
    finder = configure(py={})
    async with start_kernel(_request(), finder=finder) as (info, manager):
        job_id = (await manager.info())["placement"]["slurm_job"]
        slurm.stop_controller()
        try:
            assert await manager.is_alive()
            assert (await interrupted(info, manager)).error["ename"] == "KeyboardInterrupt"
            await manager.restart()
            assert "up" in await _run(info, "print('up')")
            assert await asyncio.to_thread(cli_main, ["ps"]) == 0
            out, err = capsys.readouterr()
            assert "running" in next(line for line in out.splitlines() if "slurm/py" in line)
            assert "could not check for Slurm jobs left behind" in err
        finally:
            slurm.start_controller()
        assert (await manager.info())["state"] == "running"
    await slurm.wait_gone(job_id, 60)


async def test_the_job_binds_the_address_its_launcher_reaches_it_by(slurm: SlurmCluster):
    """With the launcher on a network address, the job's nanny and kernel bind the node's address on its
    route there (not its hostname's, which may be loopback), CurveZMQ-encrypted, and clients connect to it."""
    address = _non_loopback_address()
    provider = SlurmProvider()
    provider.load_config({"callback_address": address, "kernels": {"py": {"kernel": KERNEL}}})
    info, manager = await provider.launch("py")
    assert isinstance(manager, SlurmKernelManager)
    try:
        assert info["ip"] == address and manager.state.nanny_info["ip"] == address
        assert info["curve_publickey"] and manager.state.nanny_info["curve_publickey"]
        assert "reached" in await _run(info, "print('reached')")
    finally:
        await manager.shutdown()
    await slurm.wait_gone(manager.state.job_id, 60)
