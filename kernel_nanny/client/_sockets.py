"""Socket mechanics shared by every client: connecting, reading, routing replies.

Both the kernel client (shell, control, iopub...) and the manager client
(nanny_control, nanny_events) speak signed Jupyter messages over ZeroMQ; this
module is the one place that connects a socket (with CurveZMQ when the
connection info carries a server key), reads and verifies messages, and matches
replies to the requests that are waiting for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import zmq
import zmq.asyncio

from .._exceptions import KernelTimeout, ProtocolError
from .._tasks import wait_for
from ..defaults import CLIENT_LINGER_MS, CLIENT_RECONNECT_IVL_MAX_MS, CLIENT_RECONNECT_IVL_MS, SUB_RCVHWM
from ..protocol import Message, Session, is_ipv6_endpoint

__all__ = ["Replies", "connect", "read_messages", "within"]

log = logging.getLogger("kernel_nanny.client")


def connect(
    context: zmq.asyncio.Context,
    kind: int,
    url: str,
    connection_info: Mapping[str, Any],
    *,
    identity: bytes | None = None,
    client_keypair: tuple[bytes, bytes] | None = None,
    topics: Sequence[bytes] = (b"",),
) -> zmq.asyncio.Socket:
    """A socket of ``kind`` connected to ``url``, CurveZMQ-secured when the info has a server key.

    The client's own key pair is ``client_keypair`` where the server checks
    client keys (the daemon's tcp endpoint), else a fresh one. A SUB socket
    subscribes to ``topics`` (everything by default).
    """
    sock = context.socket(kind)
    sock.linger = CLIENT_LINGER_MS
    sock.reconnect_ivl = CLIENT_RECONNECT_IVL_MS
    sock.reconnect_ivl_max = CLIENT_RECONNECT_IVL_MAX_MS
    if identity is not None:
        sock.identity = identity
    server_key = connection_info.get("curve_publickey")
    if server_key:
        public, secret = client_keypair or zmq.curve_keypair()
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey = server_key.encode() if isinstance(server_key, str) else server_key
    if kind == zmq.SUB:
        # Set before connecting, so the pipe to the publisher is made with it: output the client has
        # not read yet waits in memory instead of being dropped by the publisher (see SUB_RCVHWM).
        sock.rcvhwm = SUB_RCVHWM
        for topic in topics:
            sock.setsockopt(zmq.SUBSCRIBE, topic)
    if is_ipv6_endpoint(url):
        sock.ipv6 = True
    sock.connect(url)
    return sock


async def read_messages(
    sock: zmq.asyncio.Socket, session: Session, handle: Callable[[Message], None], label: str
) -> None:
    """Read ``sock`` for ever, passing each verified message to ``handle``.

    Messages that fail verification are logged and dropped; so are exceptions
    from ``handle``, which must not stop the reader.
    """
    while True:
        frames = await sock.recv_multipart()
        try:
            msg = session.deserialize(frames)
        except ProtocolError as exc:
            log.warning("dropped a message on %s: %s", label, exc)
            continue
        try:
            handle(msg)
        except Exception:
            log.exception("handler for %s on %s failed", msg.msg_type, label)


class Replies:
    """Futures of requests awaiting replies, resolved by the reply's parent msg_id."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[Message]] = {}

    def expect(self, msg_id: str) -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        return future

    def forget(self, msg_id: str) -> None:
        self._pending.pop(msg_id, None)

    def resolve(self, msg: Message) -> bool:
        """Hand ``msg`` to the request it answers; False if nobody is waiting for it."""
        future = self._pending.pop(msg.parent_id or "", None)
        if future is None or future.done():
            return False
        future.set_result(msg)
        return True

    def fail_all(self, error: BaseException) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()


async def within(awaitable: Any, seconds: float | None, what: str) -> Any:
    """Await ``awaitable``, raising :class:`KernelTimeout` (naming ``what``) after ``seconds``."""
    try:
        return await wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise KernelTimeout(f"{what} did not finish within {seconds} s") from None
