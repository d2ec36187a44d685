"""Kernels running behind nannies on this machine, found through their connection files.

Every nanny publishes ``kernel-<id>.json`` in the runtime directory with its
pid and ports. A file whose nanny process is gone is stale (the nanny was
SIGKILLed, the machine rebooted) and is removed when found.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .._exceptions import AmbiguousKernel, NoSuchKernel
from ..paths import nanny_state_dir, runtime_dir
from ..protocol import ipc_socket_paths

__all__ = [
    "KernelRef",
    "RunningKernel",
    "find_running_kernel",
    "list_running_kernels",
    "match_kernels",
    "pid_alive",
]

log = logging.getLogger("kernel_nanny.launch")


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
    def nanny_pid(self) -> int:
        return int(self.info["nanny_pid"])

    @property
    def log_file(self) -> Path:
        return nanny_state_dir(self.kernel_id, create=False) / "output.log"

    def nanny_alive(self) -> bool:
        return pid_alive(self.nanny_pid)


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
            log.info("removing stale files of kernel %s (its nanny %d is gone)", kernel.kernel_id, kernel.nanny_pid)
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
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
