"""The server side's bind(): what it binds, the clients' connect() reaches (tcp, IPv6, ipc, CurveZMQ)."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import AsyncIterator

import pytest
import zmq
import zmq.asyncio

from kernel_nanny._serving import bind
from kernel_nanny.client._sockets import connect
from kernel_nanny.protocol import endpoint_port, endpoint_url


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class Sockets:
    """Servers and clients on a private context, every one closed at the end of the test."""

    def __init__(self) -> None:
        self.context = zmq.asyncio.Context()
        self.opened: list[zmq.asyncio.Socket] = []

    def server(self) -> zmq.asyncio.Socket:
        return self._track(self.context.socket(zmq.ROUTER))

    def client(self, url: str, info: dict[str, str]) -> zmq.asyncio.Socket:
        return self._track(connect(self.context, zmq.DEALER, url, info))

    def _track(self, sock: zmq.asyncio.Socket) -> zmq.asyncio.Socket:
        self.opened.append(sock)
        return sock


@pytest.fixture
async def sockets() -> AsyncIterator[Sockets]:
    made = Sockets()
    yield made
    for sock in made.opened:
        sock.close(linger=0)
    made.context.term()


async def round_trip(server: zmq.asyncio.Socket, client: zmq.asyncio.Socket) -> list[bytes]:
    await client.send(b"ping")
    assert await server.poll(5000), "the request never arrived"
    identity, payload = await server.recv_multipart()
    await server.send_multipart([identity, payload + b" pong"])
    assert await client.poll(5000), "the reply never arrived"
    return list(await client.recv_multipart())


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        pytest.param("::1", marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")),
    ],
)
async def test_a_star_port_is_filled_in_and_the_client_reaches_it(sockets, ip):
    server = sockets.server()
    bound = bind(server, endpoint_url("tcp", ip, "*"))
    port = endpoint_port(bound)
    assert bound == endpoint_url("tcp", ip, port) and 0 < port < 65536
    client = sockets.client(bound, {})
    assert await round_trip(server, client) == [b"ping pong"]


async def test_an_ipc_socket_is_private_whatever_the_umask(sockets, tmp_path):
    private = sockets.server()
    umask = os.umask(0)
    try:
        bound = bind(private, endpoint_url("ipc", str(tmp_path / "kn"), 7))
    finally:
        os.umask(umask)
    assert bound == f"ipc://{tmp_path}/kn-7" and endpoint_port(bound) == 7
    assert stat.S_IMODE(os.stat(tmp_path / "kn-7").st_mode) == 0o600
    client = sockets.client(bound, {})
    assert await round_trip(private, client) == [b"ping pong"]


async def test_a_curve_server_answers_only_clients_that_know_its_key(sockets):
    public, secret = zmq.curve_keypair()
    server = sockets.server()
    bound = bind(server, endpoint_url("tcp", "127.0.0.1", "*"), curve_keypair=(public, secret))
    assert server.curve_server
    client = sockets.client(bound, {"curve_publickey": public.decode()})
    assert await round_trip(server, client) == [b"ping pong"]
    plain = sockets.client(bound, {})
    await plain.send(b"ping")
    assert not await server.poll(300), "a client without CurveZMQ got through"
