"""Kernels running behind nannies on this machine, found through their connection files.

Every nanny publishes ``kernel-<id>.json`` in the runtime directory with its
pid, its start time and ports. A file whose nanny process is gone is stale (the
nanny was SIGKILLed, the machine rebooted) and is removed when found. So is a
file whose pid now belongs to another process: a pid names whichever process
has it now, so nothing is signalled or adopted on a file's word until
:class:`ProcessIdentity` proves that the process is the nanny that wrote it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .._exceptions import AmbiguousKernel, NannyUnavailable, NoSuchKernel
from ..paths import nanny_state_dir, runtime_dir
from ..protocol import ipc_socket_paths

__all__ = [
    "NANNY_MODULE",
    "KernelRef",
    "ProcessIdentity",
    "RunningKernel",
    "find_running_kernel",
    "list_running_kernels",
    "match_kernels",
    "pid_alive",
    "proc_stat",
    "stat_fields",
    "unresponsive_nanny",
]

log = logging.getLogger("kernel_nanny.launch")

#: The module a nanny runs as (``python -m kernel_nanny.nanny``), which its command line shows.
NANNY_MODULE = "kernel_nanny.nanny"


@dataclass(frozen=True)
class ProcessIdentity:
    """A nanny process as it recorded itself: its pid and its start time.

    Once a nanny is gone its pid may go to an unrelated program, and a file
    naming that pid would have us adopt or signal the program. The start time
    (clock ticks after boot: field 22 of ``/proc/<pid>/stat``) tells the two
    apart, and the command line must still be a nanny's. What cannot be proven
    (no start time recorded, no ``/proc``) counts as not ours.
    """

    pid: int
    start_time: int | None

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        """The identity of process ``pid`` now (a nanny records its own with :meth:`of` ``(os.getpid())``)."""
        stat = proc_stat(pid)
        return cls(pid, None if stat is None else int(stat[19]))

    def is_nanny(self) -> bool:
        """Whether the process still runs as the nanny that was recorded (a zombie has ended)."""
        if not self._runs_as(proc_stat(self.pid)):
            return False
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            return False
        return NANNY_MODULE.encode() in argv

    def shown_running_by(self, stat: bytes) -> bool:
        """Whether ``stat``, the text of ``/proc/<pid>/stat`` read on the process's host (over SSH, say),
        shows this very process, still running (not a zombie, not another one with its pid)."""
        return self._runs_as(stat_fields(stat))

    def _runs_as(self, stat: list[bytes] | None) -> bool:
        return self.start_time is not None and stat is not None and stat[0] != b"Z" and int(stat[19]) == self.start_time

    def stopped(self) -> bool:
        """Whether the process is stopped (SIGSTOP, SIGTSTP, a debugger): it runs but cannot answer."""
        stat = proc_stat(self.pid)
        return stat is not None and stat[0] in (b"T", b"t")

    def signal_nanny(self, signum: int) -> bool:
        """Send ``signum`` if the process still is this nanny; False (nothing sent) if it is not.

        The pidfd is opened before the check, so the pid cannot pass to another
        process between the check and the signal.
        """
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        try:
            if not self.is_nanny():
                return False
            signal.pidfd_send_signal(pidfd, signum)
            return True
        except ProcessLookupError:
            return False
        finally:
            os.close(pidfd)


def proc_stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat_fields(stat.read())
    except OSError:
        return None


def stat_fields(stat: bytes) -> list[bytes] | None:
    """The fields of a ``/proc/<pid>/stat`` text after the command name (state first); None if it is not one."""
    fields = stat.rsplit(b")", 1)[-1].split() if b")" in stat else []
    return fields if len(fields) > 19 else None


@dataclass(frozen=True)
class RunningKernel:
    """One nanny's published connection file."""

    connection_file: Path
    info: dict[str, Any]

    @property
    def kernel_id(self) -> str:
        return str(self.info["kernel_id"])

    @property
    def name(self) -> str | None:
        return self.info.get("name")

    @property
    def kernel_type(self) -> str:
        return str(self.info.get("kernel_type", ""))

    @property
    def pool(self) -> str | None:
        """The key of the daemon pool this kernel waits in, unclaimed; None for a kernel someone launched."""
        pool = self.info.get("pool")
        return pool if isinstance(pool, str) and pool else None

    @property
    def nanny_pid(self) -> int:
        return int(self.info["nanny_pid"])

    @property
    def nanny(self) -> ProcessIdentity:
        start_time = self.info.get("nanny_start_time")
        return ProcessIdentity(self.nanny_pid, start_time if isinstance(start_time, int) else None)

    @property
    def log_file(self) -> Path:
        return nanny_state_dir(self.kernel_id, create=False) / "output.log"

    def nanny_alive(self) -> bool:
        """Whether the nanny that published this file still runs (not merely some process with its pid)."""
        return self.nanny.is_nanny()

    def unresponsive(self) -> NannyUnavailable:
        """The error for this kernel when its nanny runs but does not answer (see :func:`unresponsive_nanny`)."""
        return unresponsive_nanny(self.name or self.kernel_id[:12], self.nanny)


