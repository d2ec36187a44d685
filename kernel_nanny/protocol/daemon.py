"""The daemon API's vocabulary.

Requests are Jupyter-format messages ``<name>_request`` sent to the daemon's
ROUTER socket, signed with the daemon's API key; each is answered by
``<name>_reply`` with ``status: ok`` or ``status: error`` (``ename``, ``evalue``).
"""

from __future__ import annotations

from typing import Any, TypedDict

from .nanny import NannyInfo

__all__ = ["DAEMON_PROTOCOL_VERSION", "DAEMON_REQUESTS", "KernelEntry"]

#: Version of the daemon API; the major part changes on incompatible changes.
DAEMON_PROTOCOL_VERSION = "1.2"

DAEMON_REQUESTS = (
    "daemon_info",
    "list_kernel_types",
    "launch",
    "list_kernels",
    "get_kernel",
    "shutdown_kernel",
    "pools",
    "launch_progress",
    "cancel_launch",
    "list_launches",
    "cancel_launches",
)


class _KernelRecord(TypedDict):
    kernel_id: str
    name: str | None
    kernel_type: str
    connection_file: str
    nanny_pid: int
    #: When the daemon launched or adopted the kernel (epoch seconds).
    created: float
    connection_info: dict[str, Any]
    #: The key of the pool the kernel waits in, unclaimed (listed only when asked for ``pooled``); None once taken.
    pool: str | None


class KernelEntry(_KernelRecord, total=False):
    """A kernel as ``list_kernels``, ``get_kernel`` and ``launch`` describe it."""

    #: The nanny's ``info`` (None if it did not answer); only when asked for (``get_kernel`` always asks).
    info: NannyInfo | None
