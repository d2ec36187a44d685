"""The daemon's tcp endpoint against strangers and revoked clients: bounded connections, cut on demand.

Every connection costs the daemon a file descriptor, from the same budget
(``RLIMIT_NOFILE``) as its local socket, its nanny connections and its files.
So the daemon raises its soft limit to the hard one at start
(:func:`raise_open_file_limit`), and :class:`TcpConnectionGuard` keeps the
tcp endpoint's connections under :func:`connection_limit`: half the limit, so
remote peers can never take what local clients need. A peer that does not
finish the CurveZMQ handshake is dropped by zmq itself after
``TCP_HANDSHAKE_TIMEOUT_MS``.

CurveZMQ vets a client's key only in the handshake; :class:`AllowListCheck`
vets the sender of every request again, so a key removed from
``authorized_keys`` loses the connections it already has.

zmq offers neither a cap on accepted connections nor a way to drop one peer
of a ROUTER socket. The guard watches the socket's accepts on a monitor
socket (each reports the connection's file descriptor) and drops a
connection by ``shutdown(2)`` on that descriptor: zmq sees the peer hang up
and cleans up as for any lost peer. The descriptor is checked to still be
that tcp connection (the same local port and peer) first, so a number reused
meanwhile is never touched.
"""

from __future__ import annotations

import logging
import resource
import socket
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from .._ratelimit import RateLimitedLog
from ..defaults import MAX_TCP_CONNECTIONS
from .keys import DaemonKeys

__all__ = ["AllowListCheck", "TcpConnectionGuard", "connection_limit", "raise_open_file_limit"]

log = logging.getLogger("kernel_nanny.daemon")


def raise_open_file_limit() -> None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit, and log it.

    systemd starts services with a soft limit of 1024 (for the sake of
    programs using ``select()``) and a far higher hard limit, for programs
    that need more to raise themselves (systemd.exec(5), ``LimitNOFILE=``):
    a daemon with many clients and nannies does.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
        return
    log.info("raised the open-file limit from %d to %d (RLIMIT_NOFILE)", soft, hard)


def connection_limit() -> int:
    """How many tcp connections the daemon keeps at once: half its open-file limit, at most ``MAX_TCP_CONNECTIONS``.

    Read each time, so a limit changed on the running process (``prlimit``) counts.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_TCP_CONNECTIONS
    return max(1, min(MAX_TCP_CONNECTIONS, soft // 2))


class TcpConnectionGuard:
    """Keeps a bound tcp socket's connections under :func:`connection_limit`, and drops single ones.

    Create it before the socket is bound (so no accept goes unseen), call
    :meth:`bound` with the endpoint, and run :meth:`watch`; close
    :attr:`monitor` with the socket.
    """

    def __init__(self, sock: zmq.asyncio.Socket) -> None:
        address = f"inproc://kernel-nanny-tcp-guard-{id(self)}"
        sock.monitor(address, zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.monitor: zmq.asyncio.Socket = sock.context.socket(zmq.PAIR)
        self.monitor.rcvhwm = 0  # unbounded: an event lost would leave a connection uncounted
        self.monitor.linger = 0
        self.monitor.connect(address)
        self._port: int | None = None
        #: File descriptor -> the peer accepted on it, oldest first.
        self._open: dict[int, Any] = {}
        self._refusals = RateLimitedLog(log)

    def bound(self, endpoint: str) -> None:
        """The socket listens on ``endpoint`` (its port tells our connections from other descriptors)."""
        self._port = int(endpoint.rsplit(":", 1)[1])

    async def watch(self) -> None:
        while True:
            event = parse_monitor_message(await self.monitor.recv_multipart())
            fd = event["value"]
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._accepted(fd)
            else:
                self._open.pop(fd, None)

    def _accepted(self, fd: int) -> None:
        peer = self._peer(fd)
        if peer is None:  # already gone
            return
        self._open[fd] = peer
        limit = connection_limit()
        if len(self._open) > limit:
            self._refusals.warning(
                "refused a tcp connection from %s: %d connections are open (the limit: half the open-file "
                "limit, at most %d)",
                peer[0],
                limit,
                MAX_TCP_CONNECTIONS,
            )
            self.cut(fd)

    def cut(self, fd: int) -> None:
        """Drop the connection accepted on ``fd``, if that descriptor still holds it."""
        peer = self._open.get(fd)
        if peer is None or self._peer(fd) != peer:
            return
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the peer went away meanwhile: dropped anyway
        finally:
            sock.detach()  # the descriptor is zmq's: it closes it

    def _peer(self, fd: int) -> Any:
        """The peer address of the tcp connection to our port on ``fd``; None if ``fd`` holds no such connection."""
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            return None
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.getsockname()[1] != self._port:
                return None
            return sock.getpeername()
        except OSError:
            return None
        finally:
            sock.detach()


class AllowListCheck:
    """The tcp endpoint's check of each request's sender (``RequestServer``'s ``peers``): is its key still allowed?"""

    def __init__(self, keys: DaemonKeys, guard: TcpConnectionGuard) -> None:
        self._keys = keys
        self._guard = guard

    def refusal(self, frame: zmq.Frame) -> str | None:
        # The User-Id of a message is what the ZAP handler admitted its connection as: the client's Z85 key.
        try:
            key = frame.get("User-Id")
        except zmq.ZMQError:
            key = None
        if key is not None and key in self._keys.allowed_keys():
            return None
        return (
            f"this client's key {key!r} was revoked (it is no longer in {self._keys.authorized_keys_file}): "
            "its connection is closed; ask the daemon's administrator for a new key ('kernel-nanny keys new')"
        )

    def disconnect(self, frame: zmq.Frame) -> None:
        self._guard.cut(frame.get(zmq.SRCFD))