def unresponsive_nanny(ref: str, nanny: ProcessIdentity) -> NannyUnavailable:
    """The error for kernel ``ref`` whose nanny runs but does not answer.

    Its kernel may be alive and hold state: the message says so (not "not
    running"), and how to resume the nanny or end it.
    """
    why = "is stopped (SIGSTOP)" if nanny.stopped() else "does not answer"
    return NannyUnavailable(
        f"kernel {ref} is running, but its nanny (pid {nanny.pid}) {why}: 'kill -CONT {nanny.pid}' resumes "
        f"a stopped nanny; 'kernel-nanny kill {ref}' ends the nanny and its kernel"
    )


def list_running_kernels(directory: Path | None = None) -> list[RunningKernel]:
    """Every kernel whose nanny is alive, oldest file first; stale files are removed."""
    found = []
    folder = directory or runtime_dir()
    for path in sorted(folder.glob("kernel-*.json"), key=_mtime):
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict) or "nanny_pid" not in info or "kernel_id" not in info:
            continue  # a plain kernel's connection file, not a nanny's
        kernel = RunningKernel(path, info)
        if info.get("nanny_host", socket.gethostname()) != socket.gethostname():
            continue  # a copy of another machine's kernel file: not ours to judge or remove
        if kernel.nanny_alive():
            found.append(kernel)
        else:
            log.info(
                "removing stale files of kernel %s (its nanny %d is gone, or that pid is another process now)",
                kernel.kernel_id,
                kernel.nanny_pid,
            )
            _remove_files(folder, kernel)
    return found


class KernelRef(Protocol):
    """What :func:`match_kernels` reads of a kernel: a published connection file, a daemon's record..."""

    @property
    def kernel_id(self) -> str: ...

    @property
    def name(self) -> str | None: ...


K = TypeVar("K", bound=KernelRef)


def match_kernels(ref: str, kernels: Iterable[K], *, prefix: bool = True) -> list[K]:
    """The kernels ``ref`` means: those whose id or name it is, else those whose id it begins.

    An exact id or name wins over prefixes, so a kernel named ``3f`` is found
    even when ids start with ``3f`` too. ``prefix=False`` takes exact matches
    only (a group's name must not pick a kernel whose id merely begins with it).
    Callers say what none or several matches mean in their own words.
    """
    kernels = list(kernels)
    exact = [k for k in kernels if ref in (k.kernel_id, k.name)]
    if exact or not prefix:
        return exact
    return [k for k in kernels if k.kernel_id.startswith(ref)]


def find_running_kernel(ref: str, directory: Path | None = None) -> RunningKernel:
    """The running kernel whose id, id prefix or name is ``ref``; a clear error otherwise."""
    matches = match_kernels(ref, list_running_kernels(directory))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NoSuchKernel(f"no running kernel {ref!r} (see 'kernel-nanny ps')")
    ids = ", ".join(k.kernel_id[:12] for k in matches)
    raise AmbiguousKernel(f"{ref!r} matches several kernels ({ids}); give more of the id")


def _remove_files(folder: Path, kernel: RunningKernel) -> None:
    """A dead nanny's connection file, state directory and ipc socket files."""
    kernel.connection_file.unlink(missing_ok=True)
    shutil.rmtree(folder / f"nanny-{kernel.kernel_id}", ignore_errors=True)
    for path in ipc_socket_paths(kernel.info):  # the kernel's channels and the nanny's sockets
        path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but somebody else's
        return True
    stat = proc_stat(pid)
    return stat is None or stat[0] != b"Z"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
