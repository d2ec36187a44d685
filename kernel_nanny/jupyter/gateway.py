"""jupyter_server's gateway mode, for kernels that outlive it (``GatewayKernels``, ``GatewaySessions``) and nbclient.

jupyter_server's own gateway classes only know the kernels *this* server
process started: after the server is killed and started again, its kernel
list is empty, a notebook's session is dropped as "culled", and the open
page's reconnection is refused (404), although the kernels run on. These
subclasses adopt the gateway's kernels instead: every kernel the gateway
lists is listed, a session whose kernel the gateway still runs is kept (with
``SessionManager.database_filepath`` set, so sessions survive the server), and
a clean shutdown of the server leaves the kernels running (``persistent``).
Configure them with::

    jupyter lab --gateway-url=http://127.0.0.1:8888 \\
        --ServerApp.kernel_manager_class=kernel_nanny.jupyter.gateway.GatewayKernels \\
        --ServerApp.session_manager_class=kernel_nanny.jupyter.gateway.GatewaySessions \\
        --SessionManager.database_filepath=$HOME/.local/share/jupyter/nanny-sessions.db

(the how-to "JupyterLab with kernel-nanny" has the full recipe).
"""

from __future__ import annotations

from typing import Any

import websocket
from jupyter_server.gateway.gateway_client import GatewayClient, gateway_request
from jupyter_server.gateway.managers import GatewayKernelClient as _GatewayKernelClient
from jupyter_server.gateway.managers import GatewayKernelManager as _GatewayKernelManager
from jupyter_server.gateway.managers import GatewayMappingKernelManager, GatewaySessionManager
from tornado.escape import json_decode
from tornado.ioloop import IOLoop
from tornado.web import HTTPError
from traitlets import Bool, DottedObjectName, Type

__all__ = ["GatewayKernelClient", "GatewayKernelManager", "GatewayKernels", "GatewaySessions"]


class GatewayKernels(GatewayMappingKernelManager):
    """The gateway's kernels, all of them, whichever server started them."""

    persistent = Bool(
        True,
        config=True,
        help="Leave the gateway's kernels running when the server shuts down (jupyter_server's own deletes them).",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        # At once, on the server's first turn of its loop (made before the kernel manager): an open page's
        # reconnection, an interrupt, a kernel's model must not meet a 404 before something lists kernels.
        IOLoop.current().add_callback(self._adopt_all_at_start)

    async def _adopt_all_at_start(self) -> None:
        try:
            await self._adopt_all()
        except Exception as exc:  # the gateway is down: the first listing adopts them
            self.log.warning("could not list the gateway's kernels at start: %s", exc)

    async def _adopt_all(self) -> None:
        response = await gateway_request(self.kernels_url, method="GET")
        for model in json_decode(response.body):
            await self.adopt(model["id"])

    async def adopt(self, kernel_id: str) -> bool:
        """Know the gateway's kernel ``kernel_id`` (as if this server had started it); False if the gateway has none."""
        if kernel_id in self._kernels:
            return True
        try:
            await self.start_kernel(kernel_id=kernel_id)  # type: ignore[no-untyped-call]  # for a known id: fetch its model, start nothing
        except HTTPError as exc:
            if exc.status_code == 404:
                return False
            raise
        if self._kernels[kernel_id].kernel is None:  # the gateway had no such kernel
            self.remove_kernel(kernel_id)  # type: ignore[no-untyped-call]
            return False
        self.log.info("adopted the gateway's kernel %s", kernel_id)
        return True

    async def list_kernels(self, **kwargs: Any) -> list[dict[str, Any]]:
        await self._adopt_all()
        models: list[dict[str, Any]] = await super().list_kernels(**kwargs)  # type: ignore[no-untyped-call]
        return models

    async def shutdown_all(self, now: bool = False) -> None:  # type: ignore[override]
        if not self.persistent:
            await super().shutdown_all(now=now)  # type: ignore[no-untyped-call]
            return
        if self._kernels:
            self.log.info("leaving %d kernel(s) running on the gateway (GatewayKernels.persistent)", len(self._kernels))
        self._kernels.clear()


class GatewaySessions(GatewaySessionManager):
    """Sessions whose kernel the gateway still runs are kept, also across server restarts."""

    async def kernel_culled(self, kernel_id: str) -> bool:
        return not await self.kernel_manager.adopt(kernel_id)


class GatewayKernelClient(_GatewayKernelClient):
    """jupyter_server's gateway kernel client, with the gateway token on its WebSocket too.

    jupyter_server's own sends the token (``GatewayClient.auth_token``) with
    its HTTP requests but opens the kernel's WebSocket without it, which a
    gateway that checks every request (this one) refuses.
    """

    async def start_channels(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        gateway = GatewayClient.instance()
        header = [f"{gateway.auth_header_key}: {gateway.auth_scheme} {gateway.auth_token}"]
        connect = websocket.create_connection

        def with_token(*connect_args: Any, **connect_kwargs: Any) -> Any:
            websocket.create_connection = connect  # one call only: no other client's socket gets our header
            return connect(*connect_args, header=header, **connect_kwargs)

        # The parent opens the socket with websocket.create_connection, before its first await, and no way to
        # add a header: that function adds ours, once, and no other coroutine runs in between.
        websocket.create_connection = with_token
        try:
            await super().start_channels(*args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            if websocket.create_connection is with_token:  # the parent failed before it connected
                websocket.create_connection = connect


class GatewayKernelManager(_GatewayKernelManager):
    """A kernel on the gateway for nbclient and papermill: jupyter_server's, with :class:`GatewayKernelClient`.

    ::

        GatewayClient.instance(url="http://127.0.0.1:8888", auth_token=token)
        NotebookClient(nb, km=GatewayKernelManager(), kernel_name="python3").execute()

    jupyter_client's clients ask their manager ``_async_is_alive()``, which
    jupyter_server's gateway manager answers as if it had a local process
    (and fails); here it answers from the gateway, as its ``is_alive`` does.
    """

    client_class = DottedObjectName("kernel_nanny.jupyter.gateway.GatewayKernelClient")
    client_factory = Type(GatewayKernelClient, klass=_GatewayKernelClient)

    async def _async_is_alive(self) -> bool:
        return bool(await self.is_alive())  # type: ignore[no-untyped-call]
