"""``/api/kernels/{id}/channels``: one WebSocket to a kernel, in either wire format, resumable.

Each connection has a :class:`KernelBridge`: shell, control and stdin sockets
of its own (so the kernel asks for input on the connection whose request
wants it), and iopub read from the nanny's journal, in order and at the pace
the client takes it (each frame is written before the next is read, so a
slow client holds no buffer here: the journal keeps the rest).

**A bridge outlives its WebSocket.** When a client goes away (a
jupyter_server killed and restarted, a browser that lost its network), its
bridge stays, detached: it stops reading iopub where the client stopped, and
keeps the replies to the requests still running (an ``execute_reply`` is
what tells a notebook its cell is done). The same client coming back (the
same ``session_id`` query parameter: JupyterLab's, which jupyter_server
passes on, or none) takes it over: it gets those replies and the output
produced meanwhile, once and in order, then the rest live
(:mod:`.detached` keeps them, bounded).

A kernel whose journal is off is read from its own iopub socket, live only.
"""

from __future__ import annotations

import collections
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import tornado.websocket
import zmq
import zmq.asyncio

from .._ratelimit import RateLimitedLog
from .._tasks import TaskGroup
from ..client._sockets import connect, read_messages
from ..client.kernel import nanny_follows
from ..client.manager import ManagerClient
from ..defaults import CLIENT_LINGER_MS, GATEWAY_DETACHED_REPLIES
from ..protocol import Message, Session
from ..protocol.connection import channel_url
from ..protocol.nanny import journal_end
from .handlers import GatewayHandler
from .wire import V1_SUBPROTOCOL, WireError, decode, encode

__all__ = ["ChannelsHandler", "KernelBridge"]

log = logging.getLogger("kernel_nanny.gateway")
_bad_input = RateLimitedLog(log)

_REQUEST_SOCKETS = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER}

Deliver = Callable[[str, Message], Awaitable[None]]


class ChannelsHandler(GatewayHandler, tornado.websocket.WebSocketHandler):
    """The WebSocket: frames from the client to its bridge, the kernel's messages back."""

    entry: dict[str, Any]
    _bridge: KernelBridge | None = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.entry = await self.kernel_entry(kwargs["kernel_id"])  # a 404 before the upgrade, not a dead socket
        await super().get(*args, **kwargs)

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return V1_SUBPROTOCOL if V1_SUBPROTOCOL in subprotocols else None

    @property
    def v1(self) -> bool:
        return self.selected_subprotocol == V1_SUBPROTOCOL

    def open(self, *args: Any, **kwargs: Any) -> None:
        kernel_id = self.entry["kernel_id"]
        # The client's session id (JupyterLab's, which jupyter_server passes on) is the same when it comes back.
        self._key = (kernel_id, self.get_argument("session_id", ""))
        bridge = self.gateway.detached.take(self._key)
        resumed = bridge is not None
        if bridge is None:
            # From where the journal stood before the upgrade: what the client asks once open is never missed.
            bridge = KernelBridge(self.entry["connection_info"], since=journal_end(self.entry.get("info")))
        self.gateway.channels.setdefault(kernel_id, set()).add(self)
        # Kernel messages are small frames written one after another: Nagle's algorithm would hold each
        # second one for the client's delayed ACK (40 ms a round trip on Linux).
        self.set_nodelay(True)
        self._bridge = bridge
        bridge.attach(self._to_client, self._kernel_gone)
        log.info(
            "client %s kernel %s (%s)",
            "resumed" if resumed else "connected to",
            kernel_id[:8],
            "v1" if self.v1 else "json",
        )

    async def on_message(self, message: str | bytes) -> None:
        assert self._bridge is not None
        try:
            channel, msg = decode(message, v1=self.v1)
        except WireError as exc:
            _bad_input.warning("dropped a frame from a client of kernel %s: %s", self.entry["kernel_id"][:8], exc)
            return
        await self._bridge.send(channel, msg)

    async def _to_client(self, channel: str, msg: Message) -> None:
        frame = encode(msg, channel, v1=self.v1)
        await self.write_message(frame, binary=isinstance(frame, bytes))

    def _kernel_gone(self) -> None:
        self.close(1000, f"kernel {self.entry['kernel_id'][:8]} has shut down")

    def on_close(self) -> None:
        kernel_id = self.entry["kernel_id"]
        open_here = self.gateway.channels.get(kernel_id, set())
        open_here.discard(self)
        if not open_here:
            self.gateway.channels.pop(kernel_id, None)
        bridge, self._bridge = self._bridge, None
        if bridge is not None:
            if bridge.kernel_gone:
                bridge.close()
            else:
                bridge.detach()
                self.gateway.detached.keep(self._key, bridge)
        log.info("client of kernel %s disconnected (code %s)", kernel_id[:8], self.close_code)


