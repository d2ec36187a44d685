"""Kernels in Slurm jobs: ``slurm/<name>``, one job per kernel, with a nanny inside the job.

Launching submits a batch job (:func:`~kernel_nanny.providers.slurm_job.batch_script`)
whose last line runs a kernel-nanny nanny on the node it is given. That nanny
and its kernel bind ports the node picks, CurveZMQ required, and report their
connection info back through a one-shot, signed, encrypted callback
(:mod:`kernel_nanny.launch.callback`): no port is guessed here and no shared
file system is assumed. While the job waits in the queue, ``kernel_pending``
progress says why (Slurm's reason) and when Slurm expects it to start.

:class:`SlurmKernelManager` then drives the in-job nanny: interrupts,
signals, restarts *in place* (same job, no queue wait), kills, events. When
the job ends, its end state is the kernel's death reason (``time_limit``,
``preempted``, ``node_fail``, ``oom``, ``cancelled``, or ``exited`` with its
code), read from ``squeue``/``scontrol`` while Slurm keeps the record, else
from ``sacct``. Every way out (a failed or cancelled launch, a timeout, a
shutdown) ends in ``scancel`` and a bounded wait until the job has left the
queue. The state is JSON (:meth:`SlurmKernelManager.to_json`), kept 0600 in the
runtime directory while the job runs, so any process can re-attach.

``kernel-nanny list`` never contacts Slurm: kernel types come from the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from .._backoff import backoff_delays
from .._exceptions import (
    ClientClosed,
    KernelNannyError,
    LaunchError,
    NannyUnavailable,
    NoSuchKernel,
    NoSuchKernelType,
)
from .._logging import KernelLogAdapter
from ..defaults import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    JOB_END_GRACE,
    SLURM_CANCEL_WAIT,
    SLURM_QUEUE_FIRST_INTERVAL,
    SLURM_QUEUE_MAX_INTERVAL,
    SLURM_REPORT_MARGIN,
    SLURM_UNREACHABLE_RETRY_MAX,
)
from ..discovery import KernelProvider
from ..launch.callback import CallbackListener
from ..launch.connection import write_connection_file
from ..launch.job import node_address
from ..launch.output import OutputListener
from ..launch.params import LaunchParams
from ..launch.progress import report_pending
from ..protocol import ExitStatus, LaunchResult
from ..protocol.manager_state import wrong_field
from .remote_nanny import RemoteNanny, forward_ports
from .slurm_commands import JobStatus, Runner, SlurmCommands, SlurmError, SlurmUnreachable, local_runner
from .slurm_config import SlurmCluster, SlurmKernel, parse_slurm
from .slurm_job import JOB_NAME_PREFIX, SlurmKernelState, batch_script, state_file
from .ssh_config import SSHHost
from .ssh_tunnel import SSHTunnel

__all__ = ["SlurmKernelManager", "SlurmProvider", "cancel_job"]

log = logging.getLogger("kernel_nanny.providers.slurm")

#: Pending reasons that no wait cures: the request itself exceeds what the partition or account allows.
_NEVER_STARTS = {
    "BadConstraints",
    "PartitionConfig",
    "PartitionNodeLimit",
    "PartitionTimeLimit",
    "InvalidAccount",
    "InvalidQOS",
    "AccountNotAllowed",
    "QOSNotAllowed",
}
#: The job's environment the in-job side reports: what Slurm granted.
_GRANTED = {
    "SLURM_CPUS_ON_NODE": "cpus",
    "SLURM_MEM_PER_NODE": "memory_mb",
    "SLURM_JOB_GPUS": "gpus",
    "SLURM_JOB_PARTITION": "partition",
}


class SlurmProvider(KernelProvider):
    """Offers the kernel types of ``[providers.slurm.kernels.<name>]``, each run in a Slurm job."""

    id = "slurm"
    report_margin = SLURM_REPORT_MARGIN

    def __init__(self) -> None:
        self.cluster = SlurmCluster()

    def load_config(self, config: Mapping[str, Any]) -> None:
        self.cluster = parse_slurm(config)

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        # From the settings alone: listing never waits on slurmctld.
        for kernel in self.cluster.kernels.values():
            where = f"partition {kernel.partition}" if kernel.partition else "the default partition"
            yield (
                kernel.name,
                {
                    "display_name": kernel.display_name or f"{kernel.kernel} in a Slurm job ({where})",
                    "language": kernel.language,
                    "kernel": kernel.kernel,
                },
            )

    async def connect(self) -> tuple[SlurmCommands, SSHTunnel | None]:
        """The Slurm commands, run where the settings say: here, or on the login host (with its SSH connection)."""
        return await _connect(self.cluster.login, self.cluster.environment)

    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: LaunchParams | Mapping[str, Any] | None = None
    ) -> LaunchResult:
        kernel = self.cluster.kernels.get(name)
        if kernel is None:
            raise NoSuchKernelType(f"slurm/{name}")
        params = (
            launch_params if isinstance(launch_params, LaunchParams) else LaunchParams.from_mapping(launch_params or {})
        )
        commands, tunnel = await self.connect()
        try:
            manager = await SlurmKernelManager.submit(kernel, self.cluster, commands, tunnel, cwd=cwd, params=params)
        except BaseException:
            await _close(tunnel)
            raise
        if params.connection_file is not None:
            try:
                write_connection_file(manager.connection_info, manager.state.job_id, Path(params.connection_file))
            except BaseException:
                await manager.shutdown(now=True)  # a kernel nobody can connect to must not hold an allocation
                raise
        return LaunchResult(manager.connection_info, manager)

    async def remove_strays(self) -> None:
        """Report jobs of ours that no kernel-nanny state describes (they are not cancelled: they may be someone's)."""
        if not self.cluster.kernels:
            return
        for job in await stray_jobs(self, owned=None):
            log.warning(
                "Slurm job %s (%s on %s) was started by kernel-nanny but no kernel state describes it: "
                "'scancel %s' ends it",
                job.job_id,
                job.state,
                job.node or "no node yet",
                job.job_id,
            )


async def stray_jobs(provider: SlurmProvider, owned: Collection[str] | None) -> list[JobStatus]:
    """This user's kernel-nanny jobs that no kernel here owns: those not in ``owned`` (the jobs of the
    running nannies), or with ``owned=None``, those without a state file."""
    commands, tunnel = await provider.connect()
    try:
        jobs = await commands.our_jobs(JOB_NAME_PREFIX)
    finally:
        await _close(tunnel)
    if owned is not None:
        return [job for job in jobs if job.job_id not in owned]
    return [job for job in jobs if not state_file(job.job_id).exists()]


async def _connect(login: SSHHost | None, environment: Mapping[str, str]) -> tuple[SlurmCommands, SSHTunnel | None]:
    if login is None:
        return SlurmCommands(local_runner(environment)), None
    tunnel = await SSHTunnel.open(login)
    where = f"login host {login.name} ({login.address})"
    fix = "install the Slurm client commands there, or add their directory to PATH in [providers.slurm] environment"
    return SlurmCommands(ssh_runner(tunnel, environment), where=where, fix=fix), tunnel


async def _close(tunnel: SSHTunnel | None) -> None:
    if tunnel is not None:
        tunnel.close()
        await tunnel.wait_closed()


def ssh_runner(tunnel: SSHTunnel, environment: Mapping[str, str]) -> Runner:
    """Run the Slurm commands on the tunnel's host (a login host), with ``environment`` set."""
    prefix = ["env", *(f"{name}={value}" for name, value in environment.items())] if environment else []

    async def run(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        return await tunnel.execute(shlex.join([*prefix, *argv]), stdin=stdin)

    return run


class SlurmKernelManager:
    """The kernel-manager interface for a kernel in a Slurm job, through the nanny inside the job."""

    def __init__(
        self,
        state: SlurmKernelState,
        commands: SlurmCommands,
        tunnel: SSHTunnel | None = None,
        local_ports: Mapping[str, int] | None = None,
    ) -> None:
        self.state = state
        self._commands = commands
        #: Through a login host: the SSH connection whose forwards reach the node's ports.
        self._tunnel = tunnel
        self._log = KernelLogAdapter(log, f"slurm-{state.job_id}")
        nanny_info = {**state.nanny_info, "ip": "127.0.0.1", **local_ports} if local_ports else state.nanny_info
        self._remote = RemoteNanny(nanny_info)
        self._nanny = self._remote.client
        self.connection_info = self._remote.connection_info
        self.connection_info["kernel_name"] = state.kernel_type
        #: The job's end as the kernel's death, once Slurm says it ended.
        self._ended: ExitStatus | None = None
        #: We asked for the kernel to stop (kill, shutdown): its death is ours, not the job's end.
        self._stopping = False
        self.job_state = "RUNNING"

    def __repr__(self) -> str:
        return f"<SlurmKernelManager job={self.state.job_id} node={self.state.node} state={self.job_state}>"

    # -- launching ----------------------------------------------------------------

    @classmethod
    async def submit(
        cls,
        kernel: SlurmKernel,
        cluster: SlurmCluster,
        commands: SlurmCommands,
        tunnel: SSHTunnel | None = None,
        *,
        cwd: str | None,
        params: LaunchParams,
    ) -> SlurmKernelManager:
        """Submit ``kernel``'s job; the manager once the in-job nanny reported (the job cancelled on any failure).

        Through a login host (``tunnel``), the callback reaches this machine
        through a port the login host listens on, and the node's ports are
        forwarded here through the same SSH connection.
        """
        listen = "127.0.0.1" if tunnel is not None else cluster.callback_address or node_address()
        async with CallbackListener(listen) as listener, contextlib.AsyncExitStack() as forwards:
            callback = listener.address
            if tunnel is not None:  # the login host listens for the callback until it is in
                login_address = cluster.callback_address or tunnel.host.host
                port = await forwards.enter_async_context(tunnel.forward_back(listener.port, login_address))
                await _check_reachable(commands, login_address, port)
                callback = listener.reached_at(login_address, port)
            script = batch_script(
                kernel,
                callback,
                cwd=cwd,
                startup_timeout=params.startup_timeout,
                bind_address=cluster.bind_address,
            )
            submitted = time.time()
            job_id = await commands.submit(script)
            log.info("slurm/%s: submitted job %s", kernel.name, job_id)
            try:
                report, job = await _until_reported(listener, commands, job_id, kernel, params.startup_timeout)
            except BaseException as exc:
                await cancel_job(commands, job_id)
                if isinstance(exc, KernelNannyError) and not isinstance(exc, LaunchError):
                    # The job's own error (its kernel type unknown on the node...): named as the job's.
                    raise LaunchError(
                        f"Slurm job {job_id} for slurm/{kernel.name} could not start {kernel.kernel}: {exc}"
                    ) from None
                raise
        try:  # the job runs: whatever fails from here on (the forwards, a full disk) must not leave it running
            environment = report.get("environment") or {}
            left = job.time_left if job is not None else None
            state = SlurmKernelState(
                job_id=job_id,
                kernel_type=f"slurm/{kernel.name}",
                inner_type=kernel.kernel,
                nanny_info=dict(report["nanny"]),
                cluster=str(environment.get("SLURM_CLUSTER_NAME", "")),
                node=str(report.get("node", "")),
                requested=_requested(kernel),
                granted={name: environment[var] for var, name in _GRANTED.items() if environment.get(var)},
                submit_time=job.submit_time if job else None,
                start_time=job.start_time if job else None,
                deadline=time.time() + left if left is not None else None,
                login=tunnel.host.to_dict() if tunnel is not None else None,
                environment=dict(cluster.environment),
            )
            manager = cls(state, commands, tunnel, await _forward(tunnel, state.nanny_info))
            state.save()
        except BaseException:
            await cancel_job(commands, job_id)
            raise
        manager._log.info(
            "%s running on %s (%.1f s after submission)", kernel.kernel, state.node, time.time() - submitted
        )
        return manager

    # -- re-attaching -----------------------------------------------------------------

    def to_json(self) -> str:
        """Everything a new process needs to take this kernel over (see :meth:`from_json`); it holds the key."""
        return self.state.to_json()

    @classmethod
    async def from_json(cls, text: str | bytes) -> SlurmKernelManager:
        """Take over the Slurm kernel :meth:`to_json` describes, with full control.

        Raises :exc:`~kernel_nanny.NoSuchKernel` when the JSON is not a Slurm
        kernel's state, or when its job has ended.
        """
        state = SlurmKernelState.from_json(text)
        try:
            login = SSHHost.from_dict(state.login) if state.login is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise wrong_field("slurm", exc) from None
        commands, tunnel = await _connect(login, state.environment)
        try:
            manager = cls(state, commands, tunnel, await _forward(tunnel, state.nanny_info))
        except BaseException:
            await _close(tunnel)
            raise
        try:
            await manager._nanny.info()
        except NannyUnavailable:
            ended = await manager._job_end(expect_end=False)
            await manager.cleanup()
            if ended is not None:
                state.forget()
                raise NoSuchKernel(f"the kernel in Slurm job {state.job_id} is gone: it {ended}") from None
            raise
        return manager

    @classmethod
    async def from_state_file(cls, job_id: str) -> SlurmKernelManager:
        """Re-attach to the kernel in job ``job_id`` from its state file in the runtime directory."""
        path = state_file(job_id)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            raise NoSuchKernel(f"no state for Slurm job {job_id} at {path}: the job was not started here") from None
        return await cls.from_json(text)

    # -- what the in-job nanny says ------------------------------------------------------

    def placement(self) -> dict[str, Any]:
        """Where the kernel runs, for ``info`` and ``ps``: job id, node, job state, walltime left (seconds)."""
        return {
            "slurm_job": self.state.job_id,
            "cluster": self.state.cluster,
            "node": self.state.node,
            "job_state": self.job_state,
            "time_left": self.state.time_left if self._ended is None else None,
        }

    def add_output_listener(self, listener: OutputListener) -> None:
        """Call ``listener(name, data)`` with the kernel process's own stdout/stderr."""
        self._remote.add_output_listener(listener)

    # -- the manager interface -------------------------------------------------------------

    async def is_alive(self) -> bool:
        if self._ended is not None or self._remote.exiting:
            return False  # the job ended, or ends now with its nanny
        try:
            return bool(await self._nanny.is_alive())
        except ClientClosed:
            return False
        except NannyUnavailable:
            if await self._job_end(expect_end=False) is not None:
                return False
            raise

    async def interrupt(self) -> None:
        await self._nanny.interrupt()

    async def signal(self, signum: int) -> None:
        await self._nanny.signal(signum)

    async def kill(self) -> None:
        self._stopping = True
        await self._nanny.kill()

    async def restart(self, now: bool = False) -> None:
        """Restart the kernel inside the same job (no new job, no queue wait)."""
        if self._ended is not None:
            raise LaunchError(
                f"the kernel in Slurm job {self.state.job_id} {self._ended}: it cannot be restarted in place; "
                f"start a new one ('kernel-nanny start {self.state.kernel_type}')"
            )
        self._stopping = False
        await self._nanny.restart(now=now)

    async def shutdown(self, now: bool = False) -> None:
        """Stop the kernel and its nanny (the job ends with it), scancel the job, and confirm it left the queue."""
        self._stopping = True
        try:
            if self._ended is None:
                await self._nanny.shutdown(now=now)
                # The in-job nanny exits, and the job with it: give it a moment to end on its own (COMPLETED).
                await self._job_end(expect_end=True, within=DEFAULT_SHUTDOWN_TIMEOUT)
        except (NannyUnavailable, ClientClosed) as exc:
            self._log.warning("the in-job nanny did not answer (%s): cancelling the job", exc)
        finally:
            if self._ended is None:
                await cancel_job(self._commands, self.state.job_id)
            self.state.forget()
            await self.cleanup()

    async def cleanup(self) -> None:
        await self._remote.close()
        await _close(self._tunnel)

    async def wait(self) -> ExitStatus:
        """Wait for the kernel's death: in the job (restartable in place), or with the job (``final``)."""
        while self._ended is None:
            try:
                status: ExitStatus | None = await self._nanny.wait()
            except ClientClosed:
                return self._ended or ExitStatus(reason="lost")
            except NannyUnavailable:
                status = None  # the node, the nanny or the network: Slurm tells which
            death = self._remote.last_death
            if status is not None and status.signal is not None and not self._stopping:
                # Slurm signals every process of a job it ends (scancel, the time limit): the kernel may
                # die of it a moment before its nanny says it is exiting. Give the nanny that moment.
                await self._remote.until_exiting(JOB_END_GRACE)
            job_ending = self._remote.exiting or (death.get("requested") and not death.get("restarting"))
            if status is not None and (self._stopping or not job_ending):
                return status  # a death inside a running job: the kernel can come back in place
            ended = await self._job_end(expect_end=status is not None)
            if ended is not None:
                return ended
            if status is not None:
                return status
        return self._ended

    async def _job_end(self, *, expect_end: bool, within: float = SLURM_CANCEL_WAIT) -> ExitStatus | None:
        """The job's end as a death once Slurm says it ended; None while it runs.

        ``expect_end``: the in-job nanny is exiting, so the job ends within
        moments: wait for Slurm to say so (up to ``within`` seconds). An
        unreachable slurmctld is waited out with back-off, never taken for an end.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        intervals = _queue_intervals()
        unreachable_since: float | None = None
        while True:
            try:
                job = await self._commands.status(self.state.job_id)
                unreachable_since = None
            except SlurmUnreachable as exc:
                unreachable_since = unreachable_since or loop.time()
                self.job_state = "UNKNOWN"
                if loop.time() - unreachable_since > SLURM_UNREACHABLE_RETRY_MAX:
                    self._log.warning(
                        "slurmctld unreachable for %g s (%s): keeping the kernel", SLURM_UNREACHABLE_RETRY_MAX, exc
                    )
                    return None
                job = JobStatus(self.state.job_id, "UNKNOWN")
            if job is None or job.phase == "ended":
                end = await self._commands.end_status(self.state.job_id) or job
                self._ended = _death(end)
                self.job_state = end.state if end is not None else "ENDED"
                self._log.info("job ended: %s", self._ended)
                self.state.forget()
                return self._ended
            if job.state != "UNKNOWN":
                self.job_state = job.state
                if not expect_end or loop.time() > deadline:
                    return None
            await asyncio.sleep(next(intervals))


def _queue_intervals() -> Iterator[float]:
    """Seconds between queue checks: Slurm has no event to wait on, so a query backed off from
    ``SLURM_QUEUE_FIRST_INTERVAL`` to ``SLURM_QUEUE_MAX_INTERVAL`` (one place for every wait on the queue)."""
    return backoff_delays(SLURM_QUEUE_FIRST_INTERVAL, SLURM_QUEUE_MAX_INTERVAL)


async def _check_reachable(commands: SlurmCommands, address: str, port: int) -> None:
    """That the login host listens on ``address:port`` for the job's callback: sshd without ``GatewayPorts
    clientspecified`` quietly listens on loopback instead, and the job would call back into the void."""
    probe = f"exec 3<>/dev/tcp/{address}/{port}"
    status, _, _ = await commands.run_raw(["timeout", "5", "bash", "-c", probe])
    if status != 0:
        raise LaunchError(
            f"the login host's sshd does not listen on {address}:{port} for the job's callback: set "
            "'GatewayPorts clientspecified' in its sshd_config, or set [providers.slurm] callback_address to an "
            "address of the login host its sshd listens on (loopback only if the nodes are the login host)"
        )


async def _forward(tunnel: SSHTunnel | None, nanny_info: Mapping[str, Any]) -> dict[str, int] | None:
    """Through a login host: a local port forwarded to each of the node's ports (kernel and nanny); else None."""
    return None if tunnel is None else await forward_ports(tunnel, nanny_info, str(nanny_info["ip"]))


def _death(job: JobStatus | None) -> ExitStatus:
    """An ended job as the kernel's death (``final``: there is no job left to restart it in)."""
    if job is None:
        return ExitStatus(reason="lost", final=True)
    return ExitStatus(exit_code=job.exit_code, signal=job.signal, reason=job.end_reason, final=True)


def _requested(kernel: SlurmKernel) -> dict[str, Any]:
    settings = ("partition", "time", "cpus", "memory", "gres", "account", "qos")
    return {name: getattr(kernel, name) for name in settings if getattr(kernel, name) is not None}


async def _until_reported(
    listener: CallbackListener, commands: SlurmCommands, job_id: str, kernel: SlurmKernel, startup_timeout: float
) -> tuple[dict[str, Any], JobStatus | None]:
    """Wait for the job's report, following the queue meanwhile; the report and the job's last status.

    Pending states are reported (:func:`~kernel_nanny.launch.progress.report_pending`)
    as they change. The queue wait and the start together get ``startup_timeout``
    seconds; a running job gets :data:`~kernel_nanny.defaults.SLURM_REPORT_MARGIN` more to report.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + startup_timeout
    report = asyncio.ensure_future(listener.receive())
    intervals = _queue_intervals()
    job: JobStatus | None = None
    shown: tuple[str, str, str | None] | None = None
    running_since: float | None = None
    try:
        while not report.done():
            try:
                job = await commands.status(job_id)
            except SlurmUnreachable as exc:
                log.warning("Slurm job %s: %s (retrying)", job_id, exc)
                job = JobStatus(job_id, "UNKNOWN", reason="slurmctld unreachable")
            if job is None or job.phase == "ended":
                if report.done():
                    break
                raise await _failed_before_report(commands, job_id, kernel)
            if job.phase == "pending" and job.reason in _NEVER_STARTS:
                raise LaunchError(
                    f"Slurm job {job_id} for slurm/{kernel.name} cannot start as asked: {job.describe()}; cancelled "
                    f"it. Slurm says the request exceeds what the partition or the account allows: check the "
                    f"settings of [providers.slurm.kernels.{kernel.name}] against 'scontrol show partition'"
                )
            if job.phase == "running" and job.state != "UNKNOWN" and running_since is None:
                running_since = loop.time()
                deadline = max(deadline, running_since + SLURM_REPORT_MARGIN)
            if (job.state, job.reason, job.start_time) != shown:
                shown = (job.state, job.reason, job.start_time)
                report_pending(
                    {
                        "slurm_job": job_id,
                        "state": job.state,
                        "reason": job.reason,
                        "expected_start": job.start_time,
                        "node": job.node,
                        "message": f"Slurm job {job_id} {job.describe()}",
                    }
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                where = (
                    f"{job.state} ({job.reason})" if job.phase == "pending" else "running, but its nanny did not report"
                )
                raise LaunchError(
                    f"Slurm job {job_id} for slurm/{kernel.name} is still {where} after {startup_timeout:g} s: "
                    "cancelled it. To wait longer in the queue, raise the start-up timeout "
                    "(kernel-nanny start --startup-timeout SECONDS; launch parameter startup_timeout)"
                )
            await asyncio.wait({report}, timeout=min(next(intervals), remaining))
        return report.result(), job
    finally:
        if not report.done():
            report.cancel()
            await asyncio.gather(report, return_exceptions=True)


async def _failed_before_report(commands: SlurmCommands, job_id: str, kernel: SlurmKernel) -> LaunchError:
    """The error for a job that ended before its nanny reported: Slurm's end state, and the end of its output
    where the Slurm commands run can read it (a file system shared with the node)."""
    end = await commands.end_status(job_id)
    how = "ended" if end is None else f"ended {end.state}" + (f" (exit code {end.exit_code})" if end.exit_code else "")
    text = f"Slurm job {job_id} for slurm/{kernel.name} {how} before its nanny reported"
    output = end.output if end is not None and end.output else kernel.output.replace("%j", job_id)
    tail = await commands.tail(output)
    if tail is None:
        return LaunchError(f"{text}; its output is in {output} on node {end.node if end and end.node else '?'}")
    return LaunchError(f"{text}; the end of its output ({output}):\n" + "\n".join(f"    {line}" for line in tail))


async def cancel_job(commands: SlurmCommands, job_id: str) -> None:
    """scancel ``job_id`` and wait (bounded) until it has left the queue; never raises for a job that is gone."""
    try:
        await commands.cancel(job_id)
    except SlurmError as exc:
        log.warning("Slurm job %s: scancel failed (%s): run 'scancel %s' once Slurm answers", job_id, exc, job_id)
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLURM_CANCEL_WAIT
    intervals = _queue_intervals()
    while True:
        try:
            job = await commands.status(job_id)
        except SlurmError as exc:
            log.warning("Slurm job %s: cancelled, but its end cannot be confirmed: %s", job_id, exc)
            return
        if job is None or job.phase == "ended":
            return
        if loop.time() > deadline:
            log.warning("Slurm job %s is still %s %g s after scancel", job_id, job.state, SLURM_CANCEL_WAIT)
            return
        await asyncio.sleep(next(intervals))
