"""Kernel nannies as real processes, managed through ManagerClient."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio

from kernel_nanny import (
    AuthenticationFailed,
    BlockingManagerClient,
    ClientClosed,
    InvalidRequest,
    KernelClient,
    KernelError,
    KernelNotRunning,
    LaunchRequest,
    ManagerClient,
    NannyUnavailable,
    RestartPolicy,
    UnknownRequest,
    start_kernel,
)
from kernel_nanny.client.running import list_running_kernels
from kernel_nanny.protocol import ExitStatus, Session
from kernel_nanny.protocol.nanny import HeartbeatContent, KernelDiedContent, NannyInfo
from tests.helpers import BUSY_LOOP, ManagerEvents, interrupted, jupyter_client_on

QUIET = {"echo_output": False}
FAST_HEARTBEAT = 0.2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def _gone_within(pids, seconds: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        await asyncio.sleep(0.01)
    return not any(_alive(p) for p in pids)


async def _start(**kwargs):
    kwargs.setdefault("params", QUIET)
    kwargs.setdefault("heartbeat_interval", FAST_HEARTBEAT)
    return await start_kernel(LaunchRequest(kernel_type="pyimport/kernel", supervised=True, **kwargs))


@pytest.fixture
async def nanny():
    info, manager = await _start()
    try:
        yield info, manager
    finally:
        try:
            await manager.shutdown(now=True)
        except (NannyUnavailable, KernelError):
            pass
        await manager.cleanup()


async def test_start_publishes_a_private_connection_file_with_nanny_fields(nanny, runtime_dir):
    info, manager = nanny
    path = Path(runtime_dir) / f"kernel-{info['kernel_id']}.json"
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    on_disk = json.loads(path.read_text())
    assert on_disk == info
    for key in ("nanny_control_port", "nanny_events_port", "kernel_id", "kernel_type", "nanny_pid"):
        assert key in on_disk
    assert on_disk["kernel_type"] == "pyimport/kernel"
    details = await manager.info()
    assert details["state"] == "running" and details["alive"]
    assert details["nanny_protocol_version"] == "1.3"
    assert details["restart_policy"] == RestartPolicy().to_dict()
    assert details["pid"] != details["nanny_pid"]


async def test_nanny_process_is_lean():
    """The nanny imports neither jupyter_client nor IPython (only the kernel does)."""
    code = textwrap.dedent(
        """
        import sys
        import kernel_nanny.nanny.__main__, kernel_nanny.nanny.core
        from kernel_nanny.discovery import KernelFinder
        list(KernelFinder.from_entrypoints().find_kernels())
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('jupyter_client', 'IPython', 'ipykernel', 'tornado'))
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


async def test_code_runs_and_the_kernel_is_interruptible_through_the_nanny(nanny):
    info, manager = nanny
    result = await interrupted(info, manager, BUSY_LOOP)
    assert result.error["ename"] == "KeyboardInterrupt"
    assert await manager.is_alive()


async def test_sigkill_is_reported_and_the_kernel_restarted_in_place(nanny):
    info, manager = nanny
    events = await ManagerEvents.subscribed(manager)
    before = await manager.info()
    await manager.signal("SIGKILL")
    await events.until("kernel_restarted")
    died = dict(events.seen)["kernel_died"]
    assert died == {
        "exit_code": None,
        "signal": 9,
        "reason": "killed",
        "final": False,
        "restarting": True,
        "requested": False,
    }
    after = await manager.info()
    assert after["pid"] != before["pid"] and after["restart_count"] == 1 and after["state"] == "running"
    async with KernelClient(info) as kc:  # same connection info, new process
        result = await kc.execute_interactive("print('back')", timeout=30)
    assert result.stream_text() == "back\n"


