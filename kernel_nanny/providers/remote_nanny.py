"""A nanny on another machine (an SSH host, a Slurm node), as the manager that drives it sees it.

The SSH and Slurm managers both own a kernel through a remote nanny: they
talk to it with a :class:`~kernel_nanny.ManagerClient`, hand clients the
kernel's part of its connection info, relay the kernel process's own output
that its ``stream`` events carry, and remember its last death and whether it
is exiting. :class:`RemoteNanny` is that shared part.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from .._tasks import wait_for
from ..client.manager import ManagerClient
from ..launch.output import OutputListener, OutputRelay
from ..protocol import ExitStatus, Message
from ..protocol.connection import CHANNELS
from .ssh_tunnel import SSHTunnel

__all__ = ["KERNEL_PORT_KEYS", "NANNY_PORT_KEYS", "RemoteNanny", "forward_ports"]

KERNEL_PORT_KEYS = tuple(f"{channel}_port" for channel in CHANNELS)
NANNY_PORT_KEYS = ("nanny_control_port", "nanny_events_port")
#: Connection-info keys that describe the kernel itself (the rest is the nanny's).
_KERNEL_KEYS = (
    "transport",
    "ip",
    "key",
    "signature_scheme",
    "kernel_name",
    "curve_publickey",
    "curve_secretkey",
    "curve_serverkey",
)


class RemoteNanny:
    """A remote nanny reached at ``nanny_info`` (its ports possibly forwarded here)."""

    def __init__(self, nanny_info: Mapping[str, Any]) -> None:
        self.client = ManagerClient(nanny_info)
        #: What clients of the kernel connect to: the kernel's channels (no nanny sockets).
        self.connection_info: dict[str, Any] = {
            key: value for key, value in nanny_info.items() if key in _KERNEL_KEYS or key in KERNEL_PORT_KEYS
        }
        #: The content of the last ``kernel_died`` event (empty: none yet).
        self.last_death: dict[str, Any] = {}
        self._exiting = asyncio.Event()
        self._output = OutputRelay(echo=False)
        self.client.add_event_handler(self._on_event)

    @property
    def last_exit(self) -> ExitStatus | None:
        """The kernel's last death, as the nanny reported it."""
        return ExitStatus.from_dict(self.last_death) if self.last_death else None

    def add_output_listener(self, listener: OutputListener) -> None:
        """Call ``listener(name, data)`` with the kernel process's own stdout/stderr."""
        self._output.add_listener(listener)

    def _on_event(self, event: Message) -> None:
        content = event.content
        if event.msg_type == "stream":
            self._output.feed(str(content.get("name", "stdout")), str(content.get("text", "")).encode())
        elif event.msg_type == "kernel_died":
            self.last_death = dict(content)
        elif event.msg_type == "nanny_exiting":
            self._exiting.set()

    @property
    def exiting(self) -> bool:
        """The nanny said ``nanny_exiting``."""
        return self._exiting.is_set()

    async def until_exiting(self, timeout: float) -> bool:
        """Whether the nanny says ``nanny_exiting`` within ``timeout`` seconds (at once if it did)."""
        try:
            await wait_for(self._exiting.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop talking to the nanny (it keeps running)."""
        self.client.close()
        await self.client.wait_closed()


async def forward_ports(tunnel: SSHTunnel, nanny_info: Mapping[str, Any], host: str = "127.0.0.1") -> dict[str, int]:
    """A fresh local port forwarded to each kernel and nanny port of ``nanny_info`` on ``host`` (as the
    tunnel's host reaches it); the local ports by key."""
    return {key: await tunnel.forward(int(nanny_info[key]), host) for key in (*KERNEL_PORT_KEYS, *NANNY_PORT_KEYS)}
