"""``kernel-nanny``: a jupyter_client kernel provisioner that runs each kernel behind a nanny.

jupyter_server, JupyterLab, nbclient and papermill start kernels through a
jupyter_client ``KernelManager``, which hands the process work to a
*provisioner*. :class:`NannyProvisioner` starts a nanny
(``python -m kernel_nanny.nanny``) that runs exactly the command
jupyter_client resolved (the kernelspec's argv template and extra arguments,
the environment the manager passed, its working directory, the spec's
``interrupt_mode``), and then answers jupyter_client's questions from the
nanny: ``poll``/``wait`` from its events, ``send_signal`` (SIGINT: an interrupt),
``kill``, ``terminate`` and shutdown as nanny requests.

Choices, and why:

* **A Jupyter-side restart is a restart in place: same nanny, same ports.**
  ``KernelManager.restart_kernel`` sends the kernel a
  ``shutdown_request(restart=True)`` itself, then waits for ``poll()`` to
  report the old process gone, calls ``cleanup(restart=True)`` and
  ``launch_kernel`` again. The nanny sees that request on the kernel's iopub
  and relaunches the kernel on the same connection info as soon as it exits,
  so ``cleanup(restart=True)`` keeps the nanny and ``launch_kernel`` only
  waits for the nanny's ``kernel_restarted`` (or asks the nanny to restart the
  kernel when it will not do so itself: after a kill, a failed restart, a
  ``restart_kernel(now=True)``). Clients keep their connection file, the nanny
  keeps its output log and restart count. If the launch recipe changed in
  between (``KernelManager.update_env`` and the like), the old nanny is
  stopped and a new one started, because a nanny's recipe is fixed.
* **A crash is a death for jupyter_client, and the nanny's restart serves its
  recovery.** The nanny restarts a crashed kernel at once, in place. Yet
  ``poll()`` reports the crashed kernel dead: the request it was running will
  never be answered, and Jupyter clients learn that only from a death
  (nbclient raises ``DeadKernelError`` instead of waiting for ever;
  jupyter_server's restarter restarts the kernel and tells the browser). The
  restart jupyter_client then asks for goes through the nanny, in place, so
  the two never run two kernels: the nanny's supervision covers the time until
  jupyter_client reacts, and its restart policy covers kernels that nobody
  restarts (a survivor of a crashed jupyter_server).
* **Shutdown stops the nanny.** ``cleanup(restart=False)`` returns once the
  nanny process has exited, with its connection file and state directory
  removed.
* **Plain tcp by default, like jupyter_client.** The kernel listens on the
  manager's ``ip`` (loopback); the manager's ``transport_encryption``
  (``disabled``, ``auto``, ``required``) is the nanny's CurveZMQ policy.
  The ``ipc`` transport is refused: jupyter_client removes a kernel's ipc
  socket files on every restart, which would take them from under a kernel
  the nanny has already restarted.

* **Any event loop may call it: the nanny connection lives on one thread.**
  jupyter_client's synchronous managers run each call on whichever loop is
  at hand (the thread's own, or a runner thread's when one is running
  already: ``jupyter kernel``'s signal handler, a ``MultiKernelManager``
  calling its ``KernelManager``), while a :class:`ManagerClient`'s reader
  tasks and futures, :class:`NannyWatch`'s pidfd reader and its events
  belong to the loop that made them. So every method that touches them runs
  on kernel-nanny's shared loop thread (:func:`kernel_nanny._loop.shared_loop`,
  one per process, as the blocking clients do), and the caller's loop only
  awaits the result. One thread for all kernels rather than a connection per
  loop: the watch follows the nanny's events as they come, whether or not
  the caller's loop is running.

The environment is passed as the changes against this process's environment
(which the nanny inherits), so a variable the manager *removed* (jupyter_client
drops ``PYTHONEXECUTABLE`` for Python kernels) is still set for the kernel.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, Unicode

from .._exceptions import ConfigError, KernelNotRunning, NannyUnavailable, NoSuchKernel
from .._loop import shared_loop
from ..client.manager import ManagerClient
from ..defaults import DEFAULT_STARTUP_TIMEOUT, PROVISIONER_NANNY_TIMEOUT
from ..launch.command import _PLACEHOLDER, KernelCommand
from ..launch.params import LaunchParams
from ..launch.request import LaunchRequest
from ..paths import public_connection_file
from ..protocol import CHANNELS, ExitStatus
from ..start import start_kernel
from ._watch import NannyWatch, popen_returncode

__all__ = ["NannyProvisioner", "reattach"]

log = logging.getLogger("kernel_nanny.jupyter")

#: Placeholders the nanny fills itself (it knows its kernel's connection file).
_NANNY_PLACEHOLDERS = frozenset({"connection_file", "resource_dir", "prefix"})
#: The status jupyter_client sees for a kernel that died with its nanny (the lifeline SIGKILLs it).
_DIED_WITH_NANNY = -signal.SIGKILL

P = ParamSpec("P")
T = TypeVar("T")


def _on_shared_loop(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run a provisioner method on the shared loop thread, whichever loop awaits it (see the module docstring)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await shared_loop().run_async(method(*args, **kwargs))

    return wrapper


class NannyProvisioner(KernelProvisionerBase):
    """Runs a Jupyter kernel behind a kernel-nanny nanny (provisioner name ``kernel-nanny``).

    Select it per kernelspec (``"metadata": {"kernel_provisioner":
    {"provisioner_name": "kernel-nanny"}}`` in ``kernel.json``) or for every
    kernelspec without one
    (``c.KernelProvisionerFactory.default_provisioner_name = "kernel-nanny"``).

    A kernel ends with the process that started it (papermill, nbclient,
    ``jupyter run``), as with jupyter_client's local provisioner, unless
    :attr:`persistent` is set: in the kernelspec's
    ``"kernel_provisioner": {"config": {"persistent": true}}``, or for a
    server, ``c.NannyProvisioner.persistent = True``.

    A kernelspec may run a kernel-nanny kernel type instead of its own argv:
    ``"config": {"kernel_type": "slurm/gpu"}`` gives JupyterLab a kernel in a
    Slurm job, restarted in place inside that job.
    """

    persistent = Bool(
        False,
        config=True,
        help="Keep the kernel running after the process that started it ends (a server's kernels survive "
        "its crash); by default the kernel ends with that process.",
    )

    use_daemon = Bool(
        True,
        config=True,
        help="Start kernels through this user's kernel-nanny daemon when one runs, so its pool ('[pool]' in its "
        "configuration) can serve them in milliseconds; such kernels get the daemon's environment plus the "
        "changes the server asks for. False: always start them here.",
    )

    kernel_type = Unicode(
        "",
        config=True,
        help="Run this kernel-nanny kernel type (e.g. 'slurm/gpu', 'ssh/host/spec/python3') instead of the "
        "kernelspec's argv; empty: the kernelspec's own command.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._manager: ManagerClient | None = None
        self._watch: NannyWatch | None = None
        self._nanny_file: str | None = None
        #: What the running nanny was started with (a restart in place needs the same request);
        #: None after a re-attach (whatever it runs).
        self._request: LaunchRequest | None = None
        #: Why we expect the kernel to die ("shutdown", "restart"; "replaced": it crashed and its nanny
        #: restarts it), and the watch's counts when we started expecting it.
        self._stopping: str | None = None
        self._killed = False
        self._marks = (0, 0, 0)
        #: The kernel jupyter_client knows: the watch's counts and the nanny's restart count when it started.
        self._known_marks = (0, 0, 0)
        self._known_restart_count = 0
        #: The death of the kernel jupyter_client knows is told in the log (:meth:`_tell_death`).
        self._death_told = False

    def __repr__(self) -> str:
        nanny = self._manager.kernel_id[:12] if self._manager else None
        return f"<NannyProvisioner kernel={self.kernel_id} nanny={nanny} stopping={self._stopping}>"

    # -- launching ------------------------------------------------------------

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Resolve the argv template as jupyter_client would, leaving ``{connection_file}`` to the nanny."""
        manager = self.parent
        transport = getattr(manager, "transport", "tcp")
        if transport != "tcp":
            raise ValueError(
                f"the kernel-nanny provisioner runs kernels on tcp, but KernelManager.transport is {transport!r}: "
                "remove the transport setting (or set it to 'tcp')"
            )
        extra_arguments = kwargs.pop("extra_arguments", None) or []
        # jupyter_client fills any {name} of the argv from the launch arguments (kernel_id, cwd...).
        values = {k: v for k, v in kwargs.items() if isinstance(v, str) and k not in _NANNY_PLACEHOLDERS}
        argv = [
            _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), arg)
            for arg in [*self.kernel_spec.argv, *extra_arguments]
        ]
        result: dict[str, Any] = await super().pre_launch(cmd=argv, **kwargs)
        return result

    @_on_shared_loop
    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        """Start a nanny for ``cmd`` (or, on a restart, restart its kernel in place); return the kernel's info."""
        request = self._request_for(cmd, kwargs)
        if self._manager is not None:
            assert self._watch is not None
            unchanged = self._request is None or self._request == request
            if unchanged and not self._watch.gone and await self._restart_in_place():
                return self._jupyter_connection_info(key_bytes=True)
            log.info(
                "[kernel=%s] starting a new nanny: %s",
                self.kernel_id,
                "launch request changed" if not unchanged else "nanny gone",
            )
            await self._stop_nanny()
        _, manager = await start_kernel(request, use_daemon=self.use_daemon)
        assert isinstance(manager, ManagerClient)
        try:
            await self._attach(manager, str(public_connection_file(manager.kernel_id)))
        except BaseException:
            await manager.shutdown(now=True)
            await manager.cleanup()
            raise
        self._request = request
        log.info("[kernel=%s] running behind nanny %s", self.kernel_id, manager.kernel_id[:12])
        return self._jupyter_connection_info(key_bytes=True)

    def _request_for(self, cmd: list[str], kwargs: dict[str, Any]) -> LaunchRequest:
        manager = self.parent
        spec = self.kernel_spec
        env = kwargs.get("env")
        changes = {k: v for k, v in (env or {}).items() if os.environ.get(k) != v}
        params: dict[str, Any] = {
            "transport": "tcp",
            "ip": getattr(manager, "ip", "") or "127.0.0.1",
            "encryption": str(getattr(manager, "transport_encryption", "disabled")).lower(),
            "env": changes,
        }
        # The kernelspec's argv, then what the caller added (nbclient: --HistoryManager.hist_file=:memory:):
        # as switches, so a daemon can tell its type's command from them.
        spec_length = len(spec.argv)
        command = KernelCommand(
            argv=list(cmd[:spec_length]),
            resource_dir=spec.resource_dir or "",
            interrupt_mode=spec.interrupt_mode or "signal",
            metadata=dict(spec.metadata or {}),
        )
        name = getattr(manager, "kernel_name", "") or "kernel"
        cwd = kwargs.get("cwd")
        return LaunchRequest(
            kernel_type=self.kernel_type or f"spec/{name}",
            command=None if self.kernel_type else command,
            switches=() if self.kernel_type else cmd[spec_length:],
            cwd=str(cwd) if cwd is not None else None,
            params=LaunchParams.from_mapping(params),
            name=self.kernel_id or None,
            supervised=True,
            owner=None if self.persistent else os.getpid(),
        )

    async def _attach(self, manager: ManagerClient, nanny_file: str) -> None:
        watch = await NannyWatch.attach(manager, int(manager.connection_info["nanny_pid"]), PROVISIONER_NANNY_TIMEOUT)
        if watch.gone:
            watch.close()
            raise NannyUnavailable(f"the nanny of kernel {self.kernel_id} exited")
        self._manager, self._watch, self._nanny_file = manager, watch, nanny_file
        await self._now_known()
        self.connection_info = self._jupyter_connection_info(key_bytes=False)

    async def _now_known(self) -> None:
        """The kernel running now is the one jupyter_client knows (after a launch, restart or re-attach)."""
        assert self._manager is not None and self._watch is not None
        self._stopping, self._killed = None, False
        self._known_marks = self._watch.marks()
        self._known_restart_count = int((await self._manager.info())["restart_count"])
        self._death_told = False

    def _jupyter_connection_info(self, *, key_bytes: bool) -> KernelConnectionInfo:
        """The kernel's connection info as jupyter_client writes it (no nanny sockets).

        ``KernelManager`` compares it with its own, where the key is bytes; the
        copy kept for :meth:`get_provisioner_info` has it as text, so it is JSON.
        """
        assert self._manager is not None
        nanny_info = self._manager.connection_info
        info: dict[str, Any] = {
            "transport": nanny_info["transport"],
            "ip": nanny_info["ip"],
            "signature_scheme": nanny_info["signature_scheme"],
            "key": nanny_info["key"].encode() if key_bytes else nanny_info["key"],
            "kernel_name": getattr(self.parent, "kernel_name", "") or "",
        }
        info.update({f"{channel}_port": nanny_info[f"{channel}_port"] for channel in CHANNELS})
        for key in ("curve_publickey", "curve_secretkey"):
            if nanny_info.get(key):
                info[key] = nanny_info[key]
        return cast(KernelConnectionInfo, info)

    async def _restart_in_place(self) -> bool:
        """Have the nanny's kernel restarted on the same ports; False if the nanny went away meanwhile."""
        watch, manager = self._watch, self._manager
        assert watch is not None and manager is not None
        deaths, restarts, failures = self._marks
        relaunching = self._stopping in ("restart", "replaced") and not self._killed
        if relaunching:
            # The kernel got the manager's shutdown_request(restart=True), or crashed and its
            # replacement is adopted (see kill): its nanny relaunches it.
            def settled() -> bool:
                gave_up = watch.deaths > deaths and not (watch.last_death or {}).get("restarting")
                return watch.restarts > restarts or watch.failures > failures or gave_up or watch.gone

            await watch.until(settled, DEFAULT_STARTUP_TIMEOUT + PROVISIONER_NANNY_TIMEOUT)
        if watch.gone:
            return False
        if not (relaunching and watch.restarts > restarts):
            try:
                await manager.restart(now=True)
            except NannyUnavailable:
                if watch.gone:
                    return False
                raise
        await self._now_known()
        return True

    # -- the process interface ------------------------------------------------

    @property
    def has_process(self) -> bool:
        return self._manager is not None

    @_on_shared_loop
    async def poll(self) -> int | None:
        """None while the kernel jupyter_client started runs; its exit status once it died.

        A kernel that crashed counts as dead for jupyter_client even while its
        nanny already runs a new one: the cell that was running will never
        reply, and clients learn it only from a death (nbclient raises
        ``DeadKernelError``, jupyter_server restarts the kernel and tells the
        browser). That restart goes through the nanny again, in place.
        """
        watch, manager = self._watch, self._manager
        if watch is None or manager is None:
            return 0
        if watch.gone:
            return watch.exit_code if watch.exit_code is not None else _DIED_WITH_NANNY
        if self._killed:
            return -signal.SIGKILL  # the nanny answered the kill once the kernel had exited
        if self._stopping is not None:
            return watch.exit_code if watch.deaths > self._marks[0] else None
        if watch.deaths > self._known_marks[0]:
            self._tell_death(watch.last_death)
            return watch.exit_code
        try:
            info = await manager.info()  # authoritative where events wait unread (a synchronous manager)
        except NannyUnavailable:
            if watch.gone:
                return watch.exit_code if watch.exit_code is not None else _DIED_WITH_NANNY
            log.warning("[kernel=%s] its nanny does not answer; taking the kernel for running", self.kernel_id)
            return None
        # The kernel jupyter_client knows runs while the nanny runs it: not while it restarts it (its
        # replacement may already be up, not yet counted), nor once another took its place.
        if info["alive"] and info["state"] == "running" and info["restart_count"] == self._known_restart_count:
            return None
        self._tell_death(info.get("last_exit"))
        code = popen_returncode(info.get("last_exit"))
        return code if code is not None else _DIED_WITH_NANNY

    def _tell_death(self, death: Mapping[str, Any] | None) -> None:
        """Say once in the server's log how the kernel jupyter_client knew died (an exit code says less:
        a Slurm job's time limit, an external scancel)."""
        if not self._death_told and death is not None:
            self._death_told = True
            self.log.warning("kernel %s died: %s", self.kernel_id, ExitStatus.from_dict(death))

    @_on_shared_loop
    async def wait(self) -> int | None:
        """Wait until the kernel dies (the one being stopped, or else the next death) and return its status."""
        watch = self._watch
        if watch is None:
            return 0
        mark = self._marks[0] if self._stopping is not None else self._known_marks[0]
        code = await self.poll()
        if code is not None:
            return code
        await watch.until(lambda: watch.deaths > mark or watch.gone, timeout=None)
        return watch.exit_code if watch.exit_code is not None else _DIED_WITH_NANNY

    @_on_shared_loop
    async def send_signal(self, signum: int) -> None:
        """Signal the kernel's process group through the nanny; SIGINT is the nanny's interrupt."""
        manager = self._manager
        if manager is None or self._watch is None or self._watch.gone:
            return
        try:
            if signum == signal.SIGINT and self.kernel_spec.interrupt_mode != "message":
                await manager.interrupt()
            else:
                await manager.signal(signum)
        except KernelNotRunning as exc:
            log.debug("[kernel=%s] signal %d not sent: %s", self.kernel_id, signum, exc)

    @_on_shared_loop
    async def kill(self, restart: bool = False) -> None:
        """SIGKILL the kernel; the nanny stays (for a restart, or until :meth:`cleanup`).

        jupyter_server's restarter restarts a kernel it saw crash with
        ``restart_kernel(now=True)``, which starts with this kill. When the
        nanny is already bringing that kernel back, nothing is killed: a
        restart adopts the replacement (killing it and starting a third would
        count two restarts for one crash, and lose what a client already ran
        in it), and a shutdown stops the nanny in :meth:`cleanup`.
        """
        watch = self._watch
        if self._manager is None or watch is None or watch.gone:
            return
        crashed = watch.deaths > self._known_marks[0] and (watch.last_death or {}).get("restarting")
        if self._stopping is None and not crashed:
            # Its events may lag (they arrive on another loop): the nanny's own word is authoritative.
            info = await self._manager.info()
            crashed = info["state"] == "restarting" or info["restart_count"] > self._known_restart_count
        if self._stopping is None and crashed:
            self._expect("replaced", since=self._known_marks)
            return
        if self._stopping is None:
            self._expect("restart" if restart else "shutdown")
        self._killed = True
        await self._manager.kill()

    @_on_shared_loop
    async def terminate(self, restart: bool = False) -> None:
        """SIGTERM the kernel's process group (jupyter_client's step after an unanswered shutdown request)."""
        if self._stopping is None:
            self._expect("restart" if restart else "shutdown")
        await self.send_signal(signal.SIGTERM)

    @_on_shared_loop
    async def shutdown_requested(self, restart: bool = False) -> None:
        """The manager asked the kernel to shut down: from now on its death is expected, not a crash."""
        if self._watch is not None:
            self._expect("restart" if restart else "shutdown")

    def _expect(self, why: str, since: tuple[int, int, int] | None = None) -> None:
        """From now on (or ``since`` those counts) a death of the kernel is expected, for ``why``."""
        assert self._watch is not None
        self._stopping = why
        self._marks = since or self._watch.marks()

    @_on_shared_loop
    async def cleanup(self, restart: bool = False) -> None:
        """On a shutdown (not a restart), stop the nanny and return once its process has exited."""
        if not restart and self._manager is not None:
            await self._stop_nanny()

    async def _stop_nanny(self) -> None:
        watch, manager = self._watch, self._manager
        assert watch is not None and manager is not None
        death = watch.last_death or {}
        # A kernel that shut down on a client's request takes its nanny with it.
        leaving = watch.exiting or (
            self._stopping == "shutdown"
            and not self._killed
            and watch.deaths > self._marks[0]
            and death.get("requested")
            and not death.get("restarting")
        )
        if not watch.gone and not leaving:
            try:
                await manager.shutdown(now=True)
            except NannyUnavailable as exc:
                log.warning("[kernel=%s] %s", self.kernel_id, exc)
        if not await watch.nanny_exited(PROVISIONER_NANNY_TIMEOUT):
            log.warning("[kernel=%s] nanny %d did not exit; killing it", self.kernel_id, watch.nanny_pid)
            watch.kill_nanny()
            await watch.nanny_exited(PROVISIONER_NANNY_TIMEOUT)
        watch.close()
        await manager.cleanup()
        self._manager = self._watch = self._nanny_file = self._request = None
        self._stopping, self._killed = None, False

    # -- persistence ------------------------------------------------------------

    async def get_provisioner_info(self) -> dict[str, Any]:
        """What a new KernelManager (in a new process) needs to take this kernel over: see :func:`reattach`."""
        info: dict[str, Any] = await super().get_provisioner_info()
        info["nanny_connection_file"] = self._nanny_file
        return info

    @_on_shared_loop
    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Connect to the nanny named in ``provisioner_info`` (from :meth:`get_provisioner_info`)."""
        await super().load_provisioner_info(provisioner_info)
        path = provisioner_info.get("nanny_connection_file")
        if not path or not Path(path).is_file():
            raise NoSuchKernel(
                f"kernel {self.kernel_id} cannot be re-attached: its nanny's connection file {path} is gone "
                "(the nanny has exited; see 'kernel-nanny ps')"
            )
        await self._attach(ManagerClient.from_connection_file(path), str(path))
        self._request = None

    def resolve_path(self, path: str) -> str | None:
        """``path`` relative to the kernel's working directory, if it exists there."""
        resolved = Path(path).expanduser()
        cwd = self._request.cwd if self._request is not None else None
        if not resolved.is_absolute() and cwd:
            resolved = (Path(cwd) / resolved).resolve()
        return resolved.as_posix() if resolved.exists() else None