class KernelBridge:
    """A kernel's sockets for one client at a time: ``send`` to them; what they answer goes to the client attached."""

    def __init__(self, connection_info: Mapping[str, Any], *, since: int) -> None:
        self._info = connection_info
        self._session = Session(connection_info["key"], connection_info["signature_scheme"])
        self._context = zmq.asyncio.Context.instance()
        #: The journal seq of the last iopub message the client was sent: where a resuming client goes on.
        self.delivered = since
        self.kernel_gone = False
        self._deliver: Deliver | None = None
        self._on_kernel_gone: Callable[[], None] | None = None
        #: Replies that came while no client was attached (the oldest dropped beyond the limit).
        self._held: collections.deque[tuple[str, Message]] = collections.deque(maxlen=GATEWAY_DETACHED_REPLIES)
        #: The shell and control requests sent and not answered yet.
        self._pending: set[str] = set()
        identity = uuid.uuid4().hex.encode()  # shell and stdin share it: input requests come back here
        self._sockets = {
            channel: connect(
                self._context,
                kind,
                channel_url(connection_info, channel),
                connection_info,
                identity=identity if channel != "control" else None,
            )
            for channel, kind in _REQUEST_SOCKETS.items()
        }
        self._tasks = TaskGroup(log)
        self._iopub = TaskGroup(log)
        for channel, sock in self._sockets.items():
            self._tasks.spawn(
                read_messages(sock, self._session, self._replied(channel), channel), name=f"gateway-{channel}"
            )

    def attach(self, deliver: Deliver, kernel_gone: Callable[[], None]) -> None:
        """Send everything to ``deliver`` from now on: the replies held, the output from :attr:`delivered` on."""
        self._deliver, self._on_kernel_gone = deliver, kernel_gone
        held = list(self._held)
        self._held.clear()
        for channel, msg in held:
            self._tasks.spawn(self._send_to_client(channel, msg), name=f"gateway-held-{channel}")
        if nanny_follows(self._info):
            self._iopub.spawn(self._follow_journal(), name="gateway-journal")
        else:
            if "iopub" not in self._sockets:
                self._sockets["iopub"] = connect(self._context, zmq.SUB, channel_url(self._info, "iopub"), self._info)
            self._iopub.spawn(
                read_messages(self._sockets["iopub"], self._session, self._replied("iopub"), "iopub"),
                name="gateway-iopub",
            )

    def detach(self) -> None:
        """The client went: stop reading iopub (the journal keeps it), hold replies for the next client."""
        self._deliver = self._on_kernel_gone = None
        self._iopub.cancel()

    @property
    def owed(self) -> bool:
        """Whether the kernel still owes, or this connection holds, replies for its client."""
        return bool(self._pending or self._held)

    def _replied(self, channel: str) -> Callable[[Message], None]:
        def handle(msg: Message) -> None:
            self._pending.discard(msg.parent_id or "")
            if self._deliver is None:
                self._held.append((channel, msg))
            else:
                self._tasks.spawn(self._send_to_client(channel, msg), name=f"gateway-deliver-{channel}")

        return handle

    async def _send_to_client(self, channel: str, msg: Message) -> None:
        deliver = self._deliver
        if deliver is None:
            self._held.append((channel, msg))
            return
        try:
            await deliver(channel, msg)
        except tornado.websocket.WebSocketClosedError:
            self._held.append((channel, msg))  # the client is going: the next one gets it

    async def _follow_journal(self) -> None:
        async with ManagerClient(self._info, context=self._context) as nanny:
            async for entry in nanny.follow(self.delivered):
                if entry.kind == "lost":
                    log.warning(
                        "%d iopub messages of kernel %s were dropped from its journal before a client read them",
                        entry.content["count"],
                        nanny.kernel_id[:8],
                    )
                elif (message := entry.message or self._status_of(entry.kind, entry.content)) is not None:
                    deliver = self._deliver
                    if deliver is None:
                        return
                    try:
                        await deliver("iopub", message)
                    except tornado.websocket.WebSocketClosedError:
                        return
                self.delivered = entry.seq
        self.kernel_gone = True  # the journal ends when the nanny exits
        if self._on_kernel_gone is not None:
            self._on_kernel_gone()

    def _status_of(self, marker: str, content: Mapping[str, Any]) -> Message | None:
        """A death nobody asked for, as jupyter_server tells its clients: an iopub ``status`` of
        ``restarting`` (the nanny restarts the kernel) or ``dead`` (it will not), so a notebook
        stops waiting for the cell that died with the kernel."""
        if marker == "kernel_died" and not content.get("requested"):
            state = "restarting" if content.get("restarting") else "dead"
        elif marker == "restart_failed":
            state = "dead"
        else:
            return None
        return self._session.msg("status", {"execution_state": state})

    async def send(self, channel: str, msg: Message) -> None:
        if channel == "iopub":
            _bad_input.warning("dropped a message a client sent on iopub (%s): iopub is the kernel's", msg.msg_type)
            return
        if channel != "stdin":
            self._pending.add(msg.msg_id)
        await self._sockets[channel].send_multipart(self._session.serialize(msg))

    def close(self) -> None:
        self._iopub.cancel()
        self._tasks.cancel()
        for sock in self._sockets.values():
            sock.close(linger=CLIENT_LINGER_MS)
