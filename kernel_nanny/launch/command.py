"""What to run for a kernel: its argv template, environment and working directory."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from string import Template
from typing import Any

__all__ = ["KernelCommand", "ipykernel_command"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
_THIS_PYTHON = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}


@dataclass(frozen=True)
class KernelCommand:
    """A kernel's launch recipe, as a kernelspec describes it.

    ``argv`` may contain ``{connection_file}``, ``{resource_dir}`` and
    ``{prefix}``; ``env`` values may refer to the launcher's environment as
    ``${VAR}``. Unknown ``{...}`` placeholders are left alone, as in jupyter_client.
    """

    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    resource_dir: str = ""
    interrupt_mode: str = "signal"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def format_argv(self, connection_file: str) -> list[str]:
        """The argv to run, with ``{connection_file}``, ``{resource_dir}`` and ``{prefix}`` filled in.

        A bare ``python`` (``python3``, ``python3.11``) means the running Python,
        as in jupyter_client: ipykernel's own spec says ``python``, and a PATH
        lookup could find an interpreter without ipykernel. ipykernel run by the
        running Python (``-m ipykernel_launcher``) runs through
        :mod:`kernel_nanny.ipykernel_launcher`, whose iopub holds a burst for a
        slow subscriber instead of dropping it; kernel-nanny is importable there.
        """
        values = {"connection_file": connection_file, "resource_dir": self.resource_dir, "prefix": sys.prefix}
        argv = [_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), arg) for arg in self.argv]
        if argv and argv[0] in _THIS_PYTHON:
            argv[0] = sys.executable
        if argv[0] == sys.executable and argv[1:3] == ["-m", "ipykernel_launcher"]:
            argv[2] = "kernel_nanny.ipykernel_launcher"
        return argv

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The kernel's full environment: ours, then the spec's (``${VAR}`` expanded), then ``extra``."""
        env = dict(os.environ)
        env.update({key: Template(str(value)).safe_substitute(os.environ) for key, value in self.env.items()})
        env.update(extra or {})
        return env

    def to_dict(self) -> dict[str, Any]:
        """The command as a JSON-ready dict (what :meth:`from_dict` takes)."""
        return {**asdict(self), "env": dict(self.env), "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelCommand:
        """A command from a dict such as a kernelspec's (``argv`` required; unknown keys ignored)."""
        argv = data.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"a kernel command needs 'argv', a non-empty list of strings, got {argv!r}")
        return cls(
            argv=list(argv),
            env=dict(data.get("env") or {}),
            resource_dir=str(data.get("resource_dir") or ""),
            interrupt_mode=str(data.get("interrupt_mode") or "signal"),
            metadata=dict(data.get("metadata") or {}),
        )


def ipykernel_command(python: str = sys.executable) -> KernelCommand:
    """The command that runs ipykernel with ``python``: what ipykernel's own kernelspec says.

    ipykernel supports CurveZMQ (``supported_encryption``), so its tcp kernels
    are encrypted by default; it takes long unix-socket paths
    (``supported_transports``), so it gets ``ipc`` by default; its interrupts are signals.
    """
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return KernelCommand(
        argv=argv,
        metadata={"supported_encryption": ["curve"], "supported_transports": ["ipc", "tcp"]},
    )
