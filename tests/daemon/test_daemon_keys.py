"""The daemon's tcp endpoint against hostile input: client names, revoked and broken keys, connection floods."""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_nanny import AuthenticationFailed, DaemonClient

QUIET = {"echo_output": False}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kernel_nanny", *args], capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _tcp_daemon(make_daemon):
    port = _free_port()
    daemon = await make_daemon(f'[daemon]\ntcp_endpoint = "tcp://127.0.0.1:{port}"\n')
    return daemon, f"tcp://127.0.0.1:{port}"


def _new_client(daemon, endpoint: str, name: str, output: Path) -> subprocess.CompletedProcess:
    return cli("keys", "--config", str(daemon.config_file), "new", name, "--endpoint", endpoint, "-o", str(output))


def _authorized_keys(daemon) -> Path:
    return daemon.state_dir / "authorized_keys"


async def test_client_names_cannot_add_lines_to_authorized_keys(make_daemon, isolated):
    daemon, endpoint = await _tcp_daemon(make_daemon)
    injected = _new_client(daemon, endpoint, "laptop\n" + "A" * 40 + " attacker", isolated / "evil.json")
    assert injected.returncode == 2
    assert "client name" in injected.stderr and "\\n" in injected.stderr
    assert not (isolated / "evil.json").exists()
    assert not _authorized_keys(daemon).exists() or "A" * 40 not in _authorized_keys(daemon).read_text()
    for bad in ("", " padded", "tab\there", "bell\a"):
        refused = _new_client(daemon, endpoint, bad, isolated / "bad.json")
        assert refused.returncode == 2, bad
        assert "Traceback" not in refused.stderr


async def test_client_names_may_be_any_printable_unicode(make_daemon, isolated):
    daemon, endpoint = await _tcp_daemon(make_daemon)
    made = _new_client(daemon, endpoint, "café 東京", isolated / "cafe.json")
    assert made.returncode == 0, made.stderr
    key = json.loads((isolated / "cafe.json").read_text())["client_public_key"]
    assert _authorized_keys(daemon).read_text(encoding="utf-8") == f"{key} café 東京\n"
    async with DaemonClient.from_file(isolated / "cafe.json") as client:
        assert (await client.info())["kernels"] == 0
    shown = cli("keys", "--config", str(daemon.config_file))
    assert f"{key}  café 東京" in shown.stdout


async def test_a_removed_key_loses_its_open_connection(make_daemon, isolated):
    daemon, endpoint = await _tcp_daemon(make_daemon)
    assert _new_client(daemon, endpoint, "revoked", isolated / "revoked.json").returncode == 0
    assert _new_client(daemon, endpoint, "kept", isolated / "kept.json").returncode == 0
    async with (
        DaemonClient.from_file(isolated / "revoked.json") as revoked,
        DaemonClient.from_file(isolated / "kept.json") as kept,
    ):
        await revoked.info()
        await kept.info()
        lines = _authorized_keys(daemon).read_text().splitlines(keepends=True)
        _authorized_keys(daemon).write_text("".join(line for line in lines if not line.endswith(" revoked\n")))
        with pytest.raises(AuthenticationFailed):
            await revoked.info()
        with pytest.raises(AuthenticationFailed):
            await revoked.launch("pyimport/kernel", launch_params=QUIET)
        assert (await kept.info())["kernels"] == 0  # the other client's connection is untouched
    assert "revoked" in daemon.log()


async def test_a_bad_line_in_authorized_keys_is_skipped_with_a_warning(make_daemon, isolated):
    daemon, endpoint = await _tcp_daemon(make_daemon)
    assert _new_client(daemon, endpoint, "laptop", isolated / "laptop.json").returncode == 0
    good = _authorized_keys(daemon).read_bytes()
    _authorized_keys(daemon).write_bytes(b"# caf\xe9 (latin-1)\n" + good)
    async with DaemonClient.from_file(isolated / "laptop.json", timeout=10) as client:
        assert (await client.info())["kernels"] == 0
    assert f"{_authorized_keys(daemon)} line 1" in daemon.log()
    assert daemon.running


