"""The nanny's start-up contract: how a starter hands a nanny its kernel, and how the nanny reports back.

Both sides of the handshake live here, side by side:

1. The starter runs :func:`nanny_argv` (``python -m kernel_nanny.nanny``) with
   pipes for stdin and stdout, and writes the *handover* to its stdin: one JSON
   document with the kernel id, the :class:`~kernel_nanny.LaunchRequest` and
   what the request resolved to (the kernel's command, or the provider that
   launches it, pickled), then closes stdin. Stdin rather than argv, so the
   kernel's environment never shows in ``ps``; the resolved kernel rather than a
   type id, so the nanny never builds a finder (and a finder built in code, with
   providers no entry point names, works with supervision).
2. The nanny forks away from the starter (init adopts it), starts the kernel,
   and writes one *report* line to its stdout: ``{"status": "ready",
   "connection_file": ...}`` once the kernel is ready, or ``{"status": "error",
   "ename": ..., "evalue": ...}``; then it closes stdout, so the starter reads to
   EOF.

Light on purpose (standard library and small modules only): the nanny reads
the handover before it imports asyncio or zmq, and starts a command kernel at once.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import LaunchError
from ..client.running import NANNY_MODULE
from ..discovery.resolved import ResolvedKernel
from ..launch.command import KernelCommand
from ..launch.output import format_output_tail
from ..launch.params import LaunchParams
from ..launch.request import LaunchRequest
from ..paths import nanny_state_dir
from ..protocol.errors import error_from_reply, error_reply

__all__ = ["NANNY_MODULE", "Handover", "kernel_params", "nanny_argv", "read_report", "write_report"]


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


def read_report(output: bytes, *, kernel_type: str, nanny_log: Path) -> Path:
    """The starter's side: the connection file a ready nanny reported, or its error raised.

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