async def test_the_payloads_have_the_fields_their_types_declare(nanny):
    info, manager = nanny
    beats: list[dict[str, Any]] = []
    manager.add_event_handler(lambda event: beats.append(event.content) if event.msg_type == "heartbeat" else None)
    events = await ManagerEvents.subscribed(manager)  # the nanny greets the subscription with a heartbeat
    assert set(beats[0]) == HeartbeatContent.__required_keys__
    assert set(await manager.info()) - {"status"} == NannyInfo.__required_keys__
    await manager.kill()
    died = await events.until("kernel_died")
    assert set(died) == KernelDiedContent.__required_keys__
    details = await manager.info()
    assert details["last_exit"] == ExitStatus(signal=9, reason="killed").to_dict()


async def test_repeated_crashes_exhaust_the_restart_policy():
    policy = RestartPolicy(max_restarts=2, window=60, backoff=0.05)
    info, manager = await _start(restart_policy=policy)
    try:
        events = await ManagerEvents.subscribed(manager)
        for crash in range(1, 4):
            await manager.signal(signal.SIGKILL)
            await events.until("kernel_died", crash)
            if crash < 3:
                await events.until("kernel_restarted", crash)
        await events.until("restart_failed")
        assert events.lifecycle() == [
            "kernel_died",
            "kernel_restarted",
            "kernel_died",
            "kernel_restarted",
            "kernel_died",
            "restart_failed",
        ]
        restarting = [content["restarting"] for kind, content in events.seen if kind == "kernel_died"]
        assert restarting == [True, True, False]
        assert "2 automatic restarts within 60 s" in dict(events.seen)["restart_failed"]["reason"]
        details = await manager.info()
        assert details["state"] == "dead" and not details["alive"]
        assert details["last_exit"]["reason"] == "killed"
        with pytest.raises(KernelError, match="not running") as not_running:
            await manager.interrupt()
        assert isinstance(not_running.value, KernelNotRunning)
        await manager.restart()  # a manual restart revives it
        assert await manager.is_alive()
    finally:
        await manager.shutdown(now=True)
        await manager.cleanup()


async def test_requested_kill_does_not_restart_and_wait_reports_it(nanny):
    info, manager = nanny
    events = await ManagerEvents.subscribed(manager)
    waiter = asyncio.ensure_future(manager.wait())
    await asyncio.sleep(0)
    await manager.kill()
    status = await asyncio.wait_for(waiter, 30)
    assert status.reason == "killed" and status.signal == signal.SIGKILL
    await events.until("kernel_died")
    assert dict(events.seen)["kernel_died"]["restarting"] is False
    assert (await manager.info())["state"] == "dead"
    assert (await manager.wait()).reason == "killed"  # already dead: returns at once
    assert "kernel_restarted" not in events.kinds()


async def test_restart_request_keeps_ports_and_resets_state(nanny):
    info, manager = nanny
    async with KernelClient(info) as kc:
        await kc.execute_interactive("x = 41", timeout=30)
    events = await ManagerEvents.subscribed(manager)
    await manager.restart()
    await events.until("kernel_restarted")
    assert events.lifecycle() == ["kernel_died", "kernel_restarted"]
    assert dict(events.seen)["kernel_died"]["requested"] is True
    assert json.loads(Path(info_path(info)).read_text()) == info
    async with KernelClient(info) as kc:
        result = await kc.execute_interactive("print('x' in dir())", timeout=30)
    assert result.stream_text() == "False\n"


def info_path(info) -> str:
    return next(k.connection_file for k in list_running_kernels() if k.kernel_id == info["kernel_id"])


async def test_shutdown_stops_kernel_and_nanny_and_removes_files(runtime_dir):
    info, manager = await _start()
    nanny_pid, kernel_pid = info["nanny_pid"], (await manager.info())["pid"]
    events = await ManagerEvents.subscribed(manager)
    await manager.shutdown()
    await events.until("nanny_exiting")
    assert events.lifecycle() == ["kernel_died", "nanny_exiting"]
    assert await _gone_within([nanny_pid, kernel_pid], 5)
    leftovers = [f for f in os.listdir(runtime_dir) if info["kernel_id"] in f or f.startswith(Path(info["ip"]).name)]
    assert leftovers == []
    async with ManagerClient(info, timeout=0.5) as late:
        with pytest.raises(NannyUnavailable):
            await late.is_alive()
    await manager.cleanup()


