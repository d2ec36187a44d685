"""The ipykernel of the Python running kernel-nanny, as ``pyimport/kernel``.

Useful when no kernelspec is installed (a fresh virtualenv, a container): the
kernel is whatever ``python -m ipykernel_launcher`` gives in this environment.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from .._exceptions import NoSuchKernelType
from ..launch import KernelCommand, LaunchResult, launch_local
from ..launch.command import ipykernel_command
from .provider import KernelProvider

__all__ = ["PyImportProvider"]


class PyImportProvider(KernelProvider):
    """Offers ``pyimport/kernel`` when ipykernel is importable here."""

    id = "pyimport"

    def __init__(self, executable: str = sys.executable) -> None:
        self.executable = executable

    def kernel_command(self, name: str = "kernel") -> KernelCommand:
        if name != "kernel":
            raise NoSuchKernelType(f"pyimport/{name}")
        return ipykernel_command(self.executable)

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if importlib.util.find_spec("ipykernel") is None:
            return
        version = ".".join(map(str, sys.version_info[:3]))
        yield (
            "kernel",
            {
                "display_name": f"Python {version} (kernel-nanny's environment)",
                "language": "python",
                "argv": self.kernel_command().argv,
                "interrupt_mode": "signal",
                "metadata": dict(self.kernel_command().metadata),
            },
        )

    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None
    ) -> LaunchResult:
        return await launch_local(
            self.kernel_command(name), kernel_name="pyimport/kernel", cwd=cwd, launch_params=launch_params
        )
