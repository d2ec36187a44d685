"""One lifetime vocabulary: close() / wait_closed() / abort() / async with, and one state enum.

Every long-lived object goes open -> closing -> closed and refuses to be used
or entered again once closed (ClientClosed, naming it). Each class is tried
with what it really holds: a kernel, a nanny, sshd, a thread on a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kernel_nanny import BlockingKernelClient, ClientClosed, DaemonClient, KernelClient, ManagerClient
from kernel_nanny._lifetime import LifetimeState
from kernel_nanny.client.running import list_running_kernels
from kernel_nanny.compat import AsyncKernelClient, AsyncKernelManager, AsyncMultiKernelManager, KernelManager
from kernel_nanny.execution import BlockingKernelExecution, KernelExecution
from kernel_nanny.providers.docker_engine import StreamThread
from kernel_nanny.providers.ssh_config import SSHHost
from kernel_nanny.providers.ssh_tunnel import SSHTunnel
from tests.providers.ssh_servers import SSHServer, ssh_keys, sshd  # noqa: F401 (fixtures)

QUIET = {"echo_output": False}
NANNY_KERNEL = "pyimport/kernel"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _gone(pid: int, seconds: float = 30) -> bool:
    """Whether process ``pid`` ends within ``seconds`` (it may be another process's child: no wait status)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while _alive(pid) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return not _alive(pid)


async def _closes_once_and_for_all(obj: Any, use: Any = None) -> None:
    """What every object must do: close() twice, wait_closed(), the state, the repr, no reuse."""
    assert obj.state is LifetimeState.OPEN and not obj.closed
    assert "state=open" in repr(obj)
    obj.close()
    assert obj.state is LifetimeState.CLOSING and obj.closed
    obj.close()  # idempotent
    await asyncio.wait_for(obj.wait_closed(), 30)
    await asyncio.wait_for(obj.wait_closed(), 30)  # and again: returns at once
    assert obj.state is LifetimeState.CLOSED
    assert "state=closed" in repr(obj)
    with pytest.raises(ClientClosed, match=f"{type(obj).__name__}.*was closed"):
        async with obj:
            pass
    if use is not None:
        with pytest.raises(ClientClosed, match=type(obj).__name__):
            await use(obj)


async def _kernel_pid(connection_info: dict[str, Any]) -> int:
    async with KernelClient(connection_info) as kc:
        await kc.wait_for_ready(timeout=60)
        result = await kc.execute_interactive("import os; print(os.getpid())", timeout=60)
    return int(result.stream_text())


# -- the mixin itself ---------------------------------------------------------------------


async def test_wait_closed_before_close_waits_for_it(kernel):
    kc = KernelClient(kernel.connection_info)
    waiter = asyncio.ensure_future(kc.wait_closed())
    await asyncio.sleep(0.05)
    assert not waiter.done()  # nobody closed it yet
    kc.close()
    await asyncio.wait_for(waiter, 10)
    assert kc.state is LifetimeState.CLOSED


async def test_async_with_closes_when_the_body_raises(kernel):
    kc = KernelClient(kernel.connection_info)
    with pytest.raises(ZeroDivisionError):
        async with kc:
            await kc.wait_for_ready(timeout=60)
            1 / 0  # noqa: B018
    assert kc.state is LifetimeState.CLOSED


# -- clients -------------------------------------------------------------------------------


async def test_kernel_client(kernel):
    kc = KernelClient(kernel.connection_info)
    await kc.wait_for_ready(timeout=60)
    await _closes_once_and_for_all(kc, lambda kc: kc.kernel_info())
    async with KernelClient(kernel.connection_info) as inside:
        assert (await inside.execute_interactive("print(1)", timeout=60)).stream_text() == "1\n"
    assert inside.state is LifetimeState.CLOSED


async def test_manager_client_and_daemon_client_are_closed_without_touching_what_they_manage():
    from kernel_nanny.launch.request import LaunchRequest
    from kernel_nanny.start import start_kernel

    info, manager = await start_kernel(LaunchRequest(kernel_type=NANNY_KERNEL, supervised=True, params=QUIET))
    try:
        assert isinstance(manager, ManagerClient)
        await manager.subscribe()
        await _closes_once_and_for_all(manager, lambda m: m.is_alive())
        async with ManagerClient(info) as again:  # the kernel and its nanny kept running
            assert await again.is_alive()
            await again.shutdown(now=True)
    finally:
        manager.close()
        await manager.wait_closed()


async def test_daemon_client_close_fails_a_pending_request(tmp_path):
    connection = {"endpoint": f"ipc://{tmp_path}/nobody-listens", "key": "k"}
    daemon = DaemonClient(connection, timeout=60)
    pending = asyncio.ensure_future(daemon.info())
    await asyncio.sleep(0.05)  # sent, and waiting for a reply that cannot come
    daemon.close()
    with pytest.raises(ClientClosed):
        await asyncio.wait_for(pending, 5)  # at once, not after the 60 s timeout
    await daemon.wait_closed()
    await _closes_once_and_for_all(DaemonClient(connection), lambda d: d.list_kernels())


# -- the blocking twins ----------------------------------------------------------------------


def test_blocking_twin_follows_the_async_object(kernel_connection_info):
    with BlockingKernelClient(kernel_connection_info) as kc:
        kc.wait_for_ready(timeout=60)
    kc.close()  # again: nothing to do
    assert "state=closed" in repr(kc)
    with pytest.raises(ClientClosed, match="BlockingKernelClient"):
        kc.kernel_info()
    with pytest.raises(ClientClosed, match="BlockingKernelClient"):
        with kc:
            pass


@pytest.fixture
def kernel_connection_info() -> Iterator[dict[str, Any]]:
    """A kernel for blocking tests (which run outside an event loop), shut down afterwards."""
    km = KernelManager(NANNY_KERNEL)
    km.start_kernel()
    try:
        yield dict(km.connection_info)
    finally:
        km.shutdown_kernel(now=True)
        km.close()


# -- the SSH tunnel and the Docker stream thread ------------------------------------------------


def _lifetime_host(sshd: SSHServer) -> SSHHost:  # noqa: F811
    return SSHHost(
        name="lifetime",
        host=sshd.address,
        port=sshd.port,
        user="root",
        keys=(sshd.client_key,),
        known_hosts=sshd.known_hosts,
    )


async def test_ssh_tunnel_closes_its_forwards_and_connection(sshd: SSHServer):  # noqa: F811
    tunnel = await SSHTunnel.open(_lifetime_host(sshd))
    local = await tunnel.forward(sshd.port)  # through the tunnel to sshd itself: it greets first
    reader, writer = await asyncio.open_connection("127.0.0.1", local)
    assert (await asyncio.wait_for(reader.readline(), 30)).startswith(b"SSH-2.0-")
    writer.close()
    await _closes_once_and_for_all(tunnel, lambda t: t.forward(sshd.port))
    with pytest.raises(ClientClosed):
        await tunnel.run_shell("true")
    with pytest.raises(OSError):  # the forward's listener is gone
        await asyncio.open_connection("127.0.0.1", local)


async def test_closing_a_tunnel_ends_a_forward_whose_client_stopped_reading(sshd: SSHServer):  # noqa: F811
    """A local client that stops reading (a hung process) leaves data queued in the forward: closing the
    tunnel must still end that connection at once, neither waiting for the client nor leaving it open."""
    flood = b"x" * (8 << 20)

    sent = asyncio.Event()

    async def send_flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(flood)  # more than the client's socket buffers: the rest waits in the forward and sshd
        with contextlib.suppress(OSError):
            await writer.drain()
        sent.set()
        writer.close()

    def drain(client: socket.socket) -> int:
        """What the client can still read: the queued part of the flood, then the end of the connection."""
        received = 0
        with contextlib.suppress(ConnectionResetError):
            while chunk := client.recv(1 << 20):
                received += len(chunk)
        return received

    server = await asyncio.start_server(send_flood, "127.0.0.1", 0)
    tunnel = await SSHTunnel.open(_lifetime_host(sshd))
    client = socket.socket()
    try:
        local = await tunnel.forward(server.sockets[0].getsockname()[1])
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(10)
        await asyncio.to_thread(client.connect, ("127.0.0.1", local))
        assert await asyncio.to_thread(client.recv, 1) == b"x"  # the flood has begun; now the client stops reading
        await asyncio.wait_for(sent.wait(), 30)
        tunnel.close()
        await asyncio.wait_for(tunnel.wait_closed(), 10)
        assert 0 < await asyncio.to_thread(drain, client) < len(flood)
    finally:
        client.close()
        tunnel.close()
        server.close()
        await server.wait_closed()


class _SocketStream:
    """What the SDK's CancellableStream is to StreamThread: blocking iteration, close() wakes it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self._sock.recv(4096), b"")

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)  # the reading thread's recv() returns b""


async def test_docker_stream_thread_is_closed_and_joined():
    ours, theirs = socket.socketpair()
    items: asyncio.Queue[bytes] = asyncio.Queue()
    thread = StreamThread(_SocketStream(ours), items.put_nowait, "lifetime-stream")
    try:
        theirs.sendall(b"one\n")
        assert await asyncio.wait_for(items.get(), 10) == b"one\n"
        await _closes_once_and_for_all(thread)
        await asyncio.wait_for(thread.finished, 10)
        assert "lifetime-stream" not in {t.name for t in threading.enumerate()}  # joined, not left reading
    finally:
        ours.close()
        theirs.close()


# -- executions -------------------------------------------------------------------------------------


async def test_kernel_execution_closes_and_shuts_its_own_kernel_down():
    async with KernelExecution(NANNY_KERNEL) as execution:
        assert await execution.run("x = 1") == 0
        pid = await _kernel_pid(execution.connection_info)
    assert execution.state is LifetimeState.CLOSED
    assert await _gone(pid)
    with pytest.raises(ClientClosed, match="KernelExecution"):
        await execution.run("x")
    fresh = KernelExecution(NANNY_KERNEL)
    await _closes_once_and_for_all(fresh, lambda e: e.start())


async def test_kernel_execution_abort_kills_its_kernel_and_ends_the_run():
    execution = KernelExecution(NANNY_KERNEL)
    await execution.start()
    pid = await _kernel_pid(execution.connection_info)
    seen: asyncio.Queue[str] = asyncio.Queue()
    code = "import time; print('sleeping', flush=True); time.sleep(600)"
    run = asyncio.ensure_future(execution.run(code, output_hook=lambda msg: seen.put_nowait(msg.msg_type)))
    assert await asyncio.wait_for(seen.get(), 30) == "stream"  # the command runs now
    execution.abort()
    execution.abort()  # idempotent, like close()
    await asyncio.wait_for(execution.wait_closed(), 30)
    assert await asyncio.wait_for(run, 10) == 1  # ended, not raised
    assert await _gone(pid, 5)
    assert execution.state is LifetimeState.CLOSED


def test_blocking_kernel_execution_abort_and_no_reentry():
    execution = BlockingKernelExecution(NANNY_KERNEL)
    with execution:
        assert execution.run("print(1)") == 0
        with BlockingKernelClient(execution.connection_info) as kc:
            pid = int(kc.execute_interactive("import os; print(os.getpid())", timeout=60).stream_text())
        execution.abort()
    assert not _alive(pid)
    with pytest.raises(ClientClosed, match="KernelExecution"):
        execution.run("1")
    with pytest.raises(ClientClosed):
        with execution:
            pass


# -- jupyter_client's objects ----------------------------------------------------------------------


async def test_compat_kernel_client(kernel):
    client = AsyncKernelClient(kernel.connection_info)
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    client.stop_channels()  # jupyter_client's disconnect: the channels may start again
    client.start_channels()
    assert client.channels_running
    await _closes_once_and_for_all(client, lambda c: c.get_shell_msg(timeout=1))
    with pytest.raises(ClientClosed):
        client.start_channels()  # close() is for good


async def test_compat_kernel_manager_close_keeps_the_kernel_and_abort_kills_it():
    kept = AsyncKernelManager(NANNY_KERNEL)
    await kept.start_kernel(launch_params=QUIET)
    await _closes_once_and_for_all(kept, lambda km: km.interrupt_kernel())
    async with ManagerClient(kept.connection_info) as manager:
        assert await manager.is_alive()  # close() let go of it, no more
        await manager.shutdown(now=True)

    async with AsyncKernelManager(NANNY_KERNEL) as km:
        await km.start_kernel(launch_params=QUIET)
        pid = await _kernel_pid(km.connection_info)
        kernel_id = km.kernel_id
        km.abort()
    assert km.state is LifetimeState.CLOSED
    assert await _gone(pid)
    assert kernel_id not in {k.kernel_id for k in list_running_kernels()}


async def test_compat_multi_kernel_manager_abort_kills_every_kernel():
    mkm = AsyncMultiKernelManager(default_kernel_name=NANNY_KERNEL)
    kernel_id = await mkm.start_kernel(launch_params=QUIET)
    pid = await _kernel_pid(mkm.get_kernel(kernel_id).connection_info)
    mkm.abort()
    mkm.abort()
    await asyncio.wait_for(mkm.wait_closed(), 60)
    assert mkm.state is LifetimeState.CLOSED and "state=closed" in repr(mkm)
    assert await _gone(pid)
    with pytest.raises(ClientClosed, match="AsyncMultiKernelManager"):
        await mkm.start_kernel()
    with pytest.raises(ClientClosed):
        mkm.get_kernel(kernel_id)
    fresh = AsyncMultiKernelManager()
    await _closes_once_and_for_all(fresh, lambda m: m.start_kernel())
