"""What a batch job is told about the kernel it runs: :class:`JobKernel`, in the job's environment.

The launcher (a scheduler provider such as Slurm's) writes it into the batch
script; ``python -m kernel_nanny.nanny.in_job`` (:data:`JOB_MODULE`) reads it
on the node.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass

from .._exceptions import LaunchError
from .callback import CallbackAddress

__all__ = ["JOB_ENV", "JOB_MODULE", "JobKernel", "node_address"]

#: The module a job runs (``python -m``) to start its nanny.
JOB_MODULE = "kernel_nanny.nanny.in_job"

#: The environment variable that carries :class:`JobKernel` (JSON) into the job.
JOB_ENV = "KERNEL_NANNY_JOB"


@dataclass(frozen=True)
class JobKernel:
    """What the launcher tells the job: the kernel type to run, where to bind, whom to call back."""

    kernel: str
    callback: CallbackAddress
    #: The address to bind on the node; None: the node's own (its hostname's) address.
    bind_address: str | None = None
    startup_timeout: float | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "kernel": self.kernel,
                "callback": json.loads(self.callback.to_json()),
                "bind_address": self.bind_address,
                "startup_timeout": self.startup_timeout,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> JobKernel:
        try:
            data = json.loads(text)
            return cls(
                kernel=str(data["kernel"]),
                callback=CallbackAddress.from_json(json.dumps(data["callback"])),
                bind_address=data.get("bind_address"),
                startup_timeout=data.get("startup_timeout"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LaunchError(
                f"${JOB_ENV} does not describe a kernel ({exc}): this module runs in jobs kernel-nanny submits"
            ) from None


def node_address(toward: str | None = None) -> str:
    """This machine's address as others reach it: the one on its route to ``toward`` (a job: the address
    its launcher can connect back to), else its hostname's (which may be loopback: 127.0.1.1 on Debian)."""
    if toward:
        try:
            with socket.socket(socket.AF_INET6 if ":" in toward else socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((toward, 9))  # sends nothing: only picks the route, and so the source address
                return str(probe.getsockname()[0])
        except OSError:
            pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return socket.gethostname()
