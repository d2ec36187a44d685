"""The daemon API's vocabulary.

Requests are Jupyter-format messages ``<name>_request`` sent to the daemon's
ROUTER socket, signed with the daemon's API key; each is answered by
``<name>_reply`` with ``status: ok`` or ``status: error`` (``ename``, ``evalue``).
"""

from __future__ import annotations

__all__ = ["DAEMON_PROTOCOL_VERSION", "DAEMON_REQUESTS"]

#: Version of the daemon API; the major part changes on incompatible changes.
DAEMON_PROTOCOL_VERSION = "1.0"

DAEMON_REQUESTS = (
    "daemon_info",
    "list_kernel_types",
    "launch",
    "list_kernels",
    "get_kernel",
    "shutdown_kernel",
)
