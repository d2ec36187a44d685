"""The nanny's start-up contract: how a starter hands a nanny its kernel, and how the nanny reports back.

Both sides of the handshake live here, side by side:

1. The starter runs :func:`nanny_argv` (``python -m kernel_nanny.nanny``) with
   pipes for stdin and stdout (or, when a fork server runs, has it fork the
   same nanny with those pipes, its modules already imported:
   :mod:`kernel_nanny.nanny.forkserver`), and writes the *handover* to its stdin: one JSON
   document with the kernel id, the :class:`~kernel_nanny.LaunchRequest` and
   what the request resolved to (the kernel's command, or the provider that
   launches it, pickled), then closes stdin. Stdin rather than argv, so the
   kernel's environment never shows in ``ps``; the resolved kernel rather than a
   type id, so the nanny never builds a finder (and a finder built in code, with
   providers no entry point names, works with supervision).
2. The nanny forks away from the starter (init adopts it; not with
   ``--no-detach``, as in a batch job, where the job must last as long as the
   nanny; a forked nanny is away already), starts the kernel, and writes one
   *report* line to its stdout:
   ``{"status": "ready", "connection_file": ...}`` once the kernel is ready, or
   ``{"status": "error", "ename": ..., "evalue": ...}``; then it closes stdout,
   so the starter reads to EOF. Before it, *progress* lines
   (``{"status": "progress", "event": "kernel_pending", "content": ...}``: a
   provider's :func:`~kernel_nanny.launch.progress.report_pending`, e.g. a
   queued Slurm job) tell the starter what the launch waits for.

:func:`spawn_nanny` is the starter's side, :func:`write_progress` and
:func:`write_report` the nanny's.

Light on purpose (standard library and small modules only): the nanny reads
the handover before it imports asyncio or zmq, and starts a command kernel at once.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from .._exceptions import LaunchError
from ..client.running import NANNY_MODULE
from ..discovery.resolved import ResolvedKernel
from ..launch.command import KernelCommand
from ..launch.output import format_output_tail
from ..launch.params import LaunchParams
from ..launch.request import LaunchRequest
from ..paths import nanny_state_dir, open_private_file
from ..protocol.errors import error_from_reply, error_reply

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "NANNY_MODULE",
    "Handover",
    "kernel_params",
    "nanny_argv",
    "read_report",
    "spawn_nanny",
    "write_progress",
    "write_report",
]

log = logging.getLogger("kernel_nanny.launch")


def nanny_argv(python: str = sys.executable) -> list[str]:
    """The command line of a nanny process (its kernel comes on stdin: :class:`Handover`)."""
    return [python, "-m", NANNY_MODULE]


def kernel_params(kernel_id: str, params: LaunchParams) -> LaunchParams:
    """The launch parameters a nanny gives its kernel: the connection file in the nanny's private directory
    (the nanny publishes its own, with its ports), and the kernel process's output captured (the nanny relays
    it as events and logs it) rather than echoed."""
    private = nanny_state_dir(kernel_id) / "kernel.json"
    return LaunchParams.from_mapping({**params.to_dict(), "connection_file": str(private), "echo_output": False})


@dataclass(frozen=True)
class Handover:
    """What a starter gives a new nanny: the kernel's id, the request, and what runs the kernel."""

    kernel_id: str
    request: LaunchRequest
    resolved: ResolvedKernel

    def encode(self) -> bytes:
        """The bytes written to the nanny's stdin.

        Raises :exc:`~kernel_nanny.LaunchError` for a provider that cannot be
        pickled (give it a ``kernel_command()`` or make its state picklable).
        """
        resolved: dict[str, Any] = {"name": self.resolved.name, "command": None, "provider": None}
        if self.resolved.command is not None:
            resolved["command"] = self.resolved.command.to_dict()
        else:
            provider = self.resolved.provider
            if type(provider).__module__ == "__main__":
                raise LaunchError(
                    f"kernel provider {getattr(provider, 'id', provider)!r} is defined in the script being run, "
                    "which a nanny cannot import: move it into a module, or give it a kernel_command()"
                )
            try:
                blob = pickle.dumps(self.resolved.provider)
            except Exception as exc:
                provider = self.resolved.provider
                raise LaunchError(
                    f"kernel provider {getattr(provider, 'id', provider)!r} cannot be handed to a nanny ({exc}): "
                    "define it at module level with picklable state, or give it a kernel_command()"
                ) from exc
            resolved["provider"] = base64.b64encode(blob).decode("ascii")
        document = {"kernel_id": self.kernel_id, "request": self.request.to_dict(), "resolved": resolved}
        return json.dumps(document).encode()

    @classmethod
    def decode(cls, data: bytes) -> Handover:
        """Read what :meth:`encode` wrote (the nanny side). Raises ``ValueError`` if it is not a handover."""
        document = json.loads(data)
        if not isinstance(document, dict) or not {"kernel_id", "request", "resolved"} <= set(document):
            raise ValueError("the nanny's stdin holds no handover (it is started by kernel-nanny, not by hand)")
        resolved = document["resolved"]
        if resolved.get("command") is not None:
            kernel = ResolvedKernel(command=KernelCommand.from_dict(resolved["command"]))
        else:
            provider = pickle.loads(base64.b64decode(resolved["provider"]))  # from our own starter, same user
            kernel = ResolvedKernel(provider=provider, name=str(resolved.get("name", "")))
        return cls(str(document["kernel_id"]), LaunchRequest.from_dict(document["request"]), kernel)


