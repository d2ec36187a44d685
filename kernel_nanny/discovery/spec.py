"""Kernel types from kernelspecs: ``kernel.json`` files in the Jupyter data path.

The search follows jupyter_client's rules: every ``kernels/`` directory of
``jupyter_path()`` in order (so a user's spec shadows a system one of the same
name), names are case-insensitive, and ipykernel's built-in ``python3`` spec is
offered when no directory defines one.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_path

from .._exceptions import LaunchError, NoSuchKernelType
from ..config import ConfigTable
from ..launch import KernelCommand, LaunchResult, launch_local
from ..launch.command import ipykernel_command
from .provider import KernelProvider

__all__ = ["KernelSpecProvider", "find_kernel_specs"]

log = logging.getLogger("kernel_nanny.discovery")

_VALID_NAME = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)
NATIVE_KERNEL_NAME = "python3"


def find_kernel_specs(search_path: list[str] | None = None) -> dict[str, Path]:
    """Map each kernelspec name to its directory, first directory in the path winning."""
    found: dict[str, Path] = {}
    for directory in search_path if search_path is not None else jupyter_path("kernels"):
        try:
            entries = sorted(Path(directory).iterdir())
        except OSError:
            continue
        for entry in entries:
            name = entry.name.lower()
            if name in found or not _VALID_NAME.match(entry.name) or not (entry / "kernel.json").is_file():
                continue
            found[name] = entry
    if search_path is None and NATIVE_KERNEL_NAME not in found:
        native = _ipykernel_resources()
        if native is not None:
            found[NATIVE_KERNEL_NAME] = native
    return found


def _ipykernel_resources() -> Path | None:
    """ipykernel's bundled spec directory, found without importing ipykernel."""
    spec = importlib.util.find_spec("ipykernel")
    if spec is None or not spec.submodule_search_locations:
        return None
    resources = Path(next(iter(spec.submodule_search_locations))) / "resources"
    return resources if resources.is_dir() else None


def _native_spec() -> dict[str, Any]:
    """ipykernel's spec for the running Python (what ``ipykernel.kernelspec`` would write)."""
    command = ipykernel_command()
    return {
        "argv": command.argv,
        "display_name": f"Python {sys.version_info[0]} (ipykernel)",
        "language": "python",
        "metadata": dict(command.metadata),
    }


def read_kernel_spec(directory: Path, name: str) -> dict[str, Any]:
    """Read ``kernel.json``; raise ``ValueError`` saying what is wrong with it."""
    if not (directory / "kernel.json").exists() and name == NATIVE_KERNEL_NAME:
        return _native_spec()
    with open(directory / "kernel.json", "rb") as file:
        spec = json.load(file)
    if not isinstance(spec, dict):
        raise ValueError("kernel.json must hold a JSON object")
    argv = spec.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("'argv' must be a non-empty list of strings")
    if spec.get("interrupt_mode", "signal") not in ("signal", "message"):
        raise ValueError("'interrupt_mode' must be 'signal' or 'message'")
    for key in ("env", "metadata"):
        if not isinstance(spec.get(key, {}), dict):
            raise ValueError(f"'{key}' must be an object")
    return spec


class KernelSpecProvider(KernelProvider):
    """Offers every installed kernelspec as ``spec/<name>``."""

    id = "spec"

    def __init__(self, search_path: list[str] | None = None) -> None:
        self.search_path = search_path

    def load_config(self, config: Mapping[str, Any]) -> None:
        """``search_path``: the kernelspec directories to search instead of Jupyter's data path."""
        table = ConfigTable.of(config, "providers.spec")
        table.check_keys({"search_path"})
        search_path = table.string_list("search_path", None)
        if search_path is not None:
            self.search_path = [str(Path(p).expanduser()) for p in search_path]

    def _specs(self) -> Iterator[tuple[str, Path, dict[str, Any]]]:
        for name, directory in find_kernel_specs(self.search_path).items():
            try:
                yield name, directory, read_kernel_spec(directory, name)
            except (OSError, ValueError) as exc:
                log.warning("skipping kernelspec %s in %s: %s", name, directory, exc)

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for name, directory, spec in self._specs():
            yield (
                name,
                {
                    "display_name": spec.get("display_name", name),
                    "language": spec.get("language", ""),
                    "argv": spec["argv"],
                    "interrupt_mode": spec.get("interrupt_mode", "signal"),
                    "metadata": spec.get("metadata", {}),
                    "resource_dir": str(directory),
                },
            )

    def kernel_command(self, name: str) -> KernelCommand:
        directory = find_kernel_specs(self.search_path).get(name.lower())
        if directory is None:
            raise NoSuchKernelType(f"spec/{name}")
        try:
            spec = read_kernel_spec(directory, name.lower())
        except (OSError, ValueError) as exc:
            raise LaunchError(f"kernelspec {name} in {directory} is invalid: {exc}") from exc
        return KernelCommand(
            argv=spec["argv"],
            env=spec.get("env", {}),
            resource_dir=str(directory),
            interrupt_mode=spec.get("interrupt_mode", "signal"),
            metadata=spec.get("metadata", {}),
        )

    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None
    ) -> LaunchResult:
        command = self.kernel_command(name)
        return await launch_local(command, kernel_name=f"spec/{name}", cwd=cwd, launch_params=launch_params)
