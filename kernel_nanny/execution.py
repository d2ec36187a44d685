"""Run commands in a kernel to completion: a return code, streamed output, graceful stops.

In the spirit of spine_engine's ``KernelExecutionManager``: a tool that runs a
list of commands in a kernel wants the answer "did it work" (0, or 1 at the
first command that raised), the output as it comes, a way to stop a run that
takes too long (interrupt, then kill), and one kernel kept warm per
(kernel, group) across calls and processes.

Where the kernel comes from:

* a kernel type (``spec/python3``) or a Python environment (a venv or conda
  environment given by its directory: its ``python -m ipykernel_launcher``),
  plus extra command-line switches for the kernel;
* without a group, a kernel is launched for this execution (our child, it
  dies with us) and shut down by :meth:`KernelExecution.close`;
* with a group, the kernel runs behind a nanny under a name derived from
  (kernel, switches, group). Later executions, in this process or any other,
  find it again by that name's connection file and reuse it; a dead one is
  replaced (one whose nanny runs but does not answer is refused: it may hold
  state). It keeps running afterwards, also after
  this process ends (``kernel-nanny stop NAME`` ends it), unless
  ``persistent=False`` ties it to the process that launched it;
* :meth:`KernelExecution.attach` runs in a kernel already behind a nanny.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import runs
from ._exceptions import ExecutionBusy, KernelDied, KernelNannyError, KernelNotRunning, LaunchError, NannyUnavailable
from ._lifetime import Lifetime
from ._loop import BlockingTwin, blocking, shared_loop
from ._tasks import wait_for
from .client import KernelClient, ManagerClient
from .client.kernel import OutputHook, PendingExecution, StdinHook
from .client.running import RunningKernel, find_running_kernel, list_running_kernels, match_kernels
from .config import RestartPolicy
from .defaults import DEFAULT_STOP_TIMEOUT, IPYKERNEL_CHECK_TIMEOUT
from .discovery import KernelFinder
from .launch import KernelCommand, LaunchParams
from .launch.command import ipykernel_command
from .launch.request import LaunchRequest
from .paths import open_private_file, runtime_dir, secure_directory
from .protocol import ExitStatus, KernelManager, Message
from .protocol.nanny import journal_end
from .runs import FAILED, OK
from .start import start_kernel

__all__ = [
    "BlockingKernelExecution",
    "KernelExecution",
    "OutputPrinter",
    "python_kernel_command",
]

log = logging.getLogger("kernel_nanny.execution")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def python_kernel_command(environment: str | os.PathLike[str]) -> KernelCommand:
    """The ipykernel command of a Python environment (a venv or conda environment, by its directory).

    Raises :exc:`~kernel_nanny.LaunchError` if the directory holds no Python.
    Whether that Python has ipykernel is checked when a kernel is started.
    """
    env = Path(environment).expanduser().absolute()
    if not env.is_dir():
        raise LaunchError(f"no Python environment at {env}: give the directory of a venv or conda environment")
    candidates = [env / "bin" / "python", env / "python.exe", env / "Scripts" / "python.exe"]
    python = next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)
    if python is None:
        raise LaunchError(
            f"{env} has no Python (looked for bin/python): give the directory of a venv or conda environment"
        )
    return ipykernel_command(str(python))


async def _check_ipykernel(python: str, label: str) -> None:
    """Fail early, and clearly, when an environment's Python cannot import ipykernel."""
    process = await asyncio.create_subprocess_exec(
        python,
        "-c",
        "import ipykernel",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await wait_for(process.communicate(), IPYKERNEL_CHECK_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise LaunchError(f"{python} did not finish 'import ipykernel' within {IPYKERNEL_CHECK_TIMEOUT:g} s") from None
    if process.returncode != 0:
        last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise LaunchError(
            f"the Python environment {label} cannot run a kernel: {last[0]}. "
            f"Install ipykernel there: {python} -m pip install ipykernel"
        )


class OutputPrinter:
    """Renders iopub output as text: streams as they come, results as text/plain, tracebacks.

    Use it as ``output_hook``. Colour codes are dropped when the stream is not a terminal.
    """

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def __call__(self, msg: Message) -> None:
        content: dict[str, Any] = msg.content
        if msg.msg_type == "stream":
            self._write(self.err if content.get("name") == "stderr" else self.out, content.get("text", ""))
        elif msg.msg_type in ("execute_result", "display_data"):
            data = content.get("data", {})
            text = data.get("text/plain") or f"[{', '.join(data) or 'empty'} output]"
            self._write(self.out, text + "\n")
        elif msg.msg_type == "error":
            traceback = "\n".join(content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"])
            self._write(self.err, traceback + "\n")

    @staticmethod
    def _write(stream: TextIO, text: str) -> None:
        if not stream.isatty():
            text = _ANSI.sub("", text)
        stream.write(text)
        stream.flush()


class KernelExecution(Lifetime):
    """Runs lists of commands in one kernel, each to completion, and says whether they worked.

    Give a kernel type id or ``python=`` a Python environment's directory;
    ``group`` keeps the kernel behind a nanny for reuse (see the module
    docstring); ``switches`` are added to the kernel's command line; ``env``
    and ``cwd`` apply when the kernel is started. A group's kernel persists
    after this process ends (that is what a group is for), unless
    ``persistent=False`` ties the kernel this execution launches to this
    process; a kernel without a group always ends with the execution and
    with the process. With ``use_daemon`` (the default), the kernel comes from
    this user's daemon when one runs (its pool may have it ready: see the
    "Fast starts" how-to), else it is started here::

        async with KernelExecution("spec/python3", group="etl") as execution:
            code = await execution.run(["import pandas", "print(len(df))"], output_hook=OutputPrinter())

    :meth:`stop` (from another task) interrupts the running command and kills
    the kernel if it does not stop within the timeout.
    """

    def __init__(
        self,
        kernel_type: str | None = None,
        *,
        python: str | os.PathLike[str] | None = None,
        group: str | None = None,
        switches: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        launch_params: Mapping[str, Any] | None = None,
        restart_policy: RestartPolicy | None = None,
        finder: KernelFinder | None = None,
        persistent: bool | None = None,
        use_daemon: bool = True,
    ) -> None:
        if (kernel_type is None) == (python is None):
            raise ValueError("give a kernel type or python=, the directory of a Python environment (not both)")
        if group is not None and (not group or "/" in group):
            raise ValueError(f"a group key must be non-empty and contain no '/': {group!r}")
        if persistent and group is None:
            raise ValueError(
                "persistent=True needs a group: a kernel without one is this execution's and ends with it "
                "(give group= to keep a kernel for later executions)"
            )
        self.kernel_type = kernel_type
        self.python = Path(python).expanduser().absolute() if python is not None else None
        self.group = group
        self.switches = tuple(switches)
        #: Start the kernel through this user's daemon when one runs (its pool may have one ready).
        self.use_daemon = use_daemon
        self._finder = finder
        self._attached: RunningKernel | None = None
        params = {"echo_output": False, **(launch_params or {})}
        if env:
            params["env"] = {**(params.get("env") or {}), **env}
        #: The launch this execution makes when it needs a kernel (validated now: bad input fails here).
        self.request = LaunchRequest(
            kernel_type=self.label,
            command=python_kernel_command(self.python) if self.python is not None else None,
            switches=self.switches,
            cwd=cwd if cwd is not None or group is None else os.getcwd(),
            params=LaunchParams.from_mapping(params),
            name=self.name,
            restart_policy=restart_policy or RestartPolicy(),
            supervised=group is not None,
            # A group's kernel is for later executions, in other processes too: it persists unless told not to.
            owner=os.getpid() if group is not None and persistent is False else None,
        )
        self.cwd = self.request.cwd
        self._info: dict[str, Any] | None = None
        self._manager: KernelManager | None = None
        self._client: KernelClient | None = None
        self._running: asyncio.Event | None = None
        self._stopping = False
        self._aborting = False
        #: Whether the last :meth:`start` launched a new kernel (False: it found the group's, or attached).
        self.started_new = False
        #: The id of the last run in a kernel behind a nanny, for :meth:`rejoin` (None before one).
        self.execution_id: str | None = None
        #: The run the last :meth:`run` re-joined (``rejoin=True``), else None.
        self.rejoined: runs.RunRecord | None = None

    @classmethod
    def attach(cls, ref: str) -> KernelExecution:
        """Run in a kernel already running behind a nanny: its id, id prefix or name.

        The kernel keeps running when the execution is closed.
        """
        kernel = find_running_kernel(ref)
        # The type only labels it: the kernel runs already.
        execution = cls(kernel.kernel_type or f"attached/{kernel.kernel_id}")
        execution._attached = kernel
        return execution

    def __repr__(self) -> str:
        kernel = self._info["kernel_id"][:12] if self._info else "-"
        running = " running" if self.running else ""
        return f"<KernelExecution {self.label} group={self.group} kernel={kernel} state={self.state.value}{running}>"

    # -- what to run ----------------------------------------------------------

    @property
    def label(self) -> str:
        """The kernel's type id, or ``python:<environment>``."""
        if self._attached is not None:
            return self._attached.kernel_type
        return f"python:{self.python}" if self.python is not None else str(self.kernel_type)

    @property
    def name(self) -> str | None:
        """The name of the group's kernel (``kernel-nanny ps`` shows it), or None without a group.

        Deterministic: the group, a readable form of the kernel, and a digest
        of (kernel, switches, group), so different switches mean a different kernel.
        """
        if self._attached is not None:
            return self._attached.name
        if self.group is None:
            return None
        key = "\0".join([self.label, self.group, *self.switches])
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        readable = self.python.name if self.python is not None else str(self.kernel_type).replace("/", "-")
        return _NAME_UNSAFE.sub("_", f"{self.group}.{readable}") + f".{digest}"

    @property
    def connection_info(self) -> dict[str, Any] | None:
        """The kernel's connection info once :meth:`start` found or launched it."""
        return self._info

    @property
    def manager(self) -> KernelManager | None:
        """The kernel's manager once :meth:`start` found or launched it (a ManagerClient behind a nanny)."""
        return self._manager

    @property
    def kernel_id(self) -> str | None:
        return None if self._info is None else str(self._info.get("kernel_id") or "") or None

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running commands now."""
        return self._running is not None and not self._running.is_set()

    def command(self) -> KernelCommand | None:
        """The command to run, or None when the type's provider launches it itself (no switches then)."""
        return self._kernel_finder().resolve(self.request).command

    def _kernel_finder(self) -> KernelFinder:
        if self._finder is None:
            self._finder = KernelFinder(()) if self.request.command is not None else KernelFinder.from_entrypoints()
        return self._finder

    async def _launch(self) -> None:
        if self.python is not None and self.request.command is not None:
            await _check_ipykernel(self.request.command.argv[0], str(self.python))
        # The finder is built only where the kernel starts here: a daemon that serves the launch needs none.
        self._info, self._manager = await start_kernel(self.request, finder=self._finder, use_daemon=self.use_daemon)

    # -- the kernel -----------------------------------------------------------

    async def start(self) -> None:
        """Find or launch the kernel (idempotent while it is alive); a dead one is replaced.

        Runs of :meth:`run` call it; call it first to know whether a new
        kernel was started (:attr:`started_new`) or to fail early.
        """
        self._check_open()
        self.started_new = False
        if self._manager is not None and await _alive(self._manager):
            return
        if self._attached is not None:
            await self._attach()
        elif self.group is not None:
            await self._dispose(shutdown=True)
            await self._find_or_start_group_kernel()
        else:
            await self._dispose(shutdown=True)
            await self._launch()
            self.started_new = True

    async def _attach(self) -> None:
        assert self._attached is not None
        kernel = self._attached
        await self._dispose(shutdown=False)
        manager = ManagerClient(kernel.info)
        if not await _kernel_alive(kernel, manager):
            try:
                last_exit = (await manager.info())["last_exit"] if kernel.nanny_alive() else None
            except KernelNannyError:
                last_exit = None
            await manager.cleanup()
            ended = last_exit is not None and ExitStatus.from_dict(last_exit).final
            raise KernelNotRunning.named(kernel.name or kernel.kernel_id[:12], "ended" if ended else "dead")
        self._info, self._manager = kernel.info, manager

    async def _find_or_start_group_kernel(self) -> None:
        name = self.name
        assert name is not None
        async with _name_lock(name):  # one process starts it; the others find it
            found = _find_named(name)
            if found is not None:
                manager = ManagerClient(found.info)
                if await _kernel_alive(found, manager):
                    log.debug("reusing kernel %s (%s)", name, found.kernel_id)
                    self._info, self._manager = found.info, manager
                    return
                log.info("replacing kernel %s (%s): it is dead", name, found.kernel_id)
                await _retire(found, manager)
            await self._launch()
            self.started_new = True

    async def _dispose(self, *, shutdown: bool) -> None:
        """Let go of the current kernel: close our client; shut the kernel down if ``shutdown``."""
        client, manager, self._client, self._manager, self._info = self._client, self._manager, None, None, None
        if client is not None:
            client.close()
            await client.wait_closed()
        if manager is None:
            return
        if shutdown and self._owns_kernel:
            with contextlib.suppress(KernelNannyError):
                await manager.shutdown(now=True)
        await manager.cleanup()

    @property
    def _owns_kernel(self) -> bool:
        """A kernel launched for this execution alone (no group, not attached)."""
        return self.group is None and self._attached is None

    # -- running --------------------------------------------------------------

    async def run(
        self,
        commands: Iterable[str] | str,
        *,
        output_hook: OutputHook | None = None,
        stdin_hook: StdinHook | None = None,
        timeout: float | None = None,
        rejoin: bool = False,
        on_queued: Callable[[KernelExecution], None] | None = None,
    ) -> int:
        """Run ``commands`` one after the other, each to completion; 0 if all ran, 1 at the first that raised.

        ``output_hook(msg)`` sees every output message as it arrives
        (:class:`OutputPrinter` prints them). ``timeout`` bounds each command
        (:exc:`~kernel_nanny.KernelTimeout`; the kernel is left as it is, the
        commands after it still queued there). Raises
        :exc:`~kernel_nanny.KernelDied` if the kernel dies meanwhile, unless
        :meth:`stop` killed it: the run then returns 1.

        All the commands are queued in the kernel at once (it runs them in
        order, and aborts the rest after one raises). In a kernel behind a
        nanny (a group's, or an attached one) the run therefore outlives this
        process, and is recorded (:attr:`execution_id`): :meth:`rejoin` follows
        it from another process to the same return code. ``rejoin=True``
        follows a run of the same commands that is still going in the kernel,
        if there is one, instead of starting a second (:attr:`rejoined` says so).
        ``on_queued(execution)`` is called once the commands are queued (or
        the run re-joined), with :attr:`execution_id` set: to tell the user.
        """
        if self.running:
            raise ExecutionBusy("this execution is already running commands")
        commands = [commands] if isinstance(commands, str) else list(commands)
        await self.start()
        assert self._manager is not None and self._info is not None
        self._running = asyncio.Event()
        self._stopping = False
        self.rejoined = None
        death = asyncio.ensure_future(self._manager.wait())
        try:
            manager = self._manager
            if rejoin and isinstance(manager, ManagerClient):
                going = await self._going_run(manager, commands)
                if going is not None:
                    self.rejoined, self.execution_id = going, going.execution_id
                    if on_queued is not None:
                        on_queued(self)
                    return int(await self._until_done_or_died(runs.rejoin(manager, going, output_hook), death))
            if self._client is None:
                self._client = KernelClient(self._info)
            record = await self._new_record(manager, commands)
            pending: list[PendingExecution] = []
            for command in commands:
                submitted = self._client.submit_execute(command, output_hook=output_hook, stdin_hook=stdin_hook)
                execution = await self._until_done_or_died(submitted, death)
                if execution is None:  # stopped meanwhile
                    return FAILED
                pending.append(execution)
                if record is not None:
                    record.msg_ids.append(execution.msg_id)
            if record is not None:
                record.save()
            if on_queued is not None:
                on_queued(self)
            status = OK
            for execution in pending:
                result = await self._until_done_or_died(execution.result(timeout), death)
                if result is None or not result.ok:
                    status = FAILED
                    break
            for execution in pending:
                execution.discard()  # what follows a command that raised was aborted by the kernel
            if record is not None:
                record.result = status
                record.save()
            return status
        finally:
            death.cancel()
            await asyncio.gather(death, return_exceptions=True)
            self._running.set()

    async def _new_record(self, manager: KernelManager, commands: list[str]) -> runs.RunRecord | None:
        """A record of the run, when its kernel is behind a nanny (whose journal keeps the run's output)."""
        if not isinstance(manager, ManagerClient) or self.kernel_id is None:
            return None
        record = runs.RunRecord.new(self.kernel_id, self.group, commands, journal_end(await manager.info()))
        self.execution_id = record.execution_id
        return record

    async def _going_run(self, manager: ManagerClient, commands: list[str]) -> runs.RunRecord | None:
        found = find_running_kernel(self.kernel_id) if self.kernel_id else None
        going = await runs.going_run(found, manager) if found is not None else None
        return going if going is not None and going.digest == runs.commands_digest(commands) else None

    @staticmethod
    async def rejoin(execution_id: str, *, output_hook: OutputHook | None = None) -> int:
        """Follow run ``execution_id`` (:attr:`execution_id` of the process that began it) to its end.

        ``output_hook`` sees all its output, from the first command's (the
        nanny's journal kept it); returns the code :meth:`run` would have
        returned to its first caller. Raises :exc:`~kernel_nanny.NoSuchKernel`
        for an unknown run, :exc:`~kernel_nanny.KernelDied` if the kernel dies first.
        """
        kernel, record = runs.find_run(execution_id)
        async with ManagerClient(kernel.info) as manager:
            return await runs.rejoin(manager, record, output_hook)

    async def _until_done_or_died(self, execution: Any, death: asyncio.Future[Any]) -> Any:
        task = asyncio.ensure_future(execution)
        try:
            await asyncio.wait({task, death}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled():
            return task.result()
        if self._stopping:
            return None
        status = death.result()
        raise KernelDied("the kernel died while running the code", status=status)

    async def interrupt(self) -> None:
        """Interrupt the running command (the kernel's interrupt mode: signal or message)."""
        if self._manager is not None:
            await self._manager.interrupt()

    async def kill(self) -> None:
        """Kill the kernel at once; the running command ends the run with 1.

        A group's kernel is replaced by the next execution; a kernel behind a
        nanny stays dead until then (its nanny does not restart a killed kernel).
        """
        if self._manager is not None:
            self._stopping = True
            await self._manager.kill()

    async def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the running commands gracefully: interrupt, then kill after ``timeout`` seconds.

        Returns once :meth:`run` has returned. Does nothing if nothing runs.
        """
        if not self.running:
            return
        assert self._running is not None
        self._stopping = True
        await self.interrupt()
        try:
            await wait_for(self._running.wait(), timeout)
        except asyncio.TimeoutError:
            log.info("%s did not stop within %g s of the interrupt: killing its kernel", self.label, timeout)
            await self.kill()
            await self._running.wait()

    # -- lifetime: closing shuts down a kernel launched for this execution alone;
    # -- a group's kernel and an attached one keep running.

    def abort(self) -> None:
        """Close forcefully: this execution's own kernel is killed at once, and a run in progress returns 1.

        A group's kernel and an attached one are not this execution's to kill:
        for them, abort is :meth:`close`. :meth:`wait_closed` finishes it.
        """
        self._aborting = True
        self.close()

    async def _finish_closing(self) -> None:
        if self._aborting and self._owns_kernel:
            with contextlib.suppress(KernelNannyError):
                await self.kill()
                if self._running is not None:
                    await self._running.wait()  # the run saw the death and returned 1
        await self._dispose(shutdown=True)


async def _alive(manager: KernelManager) -> bool:
    try:
        return await manager.is_alive()
    except KernelNannyError:  # NannyUnavailable included
        return False


async def _kernel_alive(kernel: RunningKernel, manager: ManagerClient) -> bool:
    """Whether the kernel behind a running nanny is alive; False if it died, or its nanny is gone.

    A nanny that runs but does not answer (stopped, hung) raises
    :exc:`~kernel_nanny.NannyUnavailable`: its kernel may well be alive and
    hold state, so it is neither "not running" nor to be replaced.
    """
    try:
        return await manager.is_alive()
    except NannyUnavailable as exc:
        if kernel.nanny_alive():
            await manager.cleanup()
            raise kernel.unresponsive() from exc
        return False
    except KernelNannyError:
        return False


def _find_named(name: str) -> RunningKernel | None:
    """The group's kernel: named exactly so (an id that merely begins with ``name`` is another kernel)."""
    return next(iter(match_kernels(name, list_running_kernels(), prefix=False)), None)


async def _retire(kernel: RunningKernel, manager: ManagerClient) -> None:
    """Get rid of a group kernel that died: ask its nanny to exit, else SIGKILL the nanny (if it still is one)."""
    try:
        await manager.shutdown(now=True)
    except KernelNannyError:
        # Killing the nanny takes its kernel along (the lifeline); a pid that is no nanny of ours is left alone.
        kernel.nanny.signal_nanny(signal.SIGKILL)
    finally:
        await manager.cleanup()
    list_running_kernels()  # removes the files a killed nanny left


@contextlib.asynccontextmanager
async def _name_lock(name: str) -> AsyncIterator[None]:
    """An exclusive lock per kernel name across processes (a 0600 file in the runtime directory's ``exec-locks``).

    Without it two processes could both find no kernel and both start one
    under the same name. ``flock`` blocks, so it is taken in a thread.
    """
    path = secure_directory(runtime_dir() / "exec-locks") / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
    fd = open_private_file(path, os.O_RDWR)
    try:
        await asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class BlockingKernelExecution(BlockingTwin):
    """:class:`KernelExecution` with blocking methods, on a private background loop.

    :meth:`stop` may be called from another thread while :meth:`run` blocks
    in one. Hooks run in the background thread.
    """

    _thread_name = "kernel-nanny-execution"

    def __init__(self, kernel_type: str | None = None, **kwargs: Any) -> None:
        super().__init__(KernelExecution(kernel_type, **kwargs))

    @classmethod
    def attach(cls, ref: str) -> BlockingKernelExecution:
        """Run in a kernel already running behind a nanny (see :meth:`KernelExecution.attach`)."""
        return cls._around(KernelExecution.attach(ref))

    @property
    def connection_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._async.connection_info or {}
        return info

    @property
    def name(self) -> str | None:
        return self._async.name  # type: ignore[no-any-return]

    @property
    def started_new(self) -> bool:
        return self._async.started_new  # type: ignore[no-any-return]

    @property
    def execution_id(self) -> str | None:
        """The last run's id, for :meth:`rejoin` (see :attr:`KernelExecution.execution_id`)."""
        return self._async.execution_id  # type: ignore[no-any-return]

    @staticmethod
    def rejoin(execution_id: str, *, output_hook: OutputHook | None = None) -> int:
        """:meth:`KernelExecution.rejoin`, blocking; the hook runs in a background thread."""
        return shared_loop().run(KernelExecution.rejoin(execution_id, output_hook=output_hook))

    def abort(self) -> None:
        """:meth:`KernelExecution.abort`, then :meth:`close` (a no-op once closed)."""
        if not self._async.closed:
            self._loop.call(self._async.abort)
        self.close()

    start = blocking(KernelExecution.start)
    run = blocking(KernelExecution.run)
    interrupt = blocking(KernelExecution.interrupt)
    kill = blocking(KernelExecution.kill)
    stop = blocking(KernelExecution.stop)
