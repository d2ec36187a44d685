"""The one way a kernel is started: :func:`start_kernel` with a :class:`~kernel_nanny.LaunchRequest`.

The CLI, the daemon, the jupyter_client provisioner, the compat managers,
:class:`~kernel_nanny.KernelExecution` and Python callers all build a request
and call this. It resolves the request to what runs the kernel (a command or
a provider, :meth:`KernelFinder.resolve() <kernel_nanny.KernelFinder.resolve>`),
then either starts it here (unsupervised: the kernel is this process's) or
hands it to a new nanny process (supervised: the kernel outlives us), through
the contract in :mod:`kernel_nanny.nanny.startup`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Coroutine, Generator
from dataclasses import replace
from typing import Any

from ._exceptions import KernelNannyError, KernelTypeNotAllowed, LaunchError, NoSuchKernelType
from .client.daemon import DaemonClient
from .client.manager import ManagerClient
from .client.running import list_running_kernels
from .config import JournalLimits, RestartPolicy
from .discovery import KernelFinder
from .discovery.resolved import ResolvedKernel
from .launch.params import LaunchParams
from .launch.progress import is_listening, report
from .launch.request import LaunchRequest
from .nanny.startup import Handover, spawn_nanny
from .paths import nanny_state_dir
from .protocol import LaunchResult, load_connection_info, new_id

__all__ = ["KernelLaunch", "daemon_can_serve", "start_kernel"]

log = logging.getLogger("kernel_nanny.launch")


def start_kernel(
    request: LaunchRequest, *, finder: KernelFinder | None = None, use_daemon: bool = False
) -> KernelLaunch:
    """Start the kernel ``request`` describes; ready when the result is awaited.

    ``finder`` resolves kernel types (default: every installed provider;
    a request with an explicit command needs none). With ``use_daemon``, the
    request goes to this user's daemon when one runs, whose pool may have the
    kernel ready (:func:`daemon_can_serve` says which requests can go): the
    kernel then runs behind a nanny with the daemon's environment plus the
    request's ``env``, as any kernel the daemon starts; an unsupervised request's
    kernel is owned by this process, so it still ends with it. A type the
    daemon does not offer is started here. The result is awaitable
    (``connection_info, manager = await start_kernel(request)``) and an async
    context manager that shuts the kernel down when the block ends, even when it
    raises::

        async with start_kernel(LaunchRequest(kernel_type="spec/python3")) as (info, manager):
            ...
    """
    return KernelLaunch(_launch(request, finder, use_daemon))


class KernelLaunch:
    """A kernel being started: await it for ``(connection_info, manager)``, or use it with ``async with``."""

    def __init__(self, launching: Coroutine[Any, Any, LaunchResult]) -> None:
        self._launching: Coroutine[Any, Any, LaunchResult] | None = launching
        self._result: LaunchResult | None = None

    def __repr__(self) -> str:
        state = "started" if self._result is not None else "pending" if self._launching else "used"
        return f"<KernelLaunch {state}>"

    def __del__(self) -> None:
        if self._launching is not None:
            self._launching.close()  # never awaited: no "coroutine was never awaited" warning

    def _take(self) -> Coroutine[Any, Any, LaunchResult]:
        if self._launching is None:
            raise RuntimeError("this kernel launch was already awaited: call start_kernel() again for another kernel")
        launching, self._launching = self._launching, None
        return launching

    def __await__(self) -> Generator[Any, None, LaunchResult]:
        return self._take().__await__()

    async def __aenter__(self) -> LaunchResult:
        self._result = await self._take()
        return self._result

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._result is not None
        manager = self._result.manager
        if manager is not None:
            try:
                await manager.shutdown()
            finally:
                await manager.cleanup()


async def _launch(request: LaunchRequest, finder: KernelFinder | None, use_daemon: bool) -> LaunchResult:
    _check_connection_file(request)
    if use_daemon and daemon_can_serve(request):
        daemon = DaemonClient.running()
        if daemon is not None:
            async with daemon:
                try:
                    return await _through_daemon(daemon, request)
                except (NoSuchKernelType, KernelTypeNotAllowed) as exc:
                    log.debug("starting %s here: the daemon cannot (%s)", request.kernel_type, exc)
    if finder is None:
        finder = KernelFinder(()) if request.command is not None else KernelFinder.from_entrypoints()
    return await launch_resolved(request, finder.resolve(request), finder)


async def launch_resolved(request: LaunchRequest, resolved: ResolvedKernel, finder: KernelFinder) -> LaunchResult:
    """Start ``request`` as ``finder`` resolved it: behind a nanny if supervised (unless the provider's kernels run
    behind nannies already), else here. For callers that resolved it already (the daemon, its pools)."""
    _check_connection_file(request)
    with finder.explain_unknown_type(request.kernel_type):
        if request.supervised and not resolved.supervised_elsewhere:
            return await _start_nanny(request, resolved)
        return await resolved.launch(request)


def _check_connection_file(request: LaunchRequest) -> None:
    if request.supervised and request.params.connection_file is not None:
        raise LaunchError(
            "launch parameter 'connection_file' applies to unsupervised launches: a nanny publishes its kernel's "
            "connection file as kernel-<id>.json in the runtime directory (where 'kernel-nanny ps' finds it)"
        )


#: Launch parameters about this process's side of a launch, which the daemon's does not have.
_LOCAL_ONLY = ("connection_file", "echo_output")


def daemon_can_serve(request: LaunchRequest) -> bool:
    """Whether the daemon can launch ``request`` as asked: a kernel of a type (with an explicit command only if
    it is the type's own, which the daemon checks), without its own heartbeat or connection file, and whose
    process output nobody here reads (an unsupervised kernel echoing it)."""
    return (
        request.heartbeat_interval is None
        and request.params.connection_file is None
        and (request.supervised or not request.params.echo_output)
    )


async def _through_daemon(daemon: DaemonClient, request: LaunchRequest) -> LaunchResult:
    """The daemon's launch of ``request``. What the request leaves at the library's defaults is the daemon's
    to choose (its configuration's transport, restart policy, journal), as for any of its clients."""
    defaults = LaunchParams().to_dict()
    params = {k: v for k, v in request.params.to_dict().items() if v != defaults[k] and k not in _LOCAL_ONLY}
    if not request.supervised:  # the kernel would have been ours: it is still, through its owner
        request = replace(request, supervised=True, owner=os.getpid())  # its start time filled in by the request
    return await daemon.launch(
        request.kernel_type,
        cwd=request.cwd or os.getcwd(),  # the daemon's directory is not what a caller here means
        launch_params=params,
        name=request.name,
        restart_policy=None if request.restart_policy == RestartPolicy() else request.restart_policy,
        journal=None if request.journal == JournalLimits() else request.journal,
        owner=request.owner,
        owner_start_time=request.owner_start_time,
        argv=None if request.command is None else request.command.argv,
        switches=request.switches,
        on_event=report if is_listening() else None,  # a queued job's state, to whoever listens here
    )


async def _start_nanny(request: LaunchRequest, resolved: ResolvedKernel) -> LaunchResult:
    """Hand the kernel to a new nanny process; ``(connection_info, ManagerClient)`` once it is ready."""
    if request.name is not None:
        taken = [k.kernel_id for k in list_running_kernels() if k.name == request.name]
        if taken:
            raise LaunchError(f"the name {request.name!r} is taken by kernel {taken[0][:12]}")
    kernel_id = new_id()
    nanny_log = nanny_state_dir(kernel_id) / "nanny.log"
    limit = request.params.startup_timeout + resolved.report_margin
    try:
        connection_file, _ = await spawn_nanny(
            Handover(kernel_id, request, resolved), nanny_log=nanny_log, timeout=limit
        )
    except KernelNannyError:
        # The nanny failed and exits (its kernel with it): its directory must not outlive it. The error carries
        # what its log said.
        shutil.rmtree(nanny_log.parent, ignore_errors=True)
        raise
    info = load_connection_info(connection_file)
    return LaunchResult(info, ManagerClient(info))