async def test_sigkilled_nanny_takes_the_kernel_and_its_process_group_along(nanny):
    info, manager = nanny
    async with KernelClient(info) as kc:
        result = await kc.execute_interactive(
            "import subprocess\np = subprocess.Popen(['sleep', '300'])\nprint(p.pid)", timeout=30
        )
    grandchild = int(result.stream_text())
    kernel_pid = (await manager.info())["pid"]
    assert _alive(grandchild) and _alive(kernel_pid)
    os.kill(info["nanny_pid"], signal.SIGKILL)
    assert await _gone_within([kernel_pid, grandchild, info["nanny_pid"]], 1.0)
    with pytest.raises(NannyUnavailable):
        await manager.wait()  # the heartbeat stopped
    sockets = [Path(f"{info['ip']}-{n}") for n in range(1, 8)]
    assert any(s.exists() for s in sockets)  # a SIGKILLed nanny could not clean up...
    assert all(k.kernel_id != info["kernel_id"] for k in list_running_kernels())
    assert not any(s.exists() for s in sockets)  # ...so finding it stale removes its files


async def test_flood_of_bad_messages_then_a_valid_request_is_answered(nanny):
    info, manager = nanny
    ctx = zmq.asyncio.Context.instance()
    attacker = ctx.socket(zmq.DEALER)
    attacker.connect(f"ipc://{info['ip']}-{info['nanny_control_port']}")
    unsigned = Session("")
    forged = Session("not-the-key")
    good = Session(info["key"])
    try:
        for i in range(1000):
            kind = i % 5
            if kind == 0:
                frames = [b"garbage", str(i).encode()]
            elif kind == 1:
                frames = unsigned.serialize(unsigned.msg("kill_request"))
            elif kind == 2:
                frames = forged.serialize(forged.msg("shutdown_request"))
            elif kind == 3:
                frames = [b"<IDS|MSG>", b"sig", b"{not json"]
            else:
                msg = good.msg("is_alive_request")
                frames = good.serialize(msg)
                await attacker.send_multipart(frames)  # the original, answered...
            await attacker.send_multipart(frames)  # ...and its replay, or the junk
        assert await manager.is_alive()
        details = await manager.info()
        assert details["state"] == "running"
    finally:
        attacker.close(linger=0)


async def test_unknown_and_malformed_requests_get_error_replies(nanny):
    info, manager = nanny
    with pytest.raises(KernelError) as unknown:
        await manager.request("frobnicate")
    assert unknown.value.ename == "UnknownRequest"
    assert isinstance(unknown.value, UnknownRequest)
    with pytest.raises(KernelError, match="unknown signal name") as bad_name:
        await manager.signal("SIGFROB")
    assert isinstance(bad_name.value, InvalidRequest)
    with pytest.raises(KernelError, match="needs 'signum'") as missing:
        await manager.request("signal", {})
    assert isinstance(missing.value, InvalidRequest) and isinstance(missing.value, ValueError)
    assert await manager.is_alive()


async def test_two_manager_clients_at_once(nanny):
    info, first = nanny
    second = ManagerClient(info)
    try:
        events_first, events_second = await ManagerEvents.subscribed(first), await ManagerEvents.subscribed(second)
        answers = await asyncio.gather(first.is_alive(), second.is_alive(), first.info(), second.info())
        assert answers[0] and answers[1] and answers[2]["pid"] == answers[3]["pid"]
        await second.signal(signal.SIGKILL)
        await events_first.until("kernel_restarted")
        await events_second.until("kernel_restarted")
        assert events_first.lifecycle() == events_second.lifecycle() == ["kernel_died", "kernel_restarted"]
    finally:
        await second.cleanup()


