"""The gateway's HTTP server: tornado, on the daemon's event loop, behind the gateway token.

The daemon hands it a :class:`KernelService`, its own request API called in
process, so every launch, listing and shutdown takes the same path (and the
same checks, limits and errors) as a ``kernel-nanny`` client's.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..client.manager import ManagerClient
from ..defaults import GATEWAY_MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES
from .detached import DetachedBridges
from .settings import GatewaySettings

if TYPE_CHECKING:
    from .channels import ChannelsHandler

__all__ = ["Gateway", "KernelService"]

log = logging.getLogger("kernel_nanny.gateway")


class KernelService(Protocol):
    """What the gateway needs of the daemon."""

    async def call(self, name: str, content: Mapping[str, Any]) -> dict[str, Any]:
        """Run the daemon API request ``name`` (``launch``, ``list_kernels``...) and return its reply's content."""

    def nanny(self, kernel_id: str) -> AbstractAsyncContextManager[ManagerClient]:
        """The connection to an indexed kernel's nanny (NoSuchKernel if the daemon has none by that id)."""


def _access_log(handler: tornado.web.RequestHandler) -> None:
    """Each request at DEBUG, by path: tornado's own line has the query string, where clients that cannot set a
    header (browsers opening a WebSocket) put the token. Refusals are logged where they happen (rate-limited)."""
    request = handler.request
    log.debug(
        "%d %s %s (%s) %.1f ms",
        handler.get_status(),
        request.method,
        request.path,
        request.remote_ip,
        1000 * request.request_time(),
    )


class Gateway:
    """The API's state: the daemon, the token, the open channels and what each kernel's were last sent."""

    def __init__(self, service: KernelService, settings: GatewaySettings, token: str) -> None:
        self.service = service
        self.settings = settings
        self.token = token
        #: Open WebSocket connections by (daemon) kernel id: a kernel model's ``connections``.
        self.channels: dict[str, set[ChannelsHandler]] = {}
        #: The connections clients left, for their return.
        self.detached = DetachedBridges()
        self.url = settings.url
        self._server: tornado.httpserver.HTTPServer | None = None

    def __repr__(self) -> str:
        return f"<Gateway {self.url} kernels_connected={len(self.channels)}>"

    def connections(self, kernel_id: str) -> int:
        return len(self.channels.get(kernel_id, ()))

    def application(self) -> tornado.web.Application:
        from .channels import ChannelsHandler
        from .handlers import ROUTES

        return tornado.web.Application(
            [*ROUTES, (r"/api/kernels/(?P<kernel_id>[^/]+)/channels", ChannelsHandler)],
            gateway=self,
            websocket_ping_interval=30,
            websocket_max_message_size=GATEWAY_MAX_MESSAGE_BYTES,
            log_function=_access_log,
        )

    def start(self) -> None:
        """Bind and serve; port 0 becomes the port the system chose (in :attr:`url`)."""
        port = self.settings.port
        assert port is not None, "the gateway is off"
        sockets = tornado.netutil.bind_sockets(port, address=self.settings.host, family=socket.AF_UNSPEC)
        ssl_context = None
        if self.settings.certfile is not None:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(self.settings.certfile, self.settings.keyfile)
        self._server = tornado.httpserver.HTTPServer(
            self.application(),
            ssl_options=ssl_context,
            max_body_size=MAX_REQUEST_BYTES,
            idle_connection_timeout=self.settings.idle_timeout,
            body_timeout=self.settings.idle_timeout,
        )
        self._server.add_sockets(sockets)
        bound = sockets[0].getsockname()[1]
        self.url = self.settings.url.rsplit(":", 1)[0] + f":{bound}"
        log.info("gateway serving the Jupyter kernel API on %s", self.url)

    async def stop(self) -> None:
        """Stop accepting, close every client (each reconnects to the next daemon), finish."""
        if self._server is None:
            return
        self._server.stop()
        for handlers in list(self.channels.values()):
            for handler in list(handlers):
                handler.close(1001, "the kernel-nanny daemon is stopping")
        await self._server.close_all_connections()  # every WebSocket's on_close has run: none detaches any more
        self.detached.forget(keep=set())
        self._server = None
