"""Another daemon's kernel types, offered as ``<name>/<type id>`` (``gpu-box/spec/python3``).

Configured per daemon with the client connection file that ``kernel-nanny keys
new`` made on that machine (for a remote daemon), or the local daemon's
discovery file. Kernels launched through it run there, behind nannies there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._exceptions import KernelNannyError
from ..client.daemon import BlockingDaemonClient, DaemonClient
from ..defaults import DAEMON_LIST_TIMEOUT
from ..protocol import LaunchResult
from .provider import KernelProvider

__all__ = ["DaemonProvider"]

log = logging.getLogger("kernel_nanny.discovery")


class DaemonProvider(KernelProvider):
    supervises_kernels = True

    def __init__(self, name: str, connection_file: str | Path) -> None:
        self.id = name  # type: ignore[misc]  # each configured daemon is its own provider
        self.connection_file = Path(connection_file)

    def __repr__(self) -> str:
        return f"<DaemonProvider {self.id} via {self.connection_file}>"

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            with BlockingDaemonClient.from_file(self.connection_file, timeout=DAEMON_LIST_TIMEOUT) as client:
                types = client.list_kernel_types()
        except KernelNannyError as exc:
            log.warning("daemon %s is not reachable: %s", self.id, exc)
            return
        for entry in types:
            attributes = {k: v for k, v in entry.items() if k != "id"}
            yield entry["id"], attributes

    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None
    ) -> LaunchResult:
        async with DaemonClient.from_file(self.connection_file) as client:
            return await client.launch(name, cwd=cwd, launch_params=launch_params)