async def reattach(kernel_manager: Any, provisioner_info: dict[str, Any]) -> None:
    """Make a fresh jupyter_client ``KernelManager`` manage a kernel another one started.

    ``provisioner_info`` is what ``kernel_manager.provisioner.get_provisioner_info()``
    returned in the process that started the kernel (a jupyter_server that has
    since restarted, say). Afterwards ``interrupt_kernel``, ``restart_kernel``
    and ``shutdown_kernel`` work as if this manager had started the kernel.
    jupyter_client has no public call for this, so it sets what ``start_kernel``
    would have: the provisioner, the connection info, the (empty) launch arguments.
    """
    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    kernel_id = provisioner_info["kernel_id"]
    kernel_manager.kernel_id = kernel_id
    provisioner = KernelProvisionerFactory.instance(parent=kernel_manager.parent).create_provisioner_instance(
        kernel_id, kernel_manager.kernel_spec, parent=kernel_manager
    )
    if not isinstance(provisioner, NannyProvisioner):
        raise ConfigError(
            f"kernelspec {kernel_manager.kernel_name!r} does not use the kernel-nanny provisioner "
            f"(it uses {type(provisioner).__name__}): select it for that kernelspec, or as the default provisioner"
        )
    await provisioner.load_provisioner_info(provisioner_info)
    kernel_manager.provisioner = provisioner
    kernel_manager.load_connection_info(provisioner._jupyter_connection_info(key_bytes=True))
    # What start_kernel leaves behind: launch arguments for restart_kernel (the nanny keeps the
    # real recipe), and a started, ready state.
    kernel_manager._launch_args = {}
    kernel_manager._attempted_start = True
    ready = asyncio.get_running_loop().create_future()
    ready.set_result(None)
    kernel_manager._ready = ready
    kernel_manager.start_restarter()
