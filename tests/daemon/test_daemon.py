"""The daemon as a real process: launch, index, survival, adoption, policies, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest
import zmq
import zmq.asyncio

from kernel_nanny import (
    AuthenticationFailed,
    DaemonClient,
    DaemonNotRunning,
    InvalidRequest,
    KernelClient,
    KernelError,
    KernelTypeNotAllowed,
    LaunchError,
    ManagerClient,
    MaxKernels,
    NannyUnavailable,
    NoSuchKernel,
    NoSuchKernelType,
    UnknownRequest,
)
from kernel_nanny.discovery import DaemonProvider, KernelFinder
from kernel_nanny.protocol import Session
from kernel_nanny.protocol.daemon import KernelEntry

QUIET = {"echo_output": False}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the kernel-nanny command (in this test's environment)."""
    return subprocess.run(
        [sys.executable, "-m", "kernel_nanny", *args], capture_output=True, text=True, timeout=120, env=env
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _run(info, code: str) -> str:
    async with KernelClient(info) as kc:
        await kc.wait_for_ready(timeout=30)
        result = await kc.execute_interactive(code, timeout=30)
    assert result.ok, result.error
    return result.stream_text()


async def test_kernels_outlive_a_sigkilled_daemon_and_are_readopted(make_daemon):
    daemon = await make_daemon()
    async with daemon.client() as client:
        launched = [await client.launch("pyimport/kernel", launch_params=QUIET, name=f"k{i}") for i in range(5)]
        before = {k["kernel_id"]: k["connection_info"] for k in await client.list_kernels()}
    assert len(before) == 5
    await daemon.kill()
    with pytest.raises(DaemonNotRunning):
        DaemonClient.find()
    # the kernels work meanwhile
    for i, (info, manager) in enumerate(launched):
        assert await _run(info, f"print({i} * 10)") == f"{i * 10}\n"
        await manager.cleanup()
    await daemon.start()
    async with daemon.client() as client:
        after = {k["kernel_id"]: k["connection_info"] for k in await client.list_kernels()}
        assert after == before
        assert (await client.info())["kernels"] == 5
        for kernel_id, info in after.items():
            async with ManagerClient(info) as manager:
                await manager.interrupt()
                await manager.restart()
                assert await manager.is_alive()
            await client.shutdown_kernel(kernel_id)
        assert await client.list_kernels() == []
    assert "adopted 5 kernel(s)" in daemon.log()


async def test_second_daemon_refuses_clearly(make_daemon):
    daemon = await make_daemon()
    second = cli("serve", "--config", str(daemon.config_file))
    assert second.returncode != 0
    assert f"already running for this user (pid {daemon.process.pid}" in second.stderr


async def test_discovery_file_and_socket_are_private(make_daemon):
    daemon = await make_daemon()
    discovery = daemon.runtime_dir / "kernel-nanny-daemon.json"
    info = json.loads(discovery.read_text())
    assert info["pid"] == daemon.process.pid and info["protocol_version"] == "1.2"
    assert oct(discovery.stat().st_mode & 0o777) == oct(0o600)
    assert oct((daemon.runtime_dir / "kernel-nanny-daemon.sock").stat().st_mode & 0o777) == oct(0o600)
    async with daemon.client() as client:
        details = await client.info()
    assert details["server_id"] == info["server_id"] and details["kernels"] == 0
    first_id = info["server_id"]
    assert await daemon.stop() == 0
    assert not discovery.exists()
    await daemon.start()
    assert json.loads(discovery.read_text())["server_id"] != first_id  # a new id every start


async def test_api_lists_types_gets_and_shuts_down_kernels(make_daemon):
    daemon = await make_daemon()
    async with daemon.client() as client:
        types = {t["id"] for t in await client.list_kernel_types()}
        assert {"pyimport/kernel", "spec/python3"} <= types
        info, manager = await client.launch("spec/python3", name="named", launch_params=QUIET)
        assert await _run(info, "print('via daemon')") == "via daemon\n"
        entry = await client.get_kernel("named")
        assert entry["kernel_id"] == info["kernel_id"] and entry["info"]["state"] == "running"
        assert set(entry) == KernelEntry.__required_keys__ | KernelEntry.__optional_keys__
        assert [set(e) for e in await client.list_kernels()] == [KernelEntry.__required_keys__]
        assert (await client.get_kernel(info["kernel_id"][:6]))["name"] == "named"
        with pytest.raises(KernelError, match="no running kernel 'ghost'") as missing:
            await client.get_kernel("ghost")
        assert missing.value.ename == "NoSuchKernel"
        assert isinstance(missing.value, NoSuchKernel) and isinstance(missing.value, LookupError)
        await client.shutdown_kernel("named")
        assert await client.list_kernels() == []
        with pytest.raises(NannyUnavailable):
            async with ManagerClient(info, timeout=0.5) as gone:
                await gone.is_alive()
        await manager.cleanup()


async def test_unknown_and_disallowed_types_and_max_kernels(make_daemon):
    daemon = await make_daemon(
        textwrap.dedent(
            """
            [kernels]
            max_kernels = 1
            allowed_types = ["pyimport/*"]
            """
        )
    )
    async with daemon.client() as client:
        assert {t["id"] for t in await client.list_kernel_types()} == {"pyimport/kernel"}
        with pytest.raises(KernelError, match="not allowed") as refused:
            await client.launch("spec/python3")
        assert refused.value.ename == "KernelTypeNotAllowed"
        assert isinstance(refused.value, KernelTypeNotAllowed) and isinstance(refused.value, LaunchError)
        with pytest.raises(KernelError) as unknown:
            await client.launch("pyimport/nope")
        assert unknown.value.ename == "NoSuchKernelType"
        assert isinstance(unknown.value, NoSuchKernelType)
        _, manager = await client.launch("pyimport/kernel", launch_params=QUIET)
        await manager.cleanup()
        with pytest.raises(KernelError, match=r"1 kernels are running or starting \(max_kernels = 1\)") as full:
            await client.launch("pyimport/kernel", launch_params=QUIET)
        assert full.value.ename == "MaxKernels"
        assert isinstance(full.value, MaxKernels)


async def test_bad_requests_are_dropped_or_refused_and_the_daemon_carries_on(make_daemon):
    daemon = await make_daemon()
    discovery = json.loads((daemon.runtime_dir / "kernel-nanny-daemon.json").read_text())
    ctx = zmq.asyncio.Context.instance()
    attacker = ctx.socket(zmq.DEALER)
    attacker.connect(discovery["endpoint"])
    forged = Session("not-the-key")
    try:
        for i in range(300):
            if i % 3 == 0:
                await attacker.send_multipart([b"junk", str(i).encode()])
            elif i % 3 == 1:
                await attacker.send_multipart(
                    forged.serialize(forged.msg("launch_request", {"type_id": "spec/python3"}))
                )
            else:
                await attacker.send_multipart([b"<IDS|MSG>", b"", b"{", b"{}", b"{}", b"{}"])
        async with daemon.client() as client:
            with pytest.raises(KernelError) as unknown:
                await client.request("frobnicate")
            assert unknown.value.ename == "UnknownRequest"
            assert isinstance(unknown.value, UnknownRequest)
            with pytest.raises(KernelError, match="type_id") as invalid:
                await client.request("launch", {"type_id": 42})
            assert isinstance(invalid.value, InvalidRequest)
            assert (await client.info())["kernels"] == 0  # the forged launches did nothing
    finally:
        attacker.close(linger=0)
    assert daemon.running
    assert "suppressed" in daemon.log() or daemon.log().count("dropped a message") <= 5


async def test_tcp_endpoint_admits_only_allow_listed_keys(make_daemon, isolated):
    port = _free_port()
    daemon = await make_daemon(f'[daemon]\ntcp_endpoint = "tcp://127.0.0.1:{port}"\n')
    client_file = isolated / "laptop.json"
    made = cli(
        "keys",
        "--config",
        str(daemon.config_file),
        "new",
        "laptop",
        "--endpoint",
        f"tcp://127.0.0.1:{port}",
        "-o",
        str(client_file),
    )
    assert made.returncode == 0, made.stderr
    assert oct(client_file.stat().st_mode & 0o777) == oct(0o600)
    async with DaemonClient.from_file(client_file) as allowed:
        assert f"tcp://127.0.0.1:{port}" in (await allowed.info())["endpoints"]
        assert {t["id"] for t in await allowed.list_kernel_types()} >= {"pyimport/kernel"}
    stranger_keys = zmq.curve_keypair()
    stranger = {
        **json.loads(client_file.read_text()),
        "client_public_key": stranger_keys[0].decode(),
        "client_secret_key": stranger_keys[1].decode(),
    }
    async with DaemonClient(stranger) as refused:
        with pytest.raises(AuthenticationFailed, match="refused this client's key"):
            await refused.list_kernel_types()
        with pytest.raises(AuthenticationFailed):
            await refused.launch("pyimport/kernel")
    async with daemon.client() as local:
        assert (await local.info())["kernels"] == 0
    keys = cli("keys", "--config", str(daemon.config_file))
    assert json.loads(client_file.read_text())["client_public_key"] in keys.stdout


async def _nanny_exits(manager: ManagerClient) -> str:
    """The reason the nanny gives as it exits (its files are gone by then)."""
    async for event in manager.events():
        if event.msg_type == "nanny_exiting":
            return event.content["reason"]
    raise AssertionError("the events ended without nanny_exiting")


async def test_idle_kernels_are_culled_busy_ones_too(make_daemon):
    daemon = await make_daemon("[culling]\nidle_timeout = 2\nbusy_timeout = 3\n")
    async with daemon.client() as client:
        idle_info, idle_manager = await client.launch("pyimport/kernel", name="idle", launch_params=QUIET)
        busy_info, busy_manager = await client.launch("pyimport/kernel", name="busy", launch_params=QUIET)
        try:
            async with KernelClient(busy_info) as kc:
                await kc.wait_for_ready(timeout=30)
                await kc.send("execute_request", {"code": "import time; time.sleep(120)", "silent": False})
                reasons = await asyncio.wait_for(
                    asyncio.gather(_nanny_exits(idle_manager), _nanny_exits(busy_manager)), 30
                )
            assert reasons == ["shutdown requested", "shutdown requested"]
            assert await client.list_kernels() == []
        finally:
            await idle_manager.cleanup()
            await busy_manager.cleanup()
    log = daemon.log()
    assert "culling: idle for" in log and "culling: busy for" in log


async def test_corrupt_records_are_set_aside_and_reported(make_daemon):
    daemon = await make_daemon(start=False)
    kernels = daemon.state_dir / "kernels"
    kernels.mkdir(parents=True, mode=0o700)
    (kernels / "deadbeef.json").write_text("{ not json")
    (kernels / "cafe.json").write_text(
        json.dumps({"kernel_id": "cafe", "kernel_type": "x", "connection_file": "/nope", "nanny_pid": 2**22 + 3})
    )
    await daemon.start()
    assert (kernels / "deadbeef.json.corrupt").exists()
    assert not (kernels / "deadbeef.json").exists()
    assert not (kernels / "cafe.json").exists()  # a dead nanny's record is pruned
    assert "unreadable" in daemon.log()
    async with daemon.client() as client:
        assert (await client.info())["kernels"] == 0


async def test_kernels_started_without_a_daemon_are_adopted(make_daemon):
    started = cli("start", "pyimport/kernel", "--name", "early")
    assert started.returncode == 0, started.stderr
    kernel_id = started.stdout.split()[0]
    daemon = await make_daemon()
    async with daemon.client() as client:
        assert [k["kernel_id"] for k in await client.list_kernels()] == [kernel_id]
    assert (daemon.state_dir / "kernels" / f"{kernel_id}.json").exists()


async def test_cli_goes_through_the_daemon(make_daemon):
    daemon = await make_daemon()
    started = cli("start", "pyimport/kernel", "--name", "cli")
    assert started.returncode == 0, started.stderr
    kernel_id = started.stdout.split()[0]
    assert (daemon.state_dir / "kernels" / f"{kernel_id}.json").exists()  # the daemon launched it
    assert "launched pyimport/kernel as 'cli'" in daemon.log()
    listing = json.loads(cli("ps", "--json").stdout)
    assert [entry["kernel_id"] for entry in listing] == [kernel_id]
    stopped = cli("stop", "cli")
    assert stopped.returncode == 0
    assert not (daemon.state_dir / "kernels" / f"{kernel_id}.json").exists()


async def test_a_configured_daemon_is_a_kernel_provider(make_daemon, isolated):
    port = _free_port()
    daemon = await make_daemon(f'[daemon]\ntcp_endpoint = "tcp://127.0.0.1:{port}"\n')
    client_file = isolated / "me.json"
    made = cli(
        "keys",
        "--config",
        str(daemon.config_file),
        "new",
        "me",
        "--endpoint",
        f"tcp://127.0.0.1:{port}",
        "-o",
        str(client_file),
    )
    assert made.returncode == 0, made.stderr
    finder = KernelFinder([DaemonProvider("far", client_file)])
    types = dict(finder.find_kernels())
    assert "far/pyimport/kernel" in types and types["far/pyimport/kernel"]["language"] == "python"
    info, manager = await finder.launch("far/pyimport/kernel", launch_params=QUIET)
    try:
        assert isinstance(manager, ManagerClient)
        assert await _run(info, "print('far away')") == "far away\n"
        async with daemon.client() as client:
            assert [k["kernel_id"] for k in await client.list_kernels()] == [info["kernel_id"]]
    finally:
        await manager.shutdown(now=True)
        await manager.cleanup()
    config = isolated / "with-remote.toml"
    config.write_text(f'[remote_daemons]\nfar = "{client_file}"\n')
    listed = cli(
        "list",
        env={**os.environ, "XDG_CONFIG_HOME": str(isolated / "cfg")},
    )
    assert "far/" not in listed.stdout  # not configured there
    (isolated / "cfg" / "kernel-nanny").mkdir(parents=True)
    (isolated / "cfg" / "kernel-nanny" / "config.toml").write_text(config.read_text())
    listed = cli(
        "list",
        env={**os.environ, "XDG_CONFIG_HOME": str(isolated / "cfg")},
    )
    assert "far/pyimport/kernel" in listed.stdout


def test_unreachable_configured_daemon_does_not_break_listing(isolated, caplog):
    missing = isolated / "nowhere.json"
    missing.write_text(json.dumps({"endpoint": f"tcp://127.0.0.1:{_free_port()}", "key": "k"}))
    finder = KernelFinder([DaemonProvider("gone", missing)])
    assert list(finder.find_kernels()) == []
    assert "daemon gone is not reachable" in caplog.text


async def test_logs_suit_journald_under_systemd(make_daemon):
    daemon = await make_daemon(start=False)
    await daemon.start(env={"INVOCATION_ID": "0123456789abcdef"})  # what systemd sets for a service
    first = daemon.log().splitlines()[0]
    assert first.startswith("INFO kernel_nanny.daemon: ")  # journald stamps lines itself
    await daemon.stop()
    plain = await make_daemon()
    assert plain.log().splitlines()[-1][:4].isdigit()  # a terminal gets timestamps


async def test_simultaneous_launches_respect_max_kernels_and_names(make_daemon):
    daemon = await make_daemon("[kernels]\nmax_kernels = 1\n")
    async with daemon.client() as first, daemon.client() as second:
        results = await asyncio.gather(
            first.launch("pyimport/kernel", name="same", launch_params=QUIET),
            second.launch("pyimport/kernel", name="same", launch_params=QUIET),
            return_exceptions=True,
        )
        launched = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, KernelError)]
        assert len(launched) == 1 and len(refused) == 1
        assert refused[0].ename in ("MaxKernels", "LaunchError")
        assert isinstance(refused[0], LaunchError)  # MaxKernels is one too
        assert len(await first.list_kernels()) == 1
        await launched[0].manager.cleanup()


