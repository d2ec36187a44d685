"""Signed request/reply over a DEALER socket: the common core of the manager and daemon clients."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from .._exceptions import AuthenticationFailed, ClientClosed, KernelTimeout
from .._tasks import TaskGroup
from ..defaults import CLIENT_LINGER_MS, HANDSHAKE_DROPS_CONCLUSIVE_S
from ..protocol import Message, Session
from ..protocol.errors import error_from_reply
from ._sockets import Replies, connect, log, read_messages, within

__all__ = ["RequestChannel"]

_HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


class RequestChannel:
    """Sends ``<name>_request`` messages and returns the content of the matching replies.

    ``unavailable(message)`` builds the error raised when no reply comes in
    time; a reply with ``status: error`` raises the error its ``ename`` names
    (see :mod:`kernel_nanny.protocol.errors`), always a :class:`KernelError`.
    """

    def __init__(
        self,
        context: zmq.asyncio.Context,
        url: str,
        session: Session,
        *,
        label: str,
        tasks: TaskGroup,
        unavailable: Callable[[str], Exception],
        curve: Mapping[str, Any] | None = None,
        client_keypair: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.session = session
        self._replies = Replies()
        self._unavailable = unavailable
        self._label = label
        self._sock = connect(context, zmq.DEALER, url, curve or {}, client_keypair=client_keypair)
        tasks.spawn(read_messages(self._sock, session, self._on_reply, label), name=f"{label}-replies")
        self._closed = False
        self._refused: str | None = None
        # A server that rejects us says so only in the handshake, which zmq retries
        # silently: watch it, so callers get an answer instead of a timeout.
        monitor = self._sock.get_monitor_socket(_HANDSHAKE_EVENTS)
        tasks.spawn(self._watch_handshakes(monitor, url), name=f"{label}-handshakes")

    async def _watch_handshakes(self, monitor: zmq.asyncio.Socket, url: str) -> None:
        dropped_since: float | None = None  # the first of an unbroken run of dropped handshakes
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self._refused = dropped_since = None
                    continue
                if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                    # A wrong server key, or a server out of file descriptors: only time tells.
                    dropped_since = dropped_since or time.monotonic()
                    if time.monotonic() - dropped_since < HANDSHAKE_DROPS_CONCLUSIVE_S:
                        continue
                self._refused = (
                    f"{url} refused this client's key (ask its administrator to allow it: 'kernel-nanny keys new')"
                    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    else f"the handshake with {url} failed: it expects other security (CurveZMQ or its key) than ours"
                )
                self._replies.fail_all(AuthenticationFailed(self._refused))
        finally:
            monitor.close(linger=0)

    def _on_reply(self, msg: Message) -> None:
        if not self._replies.resolve(msg):
            log.debug("%s reply %s had no waiter", self._label, msg.msg_type)

    async def call(
        self,
        name: str,
        content: dict[str, Any] | None,
        timeout: float,
        watch: Callable[[Awaitable[Message]], Awaitable[Message]] | None = None,
    ) -> dict[str, Any]:
        """One request; the reply's content. ``watch`` may wrap the wait for the reply (e.g. to notice a dead
        peer sooner)."""
        return (await self.call_for_message(name, content, timeout, watch)).content

    async def call_for_message(
        self,
        name: str,
        content: dict[str, Any] | None,
        timeout: float,
        watch: Callable[[Awaitable[Message]], Awaitable[Message]] | None = None,
    ) -> Message:
        """One request; the whole reply (its buffers too), once its status is ok."""
        if self._closed:
            raise ClientClosed(f"the {self._label} client is closed")
        if self._refused:
            raise AuthenticationFailed(self._refused)
        msg = self.session.msg(f"{name}_request", content or {})
        future = self._replies.expect(msg.msg_id)
        try:
            await self._sock.send_multipart(self.session.serialize(msg))
            reply: Message = await within(watch(future) if watch else future, timeout, name)
        except KernelTimeout:
            raise self._unavailable(f"no {name} reply within {timeout} s") from None
        finally:
            self._replies.forget(msg.msg_id)
        if reply.content.get("status") != "ok":
            raise error_from_reply(reply.content)
        return reply

    def close(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._replies.fail_all(ClientClosed(reason))
            self._sock.disable_monitor()
            self._sock.close(linger=CLIENT_LINGER_MS)
