"""A one-shot, authenticated callback: how a nanny started far away says where it listens.

A batch scheduler starts the nanny on a node chosen later, where it binds
ports of its own choosing; no file system is assumed to be shared with the
launcher. So the launcher opens a :class:`CallbackListener` (a CurveZMQ
server on a fresh key pair, on an address the nodes can reach) and passes a
:class:`CallbackAddress` (endpoint, the listener's public key, a one-time
token) to the job. The job answers once with :func:`call_back`: its nanny's
connection info, or the error that kept it from starting.

What protects it: the channel is CurveZMQ-encrypted (the listener's public
key comes with the address), and the report is a Jupyter message signed with
the token (HMAC-SHA256), so only the job given the token can report, once.
Anything else reaching the listener (a port scan, a forged or replayed
report) is logged and ignored while the listener waits on. The token travels
in the batch script, which the scheduler shows only to the job's owner and
its administrators; it is worthless once the report is in, since the
listener is then closed.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson
import zmq
import zmq.asyncio

from .._exceptions import KernelNannyError, LaunchError, ProtocolError
from .._tasks import wait_for
from ..defaults import CALLBACK_ACK_TIMEOUT, CLIENT_LINGER_MS, MAX_REQUEST_BYTES, SERVER_LINGER_MS
from ..protocol import Session
from ..protocol.errors import error_from_reply, error_reply

__all__ = ["CallbackAddress", "CallbackListener", "call_back"]

log = logging.getLogger("kernel_nanny.launch.callback")

#: The message types of a report: the nanny's connection info, or why there is none.
READY, FAILED = "nanny_ready", "nanny_failed"


@dataclass(frozen=True)
class CallbackAddress:
    """Where and how a job reports back: what :meth:`CallbackListener.address` hands to the job."""

    endpoint: str
    server_key: str
    token: str

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> CallbackAddress:
        try:
            data = orjson.loads(text)
            return cls(endpoint=str(data["endpoint"]), server_key=str(data["server_key"]), token=str(data["token"]))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise LaunchError(f"unreadable callback address {text[:80]!r}: {exc}") from None


class CallbackListener:
    """Waits for one signed report on a CurveZMQ endpoint (use with ``async with``; :meth:`receive` once)."""

    def __init__(self, bind_address: str) -> None:
        public, secret = zmq.curve_keypair()
        self._socket = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        # The receipt is sent just before the listener closes: a linger of 0 could drop it, and the
        # job, never acknowledged, would stop the kernel its launcher has just handed out.
        self._socket.linger = SERVER_LINGER_MS
        self._socket.maxmsgsize = MAX_REQUEST_BYTES
        self._socket.curve_publickey, self._socket.curve_secretkey = public, secret
        self._socket.curve_server = True
        host = f"[{bind_address}]" if ":" in bind_address else bind_address
        if ":" in bind_address:
            self._socket.ipv6 = True
        try:
            self._socket.bind(f"tcp://{host}:*")
        except zmq.ZMQError as exc:
            self._socket.close()
            raise LaunchError(
                f"cannot listen for the job's callback on {bind_address}: {exc.strerror} "
                "(set callback_address to an address of this machine that the nodes can reach)"
            ) from None
        endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        #: The port it listens on, and what to give the job.
        self.port = int(endpoint.rsplit(":", 1)[1])
        self.address = CallbackAddress(endpoint, public.decode(), secrets.token_hex(32))
        self._session = Session(self.address.token)

    def reached_at(self, host: str, port: int) -> CallbackAddress:
        """The address to give a job that reaches this listener as ``host:port`` (a forward on a login host)."""
        return replace(self.address, endpoint=f"tcp://{host}:{port}")

    def __repr__(self) -> str:
        return f"<CallbackListener {self.address.endpoint} closed={self._socket.closed}>"

    async def __aenter__(self) -> CallbackListener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening (idempotent): a later report finds nobody; a receipt already sent is still delivered."""
        self._socket.close()

    async def receive(self) -> dict[str, Any]:
        """The reported connection info, once a correctly signed report arrives.

        A report of failure raises the job's error (a :exc:`~kernel_nanny.KernelNannyError`
        from the error table). Cancel it (or bound it with a timeout) to stop waiting.
        """
        while True:
            frames = await self._socket.recv_multipart(copy=True)
            try:
                report = self._session.deserialize(frames)
            except ProtocolError as exc:
                log.warning("ignored a message on the callback endpoint %s: %s", self.address.endpoint, exc)
                continue
            if report.msg_type not in (READY, FAILED):
                log.warning("ignored a %r message on the callback endpoint", report.msg_type)
                continue
            ack = self._session.msg("callback_reply", {"status": "ok"}, parent=report)
            await self._socket.send_multipart(self._session.serialize(ack, report.identities))
            if report.msg_type == FAILED:
                raise error_from_reply(report.content)
            return dict(report.content)


async def call_back(address: CallbackAddress, content: Mapping[str, Any] | BaseException) -> None:
    """Report ``content`` (connection info) or an error to the listener at ``address``; wait for its receipt."""
    session = Session(address.token)
    if isinstance(content, BaseException):
        report = session.msg(FAILED, error_reply(content))
    else:
        report = session.msg(READY, dict(content))
    public, secret = zmq.curve_keypair()
    sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
    sock.linger = CLIENT_LINGER_MS
    sock.curve_serverkey = address.server_key.encode()
    sock.curve_publickey, sock.curve_secretkey = public, secret
    try:
        sock.connect(address.endpoint)
        await sock.send_multipart(session.serialize(report))
        try:
            frames = await wait_for(sock.recv_multipart(), CALLBACK_ACK_TIMEOUT)
            session.deserialize(frames)
        except asyncio.TimeoutError:
            raise LaunchError(
                f"the launcher did not acknowledge the report within {CALLBACK_ACK_TIMEOUT:g} s at "
                f"{address.endpoint} (it gave up waiting, or the node cannot reach that address)"
            ) from None
        except KernelNannyError as exc:
            raise LaunchError(f"the launcher's acknowledgement at {address.endpoint} is invalid: {exc}") from None
    finally:
        sock.close()