async def test_blocking_daemon_client_hands_out_blocking_managers(make_daemon):
    from kernel_nanny import BlockingDaemonClient, BlockingManagerClient

    await make_daemon()
    with BlockingDaemonClient.running() as client:
        info, manager = client.launch("pyimport/kernel", launch_params=QUIET)
        with manager:
            assert isinstance(manager, BlockingManagerClient)
            assert manager.is_alive()
            manager.shutdown()
        assert client.list_kernels() == []


async def test_the_daemon_logs_deaths_restarts_and_stops_whoever_causes_them(make_daemon):
    """A kill or restart sent to the nanny directly (not through the daemon) still reaches the daemon's log."""
    daemon = await make_daemon()
    async with daemon.client() as client:
        info, manager = await client.launch("pyimport/kernel", name="logged", launch_params=QUIET)
        short = info["kernel_id"][:8]
        try:
            assert cli("kill", "logged").returncode == 0
            assert cli("restart", "logged").returncode == 0
        finally:
            await manager.cleanup()
        await client.shutdown_kernel("logged")
    # The daemon's own subscription may lag its client's: wait for its lines by re-reading its log file
    # (nothing signals a write to it), a bounded number of times.
    for _ in range(200):
        log = daemon.log()
        if f"[kernel={short}] stopped:" in log:
            break
        await asyncio.sleep(0.05)
    assert f"[kernel={short}] died: " in log and "killed" in log
    assert f"[kernel={short}] restarted (restart 1)" in log
    assert f"[kernel={short}] stopped: shutdown requested" in log


async def test_a_launchs_progress_is_followed_and_bad_requests_for_it_are_refused(make_daemon):
    """launch_progress: a launch's events reach its client (on_event); an unknown id is done; bad values refused."""
    daemon = await make_daemon()
    events: list[tuple[str, dict]] = []
    async with daemon.client() as client:
        result = await client.launch(
            "pyimport/kernel", launch_params={"echo_output": False}, on_event=lambda e, c: events.append((e, dict(c)))
        )
        await client.shutdown_kernel(result.connection_info["kernel_id"], now=True)
        assert events == []  # a local kernel waits in no queue: nothing to report, and no error either
        assert (await client.request("launch_progress", {"launch_id": "nobody", "after": 3}))["done"] is True
        for bad in ({"after": -1}, {"after": "1"}, {"wait": 31}, {"wait": True}):
            with pytest.raises(InvalidRequest):
                await client.request("launch_progress", {"launch_id": "x", **bad})