async def test_client_that_disconnects_mid_request_does_no_harm(nanny):
    info, manager = nanny
    quitter = ManagerClient(info)
    request = asyncio.ensure_future(quitter.restart())
    await asyncio.sleep(0.05)  # the request is on its way
    await quitter.cleanup()
    with pytest.raises(ClientClosed):
        await request
    details = await asyncio.wait_for(manager.info(), 60)
    assert details["state"] in ("running", "restarting")
    assert await manager.is_alive() or (await manager.info())["state"] == "restarting"
    async with KernelClient(info) as kc:
        assert (await kc.execute_interactive("print(7)", timeout=60)).stream_text() == "7\n"


async def test_fd_level_output_reaches_stream_events_and_the_log(nanny):
    info, manager = nanny
    events = await ManagerEvents.subscribed(manager)
    code = textwrap.dedent(
        """
        import ctypes, os
        libc = ctypes.CDLL(None)
        libc.write(1, b"c-level-stdout\\n", 15)
        libc.write(2, b"c-level-stderr\\n", 15)
        os.system("echo subprocess-stdout; echo subprocess-stderr >&2")
        """
    )
    async with KernelClient(info) as kc:
        await kc.execute_interactive(code, timeout=30)

    def streamed(name):
        return "".join(c["text"] for kind, c in events.seen if kind == "stream" and c["name"] == name)

    async def all_arrived():
        while not (
            "c-level-stdout" in streamed("stdout")
            and "subprocess-stdout" in streamed("stdout")
            and "c-level-stderr" in streamed("stderr")
            and "subprocess-stderr" in streamed("stderr")
        ):
            await events.until("stream", len([k for k in events.kinds() if k == "stream"]) + 1)

    await asyncio.wait_for(all_arrived(), 30)
    log = Path((await manager.info())["log_file"]).read_text()
    for text in ("c-level-stdout", "c-level-stderr", "subprocess-stdout", "subprocess-stderr"):
        assert text in log


async def test_a_client_shutting_the_kernel_down_directly_ends_the_nanny(nanny):
    """A jupyter client that sends shutdown_request to the kernel itself: no restart."""
    info, manager = nanny
    events = await ManagerEvents.subscribed(manager)
    async with KernelClient(info) as kc:
        await kc.wait_for_ready(timeout=30)
        await kc.shutdown(timeout=30)
    await events.until("nanny_exiting")
    assert events.lifecycle() == ["kernel_died", "nanny_exiting"]
    assert dict(events.seen)["kernel_died"]["restarting"] is False


