"""The nanny fork server as a real process: nannies forked from it, its fallbacks, its security, its stale code."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel_nanny import KernelClient, LaunchError, LaunchRequest, ManagerClient, start_kernel
from kernel_nanny.client.running import NANNY_MODULE, list_running_kernels
from kernel_nanny.nanny import forkserver
from kernel_nanny.nanny.forkserver import (
    ForkServer,
    code_fingerprint,
    default_socket_path,
    package_files,
    request_fork,
)
from kernel_nanny.nanny.startup import nanny_argv
from kernel_nanny.paths import nanny_state_dir
from tests.helpers import ManagerEvents, ProcessExit

QUIET = {"echo_output": False}


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime directory of this test's own (short: socket paths are limited), for the fork server, the
    nannies and their kernels alike: a fork server at its default path serves only this test."""
    path = Path(tempfile.mkdtemp(prefix="kn-fs-"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server_log(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A file for the fork server's log (its stderr): descriptor and path."""
    path = tmp_path / "forkserver.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    yield fd, path
    os.close(fd)


@pytest.fixture
async def server(runtime: Path, server_log: tuple[int, Path]) -> AsyncIterator[ForkServer]:
    """A fork server listening at the default path, closed (or found killed) afterwards."""
    started = await ForkServer.start(stderr=server_log[0])
    try:
        yield started
    finally:
        started.close()
        await started.wait_closed()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as stat_file:
        return int(stat_file.read().rsplit(b")", 1)[1].split()[1])


def _command_line(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return [arg for arg in cmdline.read().split(b"\0") if arg]


async def _start() -> tuple[dict[str, Any], ManagerClient]:
    info, manager = await start_kernel(LaunchRequest(kernel_type="pyimport/kernel", supervised=True, params=QUIET))
    assert isinstance(manager, ManagerClient)
    return dict(info), manager


async def _stop(manager: ManagerClient) -> None:
    try:
        await manager.shutdown(now=True)
    finally:
        await manager.cleanup()


async def _run(info: dict[str, Any], code: str) -> str:
    async with KernelClient(info) as client:
        result = await client.execute_interactive(code, timeout=60)
    return result.stream_text()


async def test_a_nanny_from_the_fork_server_is_a_working_nanny(server, runtime, monkeypatch):
    workdir = runtime / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("KN_FORKSERVER_PROBE", "sent along")  # set after the server started: it comes with the request
    info, manager = await _start()
    try:
        nanny_pid = info["nanny_pid"]
        assert _parent(nanny_pid) == server.pid  # forked, not spawned
        assert _command_line(nanny_pid) == [os.fsencode(a) for a in nanny_argv(sys.executable)]
        assert os.readlink(f"/proc/{nanny_pid}/cwd") == str(workdir)
        assert [k.kernel_id for k in list_running_kernels()] == [info["kernel_id"]]  # found as a nanny, not stale
        assert await _run(info, "import os; print(os.environ['KN_FORKSERVER_PROBE'], os.getppid())") == (
            f"sent along {nanny_pid}\n"
        )
        events = await ManagerEvents.subscribed(manager)
        await manager.signal("SIGKILL")
        await events.until("kernel_restarted")
        assert events.lifecycle() == ["kernel_died", "kernel_restarted"]
        assert await _run(info, "print(6 * 7)") == "42\n"
        details = await manager.info()
        assert details["restart_count"] == 1 and details["nanny_pid"] == nanny_pid
        log = (nanny_state_dir(str(info["kernel_id"]), create=False) / "nanny.log").read_text()
        assert "died: " in log  # the nanny's own log reached its file, not the fork server's stderr
    finally:
        await _stop(manager)
    await ProcessExit(nanny_pid).wait()
    assert _zombie_children(server.pid) == []  # the fork server reaps the nannies it forked


async def test_a_forked_nanny_s_last_event_reaches_its_clients(server):
    """A forked nanny ends with os._exit, which would stop libzmq's I/O thread before it sent what the nanny's
    closed sockets hold: its nanny_exiting (then the client waits for missed heartbeats instead). Lost for about
    one start in ten before the child waited for it: five starts show it."""
    for _ in range(5):
        info, manager = await _start()
        assert _parent(info["nanny_pid"]) == server.pid
        events = await ManagerEvents.subscribed(manager)
        await _stop(manager)
        assert "nanny_exiting" in events.kinds()


async def test_nannies_that_exit_at_once_are_reaped(server):
    for _ in range(3):
        reply = await _ask(server.socket_path)
        assert reply.forked
        assert reply.pid is not None
        await ProcessExit(reply.pid).wait()  # it read no handover, and exited
    assert (await _ask(server.socket_path)).forked  # a round trip later (its exit is long reaped)...
    assert _zombie_children(server.pid) == []  # ...no child of the server is left a zombie


def _zombie_children(pid: int) -> list[int]:
    zombies = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] == b"Z":
                zombies.append(int(entry.name))
    return zombies


async def test_a_forked_nanny_finds_all_it_imports_preloaded(runtime, server_log, monkeypatch):
    """With -X importtime (set for the server and its starters alike: it is a start-up variable), every module a
    nanny imports itself shows in its log: none should, or PRELOADED misses it."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    server = await ForkServer.start(stderr=server_log[0])
    try:
        info, manager = await _start()
        try:
            assert _parent(info["nanny_pid"]) == server.pid
            events = await ManagerEvents.subscribed(manager)
            await manager.signal("SIGKILL")
            await events.until("kernel_restarted")
            assert await _run(info, "print('ok')") == "ok\n"
            log = (nanny_state_dir(info["kernel_id"], create=False) / "nanny.log").read_text()
        finally:
            await _stop(manager)
    finally:
        server.close()
        await server.wait_closed()
    imported = [line.rsplit("|", 1)[-1].strip() for line in log.splitlines() if line.startswith("import time:")]
    assert imported == []
    assert "import time:" in server_log[1].read_text()  # the server's own imports did show


async def test_the_fork_server_is_single_threaded_private_and_removes_its_socket(server, runtime):
    assert server.socket_path == default_socket_path() == runtime / forkserver.SOCKET_NAME
    assert stat.S_IMODE(os.stat(server.socket_path).st_mode) == 0o600
    with open(f"/proc/{server.pid}/status") as status:
        assert "Threads:\t1\n" in status.read().splitlines(keepends=True)  # nothing that makes forking unsafe
    assert repr(server) == f"<ForkServer pid={server.pid} socket={server.socket_path} state=open>"
    server.close()
    await server.wait_closed()
    assert server.returncode == 0  # its lifeline closed
    assert not server.socket_path.exists()
    assert repr(server).endswith("state=closed>")


async def test_sigterm_stops_the_fork_server_and_its_socket_goes(server):
    os.kill(server.pid, signal.SIGTERM)
    assert await server.wait() == 0
    assert not server.socket_path.exists()


async def test_killing_the_fork_server_loses_no_nanny_or_kernel(server, runtime):
    info, manager = await _start()
    try:
        assert _parent(info["nanny_pid"]) == server.pid
        server.abort()  # SIGKILL
        await server.wait_closed()
        assert server.returncode == -signal.SIGKILL
        assert server.socket_path.exists()  # a killed server cannot clean up...
        assert await _run(info, "print('still here')") == "still here\n"
        assert (await manager.info())["state"] == "running"
        # ...and a start then spawns its nanny
        other_info, other = await _start()
        try:
            assert _parent(other_info["nanny_pid"]) != server.pid
            assert await _run(other_info, "print(1 + 1)") == "2\n"
        finally:
            await _stop(other)
    finally:
        await _stop(manager)


async def test_without_a_fork_server_nannies_are_spawned(runtime):
    assert not default_socket_path().exists()
    info, manager = await _start()
    try:
        assert _parent(info["nanny_pid"]) != os.getpid()  # detached as ever
        assert NANNY_MODULE.encode() in _command_line(info["nanny_pid"])
        assert await _run(info, "print('spawned')") == "spawned\n"
    finally:
        await _stop(manager)


async def test_a_different_python_start_up_environment_is_refused_and_spawned(server, runtime, monkeypatch):
    monkeypatch.setenv("PYTHONKNFORKSERVERPROBE", "1")  # a variable the server's interpreter did not start with
    reply = await _ask(server.socket_path)
    assert reply.status == "refused" and "PYTHON" in reply.reason
    info, manager = await _start()
    try:
        assert _parent(info["nanny_pid"]) != server.pid
        assert await _run(info, "import os; print(os.environ['PYTHONKNFORKSERVERPROBE'])") == "1\n"
    finally:
        await _stop(manager)


async def test_a_starter_with_other_resource_limits_gets_them_by_spawning(server):
    """A forked nanny would get the fork server's limits (or cgroup, namespaces, capabilities...), a spawned one
    its starter's: the server refuses a starter whose differ."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    other = 8192 if soft == 4096 else 4096
    if hard != resource.RLIM_INFINITY and hard < other:
        pytest.skip("the core-size hard limit leaves no other soft limit to set")
    resource.setrlimit(resource.RLIMIT_CORE, (other, hard))
    try:
        reply = await _ask(server.socket_path)
        assert reply.status == "refused" and reply.reason.endswith("inherits: limits")
        info, manager = await _start()
        try:
            assert _parent(info["nanny_pid"]) != server.pid
            limits = Path(f"/proc/{info['nanny_pid']}/limits").read_text()
            assert re.search(rf"Max core file size\s+{other}\s", limits)
        finally:
            await _stop(manager)
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    assert (await _ask(server.socket_path)).forked


async def test_stale_code_is_never_forked_the_server_re_executes_and_serves_again(server, server_log):
    module = Path(forkserver.__file__)
    assert str(module) in package_files()  # a file the server imported (it runs it)
    before = os.stat(module)
    try:
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # "an upgrade"
        assert code_fingerprint([str(module)]) != ((str(module), before.st_mtime_ns, before.st_size),)
        reply = await _ask(server.socket_path)
        assert reply.status == "stale" and reply.pid is None
        # The server re-executed itself (same pid, same socket) with a fingerprint of the file as it is now.
        info, manager = await _start()
        try:
            assert _parent(info["nanny_pid"]) == server.pid
            assert await _run(info, "print('new code')") == "new code\n"
        finally:
            await _stop(manager)
        # Stale again: the start still succeeds, by spawning, and the server is back once more.
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns + 2 * 10**9))
        spawned_info, spawned = await _start()
        try:
            assert _parent(spawned_info["nanny_pid"]) != server.pid
            assert await _run(spawned_info, "print('spawned')") == "spawned\n"
        finally:
            await _stop(spawned)
    finally:
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert server.returncode is None
    reply = await _ask(server.socket_path)
    assert reply.status == "stale", reply  # the file changed back: that too is a change
    reply = await _ask(server.socket_path)
    assert reply.forked, reply  # served by the re-executed server...
    assert server_log[1].read_text().count("re-executed: serving") == 3  # ...its third
    assert server.returncode is None


async def test_a_peer_of_another_uid_is_refused(server_log, tmp_path):
    """Another user cannot even open the socket (0600): to reach the uid check (SO_PEERCRED) behind that,
    this test opens the socket's directory and mode to everybody, which a real server never does."""
    if os.getuid() != 0:
        pytest.skip("needs root, to connect as another user")
    public = Path(tempfile.mkdtemp(prefix="kn-fs-public-"))
    try:
        public.chmod(0o755)
        path = public / "fs.sock"
        server = await ForkServer.start(path, stderr=server_log[0])
        try:
            path.chmod(0o666)
            stranger = textwrap.dedent(
                f"""
                import json, os, socket
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                os.setresgid(65534, 65534, 65534)
                os.setresuid(65534, 65534, 65534)
                sock.connect({str(path)!r})
                devnull = os.open(os.devnull, os.O_RDWR)
                request = {{"argv": ["python", "-m", "kernel_nanny.nanny"], "cwd": "/", "env": {{}}, "umask": 18}}
                try:
                    socket.send_fds(sock, [json.dumps(request).encode() + b"\\n"], [devnull] * 3)
                except BrokenPipeError:
                    pass  # refused before it read anything: the answer is there to read all the same
                print(sock.makefile("rb").readline().decode(), end="")
                """
            )
            out = subprocess.run([sys.executable, "-c", stranger], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["status"] == "refused"
            assert "of uid 65534: this fork server forks nannies for uid 0 only" in server_log[1].read_text()
            assert (await _ask(path)).forked  # its own user is served
        finally:
            server.close()
            await server.wait_closed()
    finally:
        shutil.rmtree(public, ignore_errors=True)


async def test_a_request_of_many_chunks_arrives_whole(server, monkeypatch):
    for n in range(6):  # 600 KB of environment, in variables a kernel's exec accepts (at most 128 KiB each)
        monkeypatch.setenv(f"KN_FORKSERVER_BULK_{n}", str(n) * 100_000)
    info, manager = await _start()
    try:
        assert _parent(info["nanny_pid"]) == server.pid
        code = "import os; print(sum(len(v) for k, v in os.environ.items() if k.startswith('KN_FORKSERVER_BULK_')))"
        assert await _run(info, code) == "600000\n"
    finally:
        await _stop(manager)


async def test_a_malformed_request_gets_an_error_and_the_server_serves_on(server):
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        sock.connect(str(server.socket_path))
        sock.sendall(b'{"argv": "not a list"}\n')  # and no descriptors
        reply = json.loads(sock.makefile("rb").readline())
    assert reply["status"] == "error" and "argv" in reply["reason"]
    info, manager = await _start()
    try:
        assert _parent(info["nanny_pid"]) == server.pid
    finally:
        await _stop(manager)


async def test_a_fork_server_at_a_path_with_nothing_listening_is_unavailable(runtime):
    path = runtime / "nobody.sock"
    assert (await _ask(path)).status == "unavailable"


async def test_a_fork_server_that_cannot_listen_is_an_error(runtime, server_log):
    with pytest.raises(LaunchError, match="did not start"):
        await ForkServer.start(runtime / "missing" / "fs.sock", stderr=server_log[0])
    assert "cannot start a fork server" in server_log[1].read_text()


async def test_a_second_fork_server_takes_the_path_over_and_the_first_leaves_it(server, server_log):
    second = await ForkServer.start(stderr=server_log[0])
    try:
        server.close()
        await server.wait_closed()
        assert second.socket_path.exists()  # the first saw the path was no longer its own
        info, manager = await _start()
        try:
            assert _parent(info["nanny_pid"]) == second.pid
        finally:
            await _stop(manager)
    finally:
        second.close()
        await second.wait_closed()


async def _ask(path: Path) -> forkserver.ForkReply:
    """A fork request with a nanny that gets nothing to do: no handover on its stdin (it exits at once)."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.close(stdin_w)  # end of file: a nanny forked now reads an empty handover and exits
        return await request_fork(path, nanny_argv(sys.executable), (stdin_r, stdout_w, devnull))
    finally:
        for fd in (stdin_r, stdout_r, stdout_w, devnull):
            os.close(fd)