def write_progress(event: str, content: Mapping[str, Any]) -> None:
    """A progress line for the starter (before the report; ignored after it, when stdout is /dev/null)."""
    line = {"status": "progress", "event": event, "content": dict(content)}
    try:
        os.write(1, json.dumps(line).encode() + b"\n")
    except OSError:
        pass


def write_report(*, connection_file: Path | None = None, error: BaseException | None = None) -> None:
    """The nanny's one report line (ready, or the error), then stdout is closed so the starter sees EOF."""
    if error is None:
        report: dict[str, Any] = {"status": "ready", "connection_file": str(connection_file)}
    else:
        report = error_reply(error)
    try:
        os.write(1, json.dumps(report).encode() + b"\n")
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


@overload
async def spawn_nanny(
    handover: Handover,
    *,
    nanny_log: Path,
    timeout: float,
    detach: Literal[True] = True,
) -> tuple[Path, None]: ...


@overload
async def spawn_nanny(
    handover: Handover, *, nanny_log: Path, timeout: float, detach: Literal[False]
) -> tuple[Path, asyncio.subprocess.Process]: ...


async def spawn_nanny(
    handover: Handover, *, nanny_log: Path, timeout: float, detach: bool = True
) -> tuple[Path, asyncio.subprocess.Process | None]:
    """The starter's side: start a nanny with ``handover``; its connection file once it is ready.

    A detached nanny is forked by the fork server listening at
    :func:`~kernel_nanny.nanny.forkserver.default_socket_path` if one runs, its
    code already imported; else (none runs, it refuses, it runs older code
    than is installed) it is spawned as ``python -m kernel_nanny.nanny``,
    whose short-lived parent of the fork is reaped here. Either way it is
    nobody's child to wait for: the second item is None. With ``detach=False``
    the nanny is always spawned, and the process returned is the nanny itself,
    for the caller to wait on.

    The two ways differ only in how the process is made: the handover, the
    progress lines (passed on to this launch's listener,
    :mod:`kernel_nanny.launch.progress`) and the report travel the same pipes.
    A starter that gives up (cancelled, e.g. by Ctrl-C, or out of time) stops
    the nanny and waits for it to exit, so that nothing the launch started
    (a queued Slurm job, a container) outlives the attempt.
    """
    import asyncio

    from .._tasks import wait_for
    from ..launch.progress import report

    kernel_type = handover.request.kernel_type
    data = handover.encode()  # first: a kernel that cannot be handed over starts no process
    created = await _fork_nanny(nanny_log) if detach else None
    if created is None:
        created = await _spawn_nanny(nanny_log, detach)
    nanny = _NannyHandle()
    stdout = created.stdout

    async def report_line() -> bytes:
        while True:
            line = await stdout.readline()
            try:
                document = json.loads(line)
            except ValueError:
                return line + await stdout.read()  # not a progress line: the report (or garbage) follows
            if not isinstance(document, dict) or document.get("status") != "progress":
                await stdout.read()  # the nanny closes its stdout after the report: read to EOF
                return line
            if document.get("event") == NANNY_STARTED:
                nanny.found(int(document["content"]["pid"]))
            else:
                report(str(document.get("event")), document.get("content") or {})

    try:
        created.stdin.write(data)
        await created.stdin.drain()
        created.stdin.close()
        output = await wait_for(report_line(), timeout)
    except (BrokenPipeError, ConnectionResetError):
        output = b""  # the nanny died before reading its handover: its log says why
    except asyncio.TimeoutError:
        await nanny.stop()
        raise LaunchError(f"the nanny for {kernel_type} did not report within {timeout:g} s") from None
    except asyncio.CancelledError:
        await nanny.stop()
        raise
    finally:
        nanny.close()
        await created.settle()
    try:
        return read_report(output, kernel_type=kernel_type, nanny_log=nanny_log), created.child
    except BaseException:
        if created.child is not None:
            await created.child.wait()
        raise


@dataclass
class _NannyProcess:
    """A nanny process just made, spawned or forked: the pipes to its stdin and stdout, and what to wait for."""

    stdin: asyncio.StreamWriter
    stdout: asyncio.StreamReader
    #: What the starter waits for when the report is in: the short-lived parent of a detached spawned nanny.
    short_lived: asyncio.subprocess.Process | None = None
    #: The nanny itself, when it stays the starter's child (``detach=False``).
    child: asyncio.subprocess.Process | None = None
    #: Closes the read end of stdout that a forked nanny's starter made (asyncio's own pipes close themselves).
    close_stdout: Callable[[], None] | None = None

    async def settle(self) -> None:
        """Once the report is in, or the start given up: our pipe ends closed, a short-lived parent reaped."""
        self.stdin.close()
        if self.close_stdout is not None:
            self.close_stdout()
        if self.short_lived is not None:
            await self.short_lived.wait()


