"""The daemon's connections to the nannies it indexes: one per nanny, shared by concurrent requests.

A listing asks every nanny at once, a shutdown waits on one for seconds, and
both may use the same connection at the same time. A connection is therefore
closed only once its kernel has left the index *and* the last request using
it is done: closing it under a request failed that request with
``ClientClosed`` (a listing that asked a nanny whose shutdown had just
finished, a shutdown whose kernel a listing found gone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..client.manager import ManagerClient

__all__ = ["NannyConnections"]


@dataclass
class _Shared:
    manager: ManagerClient
    users: int = 0


class NannyConnections:
    """Opens a nanny's connection on first use, closes it when dropped and no longer used."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._open: dict[str, _Shared] = {}

    def __repr__(self) -> str:
        return f"<NannyConnections open={len(self._open)}>"

    @asynccontextmanager
    async def use(self, kernel_id: str, connection_info: Mapping[str, Any]) -> AsyncIterator[ManagerClient]:
        """The kernel's nanny connection, open for the body (even if the kernel is dropped meanwhile).

        Use it for indexed kernels only: a connection is kept until
        :meth:`drop`, so one opened for a kernel already dropped would stay
        open until :meth:`close`.
        """
        shared = self._open.get(kernel_id)
        if shared is None:
            shared = self._open[kernel_id] = _Shared(ManagerClient(connection_info, timeout=self._timeout))
        shared.users += 1
        try:
            yield shared.manager
        finally:
            shared.users -= 1
            if not shared.users and self._open.get(kernel_id) is not shared:
                await shared.manager.cleanup()

    def drop(self, kernel_id: str) -> None:
        """The kernel left the index: close its connection now, or when its last user is done."""
        shared = self._open.pop(kernel_id, None)
        if shared is not None and not shared.users:
            shared.manager.close()

    async def close(self) -> None:
        """Close every connection (the daemon stops; no request runs any more)."""
        while self._open:
            _, shared = self._open.popitem()
            shared.manager.close()
            await shared.manager.wait_closed()
