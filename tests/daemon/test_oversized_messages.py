"""A peer sending oversized messages to a nanny or the daemon is cut off before they cost memory."""

from __future__ import annotations

import asyncio

import zmq
import zmq.asyncio
from zmq.utils.monitor import recv_monitor_message

from kernel_nanny import LaunchRequest, start_kernel
from kernel_nanny.defaults import MAX_REQUEST_BYTES

#: What one peer sends: 4 messages of 64 MiB, far above the limit (the attack that was seen used 16).
SENT = [b"\0" * (64 << 20)] * 4


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (``VmHWM``): it catches a message held only for a moment."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


async def send_oversized(endpoint: str) -> None:
    """Send each of ``SENT`` from a raw DEALER to ``endpoint``; each time the server must hang up on us."""
    context = zmq.asyncio.Context.instance()
    peer = context.socket(zmq.DEALER)
    peer.linger = 0
    monitor = peer.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    peer.connect(endpoint)
    try:
        for payload in SENT:
            await peer.send(payload)
            event = await asyncio.wait_for(recv_monitor_message(monitor), 60)
            assert event["event"] == zmq.EVENT_DISCONNECTED
    finally:
        peer.disable_monitor()
        monitor.close(linger=0)
        peer.close()


def test_the_limit_holds_any_legitimate_request():
    assert 1 << 20 <= MAX_REQUEST_BYTES < len(SENT[0])


async def test_a_nanny_disconnects_a_peer_sending_oversized_messages(isolated):
    info, manager = await start_kernel(
        LaunchRequest(kernel_type="pyimport/kernel", supervised=True, params={"echo_output": False})
    )
    try:
        before = peak_rss(info["nanny_pid"])
        await send_oversized(f"ipc://{info['ip']}-{info['nanny_control_port']}")
        assert peak_rss(info["nanny_pid"]) - before < len(SENT[0]) // 8
        assert (await manager.info())["state"] == "running"
    finally:
        await manager.shutdown(now=True)
        await manager.cleanup()


async def test_the_daemon_disconnects_a_peer_sending_oversized_messages(make_daemon):
    daemon = await make_daemon()
    before = peak_rss(daemon.process.pid)
    await send_oversized(f"ipc://{daemon.runtime_dir / 'kernel-nanny-daemon.sock'}")
    assert peak_rss(daemon.process.pid) - before < len(SENT[0]) // 8
    async with daemon.client() as client:
        assert (await client.info())["kernels"] == 0
