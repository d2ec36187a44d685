"""Serving signed requests on a ROUTER socket, for the nanny and the daemon alike.

Each request is verified, dispatched by message type to a handler from a
table, and answered with ``<name>_reply``: ``status: ok`` and the handler's
content, or ``status: error`` with ``ename``/``evalue``. Bad input (unsigned,
forged, replayed or malformed messages) is dropped with a rate-limited log
line; a failing handler becomes an error reply. Nothing a client sends can
stop the server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import zmq.asyncio

from ._exceptions import ProtocolError
from ._ratelimit import RateLimitedLog
from ._tasks import TaskGroup
from .protocol import Message, Session

__all__ = ["Handler", "RequestRefused", "RequestServer"]

Handler = Callable[[Message], Awaitable[dict[str, Any]]]


class RequestRefused(Exception):
    """A request that cannot be carried out; its ``ename`` and message go into the error reply."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(evalue)
        self.ename = ename


class RequestServer:
    """Answers requests arriving on ``sock`` with ``handlers`` (``{"info_request": handler}``)."""

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
    ) -> None:
        self.sock = sock
        self.session = session
        self.handlers = handlers
        self._log = log
        self._label = label
        self._tasks = tasks
        self._after_reply = after_reply
        self._bad_input = RateLimitedLog(log)

    async def serve(self) -> None:
        """Receive for ever; each request is answered in its own task, so a slow one blocks nothing."""
        while True:
            frames = await self.sock.recv_multipart()
            try:
                msg = self.session.deserialize(frames)
            except ProtocolError as exc:
                self._bad_input.warning("dropped a message on %s: %s", self._label, exc)
                continue
            self._tasks.spawn(self._answer(msg), name=f"{self._label}-{msg.msg_type}")

    async def _answer(self, msg: Message) -> None:
        reply_type = msg.msg_type.removesuffix("_request") + "_reply"
        handler = self.handlers.get(msg.msg_type)
        try:
            if handler is None:
                raise RequestRefused("UnknownRequest", f"unknown request {msg.msg_type!r}")
            content = {"status": "ok", **await handler(msg)}
        except RequestRefused as exc:
            content = {"status": "error", "ename": exc.ename, "evalue": str(exc)}
        except Exception as exc:
            self._log.warning("%s %s failed: %s", self._label, msg.msg_type, exc)
            content = {"status": "error", "ename": type(exc).__name__, "evalue": str(exc)}
        reply = self.session.msg(reply_type, content, parent=msg)
        await self.sock.send_multipart(self.session.serialize(reply, msg.identities))
        if self._after_reply is not None:
            self._after_reply(msg, content)