async def test_manager_client_in_another_process_over_tcp():
    info, manager = await _start(params={**QUIET, "transport": "tcp"})
    try:
        assert info["transport"] == "tcp" and isinstance(info["nanny_control_port"], int)
        assert info["curve_publickey"]  # the nanny's sockets are encrypted like the kernel's
        script = textwrap.dedent(
            f"""
            import json, sys
            from kernel_nanny.client import BlockingManagerClient
            with BlockingManagerClient.from_connection_file({str(info_path(info))!r}) as m:
                before = m.info()["pid"]
                m.restart()
                after = m.info()
                print(json.dumps({{"before": before, "after": after["pid"], "alive": m.is_alive(), "restarts": after["restart_count"]}}))
            """
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["alive"] and report["before"] != report["after"] and report["restarts"] == 1
        plain = {k: v for k, v in info.items() if not k.startswith("curve_")}
        async with ManagerClient(plain) as eavesdropper:
            with pytest.raises(AuthenticationFailed, match="expects other security"):
                await eavesdropper.is_alive()
        # A wrong server key looks, to zmq, like a peer hanging up mid-handshake (as an overloaded one
        # may once); persisting, it is reported as a security mismatch, well before the request times out.
        wrong_key = {**info, "curve_publickey": zmq.curve_keypair()[0].decode()}
        async with ManagerClient(wrong_key, timeout=60) as impostor:
            with pytest.raises(AuthenticationFailed, match="expects other security"):
                await impostor.is_alive()
    finally:
        await manager.shutdown(now=True)
        await manager.cleanup()


async def test_jupyter_client_uses_the_nanny_connection_file(nanny):
    info, manager = nanny
    with jupyter_client_on(info_path(info)) as kc:
        reply = kc.execute_interactive("print('via jupyter_client')", timeout=30, output_hook=lambda m: None)
    assert reply["content"]["status"] == "ok"


def test_manager_client_refuses_connection_info_without_nanny_ports():
    from kernel_nanny import KernelNannyError

    plain = {
        "transport": "ipc",
        "ip": "/tmp/x",
        "key": "k",
        **{f"{c}_port": 1 for c in ("shell", "iopub", "stdin", "control", "hb")},
    }
    with pytest.raises(KernelNannyError, match="not managed by a nanny"):
        ManagerClient(plain)


async def test_kill_during_restart_backoff_cancels_the_restart():
    info, manager = await _start(restart_policy=RestartPolicy(max_restarts=3, backoff=1.0))
    try:
        events = await ManagerEvents.subscribed(manager)
        await manager.signal("SIGKILL")
        await events.until("kernel_restarted")  # the first restart is immediate
        await manager.signal("SIGKILL")
        await events.until("kernel_died", 2)  # the second waits out a 1 s back-off...
        assert (await manager.info())["state"] == "restarting"
        await manager.kill()  # ...and a kill meanwhile cancels it
        assert (await manager.info())["state"] == "dead"
        with pytest.raises(asyncio.TimeoutError):  # bounded wait for an event that must not come
            await events.until("kernel_restarted", 2, timeout=2.5)
        assert not await manager.is_alive()
    finally:
        await manager.shutdown(now=True)
        await manager.cleanup()


async def test_event_handlers_subscribe_by_themselves(nanny):
    info, manager = nanny
    seen = []
    greeted = asyncio.Event()

    def on_event(event):
        seen.append(event.msg_type)
        greeted.set()

    manager.add_event_handler(on_event)  # no events()/wait() call
    await asyncio.wait_for(greeted.wait(), 10)  # the nanny greets the new subscriber
    await manager.kill()
    while "kernel_died" not in seen:
        greeted.clear()
        await asyncio.wait_for(greeted.wait(), 10)


async def test_subscribe_returns_once_the_subscription_is_live_on_both_clients(nanny):
    info, manager = nanny
    seen: list[str] = []
    manager.add_event_handler(lambda event: seen.append(event.msg_type))
    await manager.subscribe()
    assert seen[:1] == ["heartbeat"]  # the nanny's greeting came before subscribe() returned
    await manager.subscribe()  # live already: returns at once

    def blocking_client() -> bool:
        blocking_seen: list[str] = []
        died = threading.Event()

        def on_event(event) -> None:
            blocking_seen.append(event.msg_type)
            if event.msg_type == "kernel_died":
                died.set()

        with BlockingManagerClient(info) as twin:
            twin.add_event_handler(on_event)
            twin.subscribe()
            assert "heartbeat" in blocking_seen
            twin.kill()
            return died.wait(10)  # the kill's kernel_died, which a live subscription cannot miss

    assert await asyncio.to_thread(blocking_client)


def test_manager_client_refuses_a_newer_nanny_protocol():
    from kernel_nanny import KernelNannyError

    info = {"transport": "ipc", "ip": "/tmp/x", "key": "k", "nanny_control_port": 6, "nanny_events_port": 7}
    info.update({f"{c}_port": n for n, c in enumerate(("shell", "iopub", "stdin", "control", "hb"), 1)})
    with pytest.raises(KernelNannyError, match="protocol 2.0.*upgrade"):
        ManagerClient({**info, "nanny_protocol_version": "2.0"})


def test_connection_files_of_other_hosts_are_left_alone(runtime_dir):
    foreign = Path(runtime_dir) / "kernel-feedfacefeedfacefeedfacefeedface.json"
    foreign.write_text(
        json.dumps({"kernel_id": "feedface" * 4, "nanny_pid": 2**22 + 11, "nanny_host": "some-other-machine"})
    )
    try:
        assert all(k.kernel_id != "feedface" * 4 for k in list_running_kernels())
        assert foreign.exists()  # a copied remote file is not "stale"
    finally:
        foreign.unlink()