async def test_an_unreadable_authorized_keys_refuses_until_repaired(make_daemon, isolated):
    daemon, endpoint = await _tcp_daemon(make_daemon)
    assert _new_client(daemon, endpoint, "laptop", isolated / "laptop.json").returncode == 0
    good = _authorized_keys(daemon).read_bytes()
    _authorized_keys(daemon).unlink()
    _authorized_keys(daemon).mkdir()
    async with DaemonClient.from_file(isolated / "laptop.json", timeout=10) as client:
        with pytest.raises(AuthenticationFailed):
            await client.info()
    async with daemon.client() as local:
        assert (await local.info())["kernels"] == 0
    assert "cannot read" in daemon.log()
    shutil.rmtree(_authorized_keys(daemon))
    _authorized_keys(daemon).write_bytes(good)
    async with DaemonClient.from_file(isolated / "laptop.json", timeout=10) as client:
        assert (await client.info())["kernels"] == 0


async def test_the_daemon_raises_its_open_file_limit(make_daemon):
    daemon = await make_daemon(start=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"needs a finite hard RLIMIT_NOFILE above 256 (it is {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # the daemon inherits a low soft limit
    try:
        await daemon.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert daemon.process is not None
    assert resource.prlimit(daemon.process.pid, resource.RLIMIT_NOFILE) == (hard, hard)
    assert f"raised the open-file limit from 256 to {hard}" in daemon.log()


async def _held_until_dropped(sock: socket.socket, address: tuple[str, int]) -> None:
    """Connect ``sock`` and read until the daemon drops the connection: an idle stranger that never says a word."""
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, address)
    try:
        while await loop.sock_recv(sock, 4096):
            pass
    except ConnectionResetError:
        pass


async def test_idle_tcp_connections_cannot_starve_local_clients(make_daemon):
    daemon, endpoint = await _tcp_daemon(make_daemon)
    assert daemon.process is not None
    # A low limit in the daemon makes the flood cheap: 1,100 connections are over four times its files.
    limit = 256
    resource.prlimit(daemon.process.pid, resource.RLIMIT_NOFILE, (limit, limit))
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    flood = [socket.socket() for _ in range(1100)]
    held = []
    try:
        for sock in flood:
            sock.setblocking(False)
            held.append(asyncio.ensure_future(_held_until_dropped(sock, (host, int(port)))))
        # The first connection to end is one the guard cut: past its limit (128 here) it cuts each new one at once,
        # where zmq drops a silent connection only after its handshake timeout (10 s).
        done, _ = await asyncio.wait(held, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert done, "the daemon dropped none of 1,100 idle connections in 60 s"
        assert [task.exception() for task in done] == [None] * len(done)
        async with daemon.client(timeout=30) as local:  # while the flood holds all the guard allows
            assert (await local.info())["kernels"] == 0
    finally:
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        for sock in flood:
            sock.close()
    assert daemon.running
    assert "refused a tcp connection" in daemon.log()


def test_a_key_is_added_on_a_line_of_its_own(isolated):
    state = isolated / "state" / "kernel-nanny"
    state.mkdir(parents=True, mode=0o700)
    kept = "K" * 40
    (state / "authorized_keys").write_text(f"{kept} edited by hand, no final newline")
    made = cli("keys", "new", "second", "--endpoint", "tcp://192.0.2.2:5791", "-o", str(isolated / "c.json"))
    assert made.returncode == 0, made.stderr
    added = json.loads((isolated / "c.json").read_text())["client_public_key"]
    shown = cli("keys").stdout
    assert f"{kept}  edited by hand, no final newline" in shown and f"{added}  second" in shown


def test_a_key_cannot_be_added_to_a_broken_authorized_keys(isolated):
    (isolated / "state" / "kernel-nanny" / "authorized_keys").mkdir(parents=True)
    made = cli("keys", "new", "laptop", "--endpoint", "tcp://192.0.2.2:5791", "-o", str(isolated / "c.json"))
    assert made.returncode == 3 and "Traceback" not in made.stderr  # 3: a failure, not a usage error
    assert "cannot add a key to" in made.stderr and "Is a directory" in made.stderr
    assert not (isolated / "c.json").exists()