async def _spawn_nanny(nanny_log: Path, detach: bool) -> _NannyProcess:
    """Spawn ``python -m kernel_nanny.nanny``: detached (it forks away), or staying our child."""
    import asyncio

    with os.fdopen(open_private_file(nanny_log), "ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            *nanny_argv(sys.executable),
            *([] if detach else ["--no-detach"]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            start_new_session=detach,
        )
    assert process.stdin is not None and process.stdout is not None
    if detach:
        return _NannyProcess(process.stdin, process.stdout, short_lived=process)
    return _NannyProcess(process.stdin, process.stdout, child=process)


async def _fork_nanny(nanny_log: Path) -> _NannyProcess | None:
    """A nanny forked by the runtime directory's fork server, or None: spawn it.

    The nanny's stdin and stdout are pipes made here, its stderr the nanny log, as for a spawned nanny; the
    server gets copies of their far ends, and the handover is written only once it forked (a nanny forked
    for a starter that then gave up reads an empty handover, and exits).
    """
    import asyncio

    from .forkserver import default_socket_path, request_fork

    path = default_socket_path()
    if not os.path.exists(path):
        return None  # the common case without a daemon: not even a connection attempt
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    ours = [stdin_w, stdout_r]
    try:
        log_fd = open_private_file(nanny_log)
        try:
            reply = await request_fork(path, nanny_argv(sys.executable), (stdin_r, stdout_w, log_fd))
        finally:
            os.close(log_fd)
        if not reply.forked:
            log.log(
                logging.INFO if reply.status == "stale" else logging.DEBUG,
                "spawning the nanny: the fork server at %s did not fork it (%s: %s)",
                path,
                reply.status,
                reply.reason,
            )
            return None
        loop = asyncio.get_running_loop()
        stdout = asyncio.StreamReader()
        read_pipe = os.fdopen(stdout_r, "rb", buffering=0)
        ours.remove(stdout_r)
        try:
            transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdout), read_pipe)
        except BaseException:
            read_pipe.close()
            raise
        write_pipe = os.fdopen(stdin_w, "wb", buffering=0)
        ours.remove(stdin_w)
        try:
            write_transport, protocol = await loop.connect_write_pipe(
                lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), write_pipe
            )
        except BaseException:
            write_pipe.close()
            transport.close()
            raise
        stdin = asyncio.StreamWriter(write_transport, protocol, None, loop)
        log.debug("nanny %d forked by the fork server at %s", reply.pid, path)
        return _NannyProcess(stdin, stdout, close_stdout=transport.close)
    finally:
        for fd in (stdin_r, stdout_w, *ours):
            os.close(fd)


#: The progress event a nanny sends first, with its pid: whom to stop if the starter gives up.
NANNY_STARTED = "nanny_started"


class _NannyHandle:
    """The nanny being started, as the starter knows it: a pidfd from its ``nanny_started`` line."""

    def __init__(self) -> None:
        self._pidfd: int | None = None

    def found(self, pid: int) -> None:
        self.close()
        try:
            self._pidfd = os.pidfd_open(pid)
        except (OSError, AttributeError):  # gone already, or not Linux: nothing to stop
            self._pidfd = None

    def close(self) -> None:
        """Let go of the nanny (the start is over): the pidfd is closed, the process left alone."""
        if self._pidfd is not None:
            pidfd, self._pidfd = self._pidfd, None
            os.close(pidfd)

    async def stop(self) -> None:
        """SIGTERM the nanny (it abandons its launch and cleans up) and wait for it to exit."""
        import asyncio
        import signal

        from ..defaults import NANNY_ABANDON_TIMEOUT

        if self._pidfd is None:
            return
        pidfd, self._pidfd = self._pidfd, None
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            loop = asyncio.get_running_loop()
            exited = asyncio.Event()
            loop.add_reader(pidfd, exited.set)  # a pidfd turns readable when its process exits
            try:
                await asyncio.wait_for(exited.wait(), NANNY_ABANDON_TIMEOUT)
            except asyncio.TimeoutError:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            finally:
                loop.remove_reader(pidfd)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)


def read_report(output: bytes, *, kernel_type: str, nanny_log: Path) -> Path:
    """The connection file a ready nanny reported, or its error raised.

    The end of ``nanny_log`` explains a nanny that died without reporting.
    """
    try:
        report = json.loads(output.split(b"\n", 1)[0])
    except ValueError:
        try:
            tail = format_output_tail(nanny_log.read_text(errors="replace"), intro="its log")
        except OSError:
            tail = ""
        raise LaunchError(f"the nanny for {kernel_type} exited without reporting{tail}") from None
    if report.get("status") == "ready":
        return Path(report["connection_file"])
    raise error_from_reply(report)
