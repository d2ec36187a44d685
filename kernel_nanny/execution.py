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
  find it again by that name's connection file and reuse it; a dead or
  unresponsive one is replaced. It keeps running afterwards
  (``kernel-nanny stop NAME`` ends it);
* :meth:`KernelExecution.attach` runs in a kernel already behind a nanny.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._exceptions import KernelDied, KernelNannyError, LaunchError, NoSuchKernelType
from ._loop import BlockingTwin, blocking
from ._tasks import wait_for
from .client import KernelClient, ManagerClient
from .client.kernel import OutputHook, StdinHook
from .client.running import RunningKernel, find_running_kernel, list_running_kernels, pid_alive
from .config import RestartPolicy
from .discovery import KernelFinder
from .launch import KernelCommand, LaunchResult, launch_local
from .launch.nanny_process import start_nanny
from .paths import runtime_dir, secure_directory
from .protocol import KernelManager, Message

__all__ = [
    "BlockingKernelExecution",
    "KernelExecution",
    "OutputPrinter",
    "kernel_command",
    "launch_kernel",
    "python_kernel_command",
]

log = logging.getLogger("kernel_nanny.execution")

#: Return codes of :meth:`KernelExecution.run`.
OK, FAILED = 0, 1
#: Seconds :meth:`KernelExecution.stop` waits for an interrupted command before it kills the kernel.
DEFAULT_STOP_TIMEOUT = 5.0
#: Seconds ``python -c "import ipykernel"`` may take when checking an environment.
IPYKERNEL_CHECK_TIMEOUT = 60.0

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
    return KernelCommand(argv=[str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"])


async def _check_ipykernel(command: KernelCommand, label: str) -> None:
    """Fail early, and clearly, when an environment's Python cannot import ipykernel."""
    python = command.argv[0]
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


async def kernel_command(
    kernel_type: str | None = None,
    *,
    python: str | os.PathLike[str] | None = None,
    switches: Sequence[str] = (),
    finder: KernelFinder | None = None,
) -> KernelCommand | None:
    """The command that runs a kernel type (with ``switches`` appended) or a Python environment's ipykernel.

    None for a type without switches: its provider launches it as it knows
    best. A type whose provider does not describe its kernels as commands
    takes no switches (:exc:`~kernel_nanny.LaunchError`). For an environment,
    checks that its Python can import ipykernel.
    """
    if python is not None:
        command: KernelCommand | None = python_kernel_command(python)
        assert command is not None
        await _check_ipykernel(command, str(python))
    elif kernel_type is None:
        raise ValueError("give a kernel type or python=, the directory of a Python environment")
    elif not switches:
        return None
    else:
        finder = finder or KernelFinder.from_entrypoints()
        provider_id, _, name = kernel_type.partition("/")
        provider = finder.providers.get(provider_id)
        try:
            if provider is None or not name:
                raise NoSuchKernelType(kernel_type)
            command = provider.kernel_command(name)
        except NoSuchKernelType:
            raise NoSuchKernelType(kernel_type, [tid for tid, _ in finder.find_kernels()]) from None
        if command is None:
            raise LaunchError(f"kernel type {kernel_type} takes no extra switches: its provider launches it itself")
    return dataclasses.replace(command, argv=[*command.argv, *switches])


async def launch_kernel(
    kernel_type: str | None = None,
    *,
    python: str | os.PathLike[str] | None = None,
    switches: Sequence[str] = (),
    nanny: bool = False,
    name: str | None = None,
    cwd: str | None = None,
    launch_params: Mapping[str, Any] | None = None,
    restart_policy: RestartPolicy | None = None,
    finder: KernelFinder | None = None,
) -> LaunchResult:
    """Launch a kernel type or a Python environment's ipykernel, with extra switches; ready when it returns.

    Like :meth:`KernelFinder.launch() <kernel_nanny.KernelFinder.launch>`
    (``nanny``, ``name``, ``restart_policy`` as there), plus ``python`` (a
    venv or conda environment's directory, instead of a type) and
    ``switches`` (added to the kernel's command line).
    """
    command = await kernel_command(kernel_type, python=python, switches=switches, finder=finder)
    label = f"python:{Path(python).expanduser().absolute()}" if python is not None else str(kernel_type)
    if command is None:
        return await (finder or KernelFinder.from_entrypoints()).launch(
            label, nanny=nanny, name=name, cwd=cwd, launch_params=launch_params, restart_policy=restart_policy
        )
    if nanny:
        return await start_nanny(
            label, name=name, cwd=cwd, launch_params=launch_params, restart_policy=restart_policy, command=command
        )
    return await launch_local(command, kernel_name=label, cwd=cwd, launch_params=launch_params)


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


class KernelExecution:
    """Runs lists of commands in one kernel, each to completion, and says whether they worked.

    Give a kernel type id or ``python=`` a Python environment's directory;
    ``group`` keeps the kernel behind a nanny for reuse (see the module
    docstring); ``switches`` are added to the kernel's command line; ``env``
    and ``cwd`` apply when the kernel is started::

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
    ) -> None:
        if (kernel_type is None) == (python is None):
            raise ValueError("give a kernel type or python=, the directory of a Python environment (not both)")
        if group is not None and (not group or "/" in group):
            raise ValueError(f"a group key must be non-empty and contain no '/': {group!r}")
        self.kernel_type = kernel_type
        self.python = Path(python).expanduser().absolute() if python is not None else None
        self.group = group
        self.switches = tuple(switches)
        self.cwd = cwd
        self._launch_params = dict(launch_params or {})
        if env:
            self._launch_params["env"] = {**self._launch_params.get("env", {}), **env}
        self._restart_policy = restart_policy
        self._finder = finder
        self._attached: RunningKernel | None = None
        self._info: dict[str, Any] | None = None
        self._manager: KernelManager | None = None
        self._client: KernelClient | None = None
        self._running: asyncio.Event | None = None
        self._stopping = False
        self._closed = False
        self._teardown: asyncio.Future[None] | None = None
        #: Whether the last :meth:`start` launched a new kernel (False: it found the group's, or attached).
        self.started_new = False

    @classmethod
    def attach(cls, ref: str) -> KernelExecution:
        """Run in a kernel already running behind a nanny: its id, id prefix or name.

        The kernel keeps running when the execution is closed.
        """
        kernel = find_running_kernel(ref)
        execution = cls(kernel.kernel_type or "-")  # the type only labels it: the kernel runs already
        execution._attached = kernel
        return execution

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.running else "idle")
        kernel = self._info["kernel_id"][:12] if self._info else "-"
        return f"<KernelExecution {self.label} group={self.group} kernel={kernel} state={state}>"

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
    def kernel_id(self) -> str | None:
        return None if self._info is None else str(self._info.get("kernel_id") or "") or None

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is running commands now."""
        return self._running is not None and not self._running.is_set()

    async def command(self) -> KernelCommand | None:
        """The command to run, or None when the type's provider launches it itself (no switches then)."""
        return await kernel_command(self.kernel_type, python=self.python, switches=self.switches, finder=self._finder)

    # -- the kernel -----------------------------------------------------------

    async def start(self) -> None:
        """Find or launch the kernel (idempotent while it is alive); a dead one is replaced.

        Runs of :meth:`run` call it; call it first to know whether a new
        kernel was started (:attr:`started_new`) or to fail early.
        """
        if self._closed:
            raise KernelNannyError(f"{self!r} is closed")
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
            await self._launch_own()
            self.started_new = True

    async def _attach(self) -> None:
        assert self._attached is not None
        kernel = self._attached
        await self._dispose(shutdown=False)
        manager = ManagerClient(kernel.info)
        if not await _alive(manager):
            await manager.cleanup()
            ref = kernel.name or kernel.kernel_id[:12]
            raise KernelNannyError(f"kernel {ref} is not running; 'kernel-nanny restart {ref}' revives it")
        self._info, self._manager = kernel.info, manager

    async def _launch_own(self) -> None:
        self._info, self._manager = await launch_kernel(
            self.kernel_type,
            python=self.python,
            switches=self.switches,
            cwd=self.cwd,
            launch_params={"echo_output": False, **self._launch_params},
            finder=self._finder,
        )

    async def _find_or_start_group_kernel(self) -> None:
        name = self.name
        assert name is not None
        async with _name_lock(name):  # one process starts it; the others find it
            found = _find_named(name)
            if found is not None:
                manager = ManagerClient(found.info)
                if await _alive(manager):
                    log.debug("reusing kernel %s (%s)", name, found.kernel_id)
                    self._info, self._manager = found.info, manager
                    return
                log.info("replacing kernel %s (%s): it is dead or does not answer", name, found.kernel_id)
                await _retire(found, manager)
            self._info, self._manager = await launch_kernel(
                self.kernel_type,
                python=self.python,
                switches=self.switches,
                nanny=True,
                name=name,
                cwd=self.cwd or os.getcwd(),
                launch_params=self._launch_params,
                restart_policy=self._restart_policy,
                finder=self._finder,
            )
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
    ) -> int:
        """Run ``commands`` one after the other, each to completion; 0 if all ran, 1 at the first that raised.

        ``output_hook(msg)`` sees every output message as it arrives
        (:class:`OutputPrinter` prints them). ``timeout`` bounds each command
        (:exc:`~kernel_nanny.KernelTimeout`; the kernel is left as it is).
        Raises :exc:`~kernel_nanny.KernelDied` if the kernel dies meanwhile,
        unless :meth:`stop` killed it: the run then returns 1.
        """
        if self.running:
            raise KernelNannyError("this execution is already running commands")
        if isinstance(commands, str):
            commands = [commands]
        await self.start()
        assert self._manager is not None and self._info is not None
        self._running = asyncio.Event()
        self._stopping = False
        if self._client is None:
            self._client = KernelClient(self._info)
        death = asyncio.ensure_future(self._manager.wait())
        try:
            for code in commands:
                if self._stopping:
                    return FAILED
                result = await self._until_done_or_died(
                    self._client.execute_interactive(
                        code, output_hook=output_hook, stdin_hook=stdin_hook, timeout=timeout
                    ),
                    death,
                )
                if result is None or not result.ok:
                    return FAILED
            return OK
        finally:
            death.cancel()
            await asyncio.gather(death, return_exceptions=True)
            self._running.set()

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
        raise KernelDied("the kernel died while running the code", exit_code=status.exit_code, signal=status.signal)

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

    # -- lifetime -------------------------------------------------------------

    async def __aenter__(self) -> KernelExecution:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    def close(self) -> None:
        """Start closing (idempotent); :meth:`wait_closed` finishes it.

        A kernel launched for this execution is shut down; a group's kernel
        and an attached one keep running.
        """
        self._closed = True

    async def wait_closed(self) -> None:
        """Finish closing: shut down the execution's own kernel, close clients."""
        if self._teardown is None:
            self._teardown = asyncio.ensure_future(self._dispose(shutdown=True))
        await asyncio.shield(self._teardown)


async def _alive(manager: KernelManager) -> bool:
    try:
        return await manager.is_alive()
    except KernelNannyError:  # NannyUnavailable included
        return False


def _find_named(name: str) -> RunningKernel | None:
    return next((k for k in list_running_kernels() if k.name == name), None)


async def _retire(kernel: RunningKernel, manager: ManagerClient) -> None:
    """Get rid of a group kernel that cannot serve: ask its nanny to exit, else SIGKILL the nanny."""
    try:
        await manager.shutdown(now=True)
    except KernelNannyError:
        if pid_alive(kernel.nanny_pid):
            # The nanny does not answer: killing it takes its kernel along (the lifeline).
            with contextlib.suppress(ProcessLookupError):
                os.kill(kernel.nanny_pid, signal.SIGKILL)
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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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
        execution = cls.__new__(cls)
        BlockingTwin.__init__(execution, KernelExecution.attach(ref))
        return execution

    def __enter__(self) -> BlockingKernelExecution:
        return self

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

    start = blocking(KernelExecution.start)
    run = blocking(KernelExecution.run)
    interrupt = blocking(KernelExecution.interrupt)
    kill = blocking(KernelExecution.kill)
    stop = blocking(KernelExecution.stop)
