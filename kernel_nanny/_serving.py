"""The server side shared by the nanny and the daemon: binding sockets, serving signed requests.

:func:`bind` is the one place a server socket is bound, the twin of the
clients' ``connect`` (in ``kernel_nanny.client._sockets``): both spell
endpoints with ``protocol.endpoint_url`` and switch on IPv6 the same way, so
what one binds the other reaches.

:class:`RequestServer` answers requests on a bound ROUTER socket. Each
request is verified, dispatched by message type to a handler from a table,
and answered with ``<name>_reply``: ``status: ok`` and the handler's
content, or ``status: error`` with ``ename``/``evalue``. A handler refuses a
request by raising the error that says why (``NoSuchKernel``...), which
crosses under its name from ``protocol.errors``. Bad input (unsigned,
forged, replayed or malformed messages) is dropped with a rate-limited log
line; a failing handler becomes an error reply. Nothing a client sends can
stop the server. A :class:`PeerCheck` can vet the sender of each request
too: a handshake is passed once, but a key may be revoked after it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import zmq
import zmq.asyncio

from ._exceptions import AuthenticationFailed, ProtocolError, UnknownRequest
from ._ratelimit import RateLimitedLog
from ._tasks import TaskGroup
from .defaults import MAX_REQUEST_BYTES
from .protocol import Message, Session, is_ipv6_endpoint
from .protocol.errors import error_reply, is_known_error

__all__ = ["Handler", "PeerCheck", "RequestServer", "bind"]

#: Answers one request: the reply's content, or raises the error the reply reports.
Handler = Callable[[Message], Awaitable[Mapping[str, Any]]]


class BufferedReply(dict[str, Any]):
    """A reply's content with binary ``buffers`` (a handler returns it for bulk bytes, e.g. journal entries)."""

    def __init__(self, content: Mapping[str, Any], buffers: list[bytes]) -> None:
        super().__init__(content)
        self.buffers = buffers


def bind(
    sock: zmq.Socket[Any],
    endpoint: str,
    *,
    curve_keypair: tuple[bytes, bytes] | None = None,
    zap_domain: str | None = None,
) -> str:
    """Bind ``sock`` to ``endpoint`` and return the endpoint it listens on (a ``*`` port filled in).

    With ``curve_keypair`` (public, secret; Z85) the socket is a CurveZMQ
    server; ``zap_domain`` then hands each handshake to the ZAP handler
    registered for that domain (the daemon's allow-list of client keys).
    A peer sending a frame over :data:`~kernel_nanny.defaults.MAX_REQUEST_BYTES`
    is disconnected before the frame is buffered. An ipc socket file is made
    0600 whatever the umask: only its owner may connect.
    """
    sock.maxmsgsize = MAX_REQUEST_BYTES
    if is_ipv6_endpoint(endpoint):
        sock.ipv6 = True
    if curve_keypair is not None:
        sock.curve_publickey, sock.curve_secretkey = curve_keypair
        sock.curve_server = True
    if zap_domain is not None:
        sock.zap_domain = zap_domain.encode()
    sock.bind(endpoint)
    bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    if bound.startswith("ipc://"):
        os.chmod(bound.removeprefix("ipc://"), 0o600)
    return bound


class PeerCheck(Protocol):
    """Vets the sender of each request, beyond the handshake that let it connect (the daemon's tcp endpoint)."""

    def refusal(self, frame: zmq.Frame) -> str | None:
        """Why the peer that sent ``frame`` may not be served any more (None: serve it)."""

    def disconnect(self, frame: zmq.Frame) -> None:
        """Drop the connection ``frame`` arrived on."""


class RequestServer:
    """Answers requests arriving on ``sock`` with ``handlers`` (``{"info_request": handler}``).

    With ``peers``, a request whose sender it refuses is answered with
    :exc:`~kernel_nanny.AuthenticationFailed`, and the sender disconnected.
    """

    def __init__(
        self,
        sock: zmq.asyncio.Socket,
        session: Session,
        handlers: dict[str, Handler],
        *,
        log: logging.Logger,
        label: str,
        tasks: TaskGroup,
        after_reply: Callable[[Message, dict[str, Any]], None] | None = None,
        peers: PeerCheck | None = None,
    ) -> None:
        self.sock = sock
        self.session = session
        self.handlers = handlers
        self._log = log
        self._label = label
        self._tasks = tasks
        self._after_reply = after_reply
        self._peers = peers
        self._bad_input = RateLimitedLog(log)

    async def serve(self) -> None:
        """Receive for ever; each request is answered in its own task, so a slow one blocks nothing."""
        peers = self._peers
        while True:
            if peers is None:
                frames = await self.sock.recv_multipart()
            else:  # as zmq.Frame objects: they carry the sender's properties (User-Id)
                received = await self.sock.recv_multipart(copy=False)
                frames = [frame.bytes for frame in received]
            try:
                msg = self.session.deserialize(frames)
            except ProtocolError as exc:
                self._bad_input.warning("dropped a message on %s: %s", self._label, exc)
                continue
            name = f"{self._label}-{msg.msg_type}"
            refusal = None if peers is None else peers.refusal(received[-1])
            if peers is not None and refusal is not None:
                self._tasks.spawn(self._refuse(msg, refusal, peers, received[-1]), name=name)
            else:
                self._tasks.spawn(self._answer(msg), name=name)

    async def _refuse(self, msg: Message, refusal: str, peers: PeerCheck, sender: zmq.Frame) -> None:
        """Answer :exc:`~kernel_nanny.AuthenticationFailed`, then drop the sender's connection."""
        await self._answer(msg, AuthenticationFailed(refusal))
        peers.disconnect(sender)

    async def _answer(self, msg: Message, refused: AuthenticationFailed | None = None) -> None:
        reply_type = msg.msg_type.removesuffix("_request") + "_reply"
        handler = self.handlers.get(msg.msg_type)
        try:
            if refused is not None:
                raise refused
            if handler is None:
                raise UnknownRequest(f"unknown request {msg.msg_type!r}")
            answer = await handler(msg)
            buffers = answer.buffers if isinstance(answer, BufferedReply) else []
            content = {"status": "ok", **answer}
        except Exception as exc:
            # A refusal the protocol names (protocol.errors) is routine; anything else is a failure worth a warning.
            level = logging.INFO if is_known_error(exc) else logging.WARNING
            self._log.log(level, "%s %s failed: %s", self._label, msg.msg_type, exc)
            content, buffers = error_reply(exc), []
        reply = self.session.msg(reply_type, content, parent=msg, buffers=list(buffers))
        await self.sock.send_multipart(self.session.serialize(reply, msg.identities))
        if self._after_reply is not None:
            self._after_reply(msg, content)
