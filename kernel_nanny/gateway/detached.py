"""The connections clients left, kept for their return: per kernel and client session, bounded in number and time.

A client that comes back (same kernel, same ``session_id``) takes its
connection over (:mod:`.channels`). Most never do: every JupyterLab page
load is a new client session, so a kernel reopened in many pages would
collect connections, three sockets and a reader each. So at most
:data:`~kernel_nanny.defaults.GATEWAY_DETACHED_PER_KERNEL` are kept per
kernel (those owed nothing are closed first, then the oldest), each for
:data:`~kernel_nanny.defaults.GATEWAY_DETACHED_TIMEOUT` seconds, and all of
a kernel's as soon as it is known gone.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..defaults import GATEWAY_DETACHED_PER_KERNEL, GATEWAY_DETACHED_TIMEOUT

if TYPE_CHECKING:
    from .channels import KernelBridge

__all__ = ["DetachedBridges"]

#: (daemon kernel id, client session id; "" for clients that send none)
Key = tuple[str, str]


class DetachedBridges:
    def __init__(self) -> None:
        self._bridges: dict[Key, KernelBridge] = {}  # oldest first
        self._expiry: dict[Key, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._bridges)

    def __repr__(self) -> str:
        return f"<DetachedBridges {len(self)}>"

    def keep(self, key: Key, bridge: KernelBridge) -> None:
        """Keep the connection a client left: one per client, the one still owed replies.

        A client may leave two (JupyterLab's first attempt at a kernel WebSocket fails in the browser after
        jupyter_server has opened its own to the gateway, which it then never closes): the one that ran the
        cell must not give way to an idle twin that closed after it.
        """
        older = self.take(key)
        if older is not None and older.owed and not bridge.owed:
            older, bridge = bridge, older
        if older is not None:
            older.close()
        self._bridges[key] = bridge
        self._expiry[key] = asyncio.get_running_loop().call_later(GATEWAY_DETACHED_TIMEOUT, self._close, key)
        kernel = [k for k in self._bridges if k[0] == key[0]]
        while len(kernel) > GATEWAY_DETACHED_PER_KERNEL:
            victim = next((k for k in kernel if not self._bridges[k].owed), kernel[0])
            kernel.remove(victim)
            self._close(victim)

    def take(self, key: Key) -> KernelBridge | None:
        """The connection this client left, now its again (None if there is none)."""
        timer = self._expiry.pop(key, None)
        if timer is not None:
            timer.cancel()
        return self._bridges.pop(key, None)

    def forget(self, kernel_ids: set[str] | None = None, *, keep: set[str] | None = None) -> None:
        """Close those of kernels gone (``kernel_ids``, or all but those in ``keep``)."""
        for key in list(self._bridges):
            if (kernel_ids is not None and key[0] in kernel_ids) or (keep is not None and key[0] not in keep):
                self._close(key)

    def _close(self, key: Key) -> None:
        bridge = self.take(key)
        if bridge is not None:
            bridge.close()
