"""The SSH provider against real OpenSSH servers: loopback sshd, and a second host in a network namespace."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from kernel_nanny import (
    ConfigError,
    InvalidRequest,
    KernelClient,
    KernelFinder,
    LaunchError,
    LaunchRequest,
    ManagerClient,
    NoSuchKernel,
    start_kernel,
)
from kernel_nanny.cli import main as cli_main
from kernel_nanny.providers.ssh import SSHKernelManager

from ..daemons import RunningDaemon
from ..helpers import interrupted
from ..reattach import reattach_elsewhere
from .ssh_servers import TEST_USER, SSHServer, python_command, runtime_dir_for

pytestmark = pytest.mark.timeout(180)

TYPE = "pyimport/kernel"


def _host_table(name: str, server: SSHServer, *, user: str, command: str, **overrides: object) -> str:
    settings: dict[str, object] = {
        "host": server.address,
        "port": server.port,
        "user": user,
        "keys": [str(server.client_key)],
        "known_hosts": str(server.known_hosts),
        "command": command,
        "kernels": [TYPE],
        "connect_timeout": 5,
        **overrides,
    }
    lines = [f"[providers.ssh.hosts.{name}]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def configure(tmp_path, monkeypatch):
    """Write a configuration of ssh hosts and make it everybody's (local nannies included)."""

    def write(*tables: str) -> KernelFinder:
        path = tmp_path / "config.toml"
        path.write_text("".join(tables))
        monkeypatch.setenv("KERNEL_NANNY_CONFIG", str(path))
        return KernelFinder.from_entrypoints()

    return write


@pytest.fixture
def root_host(sshd, ssh_keys):
    runtime = runtime_dir_for("root", ssh_keys)
    return _host_table("local", sshd, user="root", command=python_command(None, runtime)), runtime


@pytest.fixture
def user_host(remote_host, remote_python, ssh_keys):
    runtime = runtime_dir_for(TEST_USER, ssh_keys)
    return _host_table("remote", remote_host, user=TEST_USER, command=python_command(remote_python, runtime)), runtime


def _nanny_files(runtime: Path) -> list[Path]:
    return sorted(runtime.glob("kernel-*.json"))


async def _run(info, code: str) -> str:
    async with KernelClient(info) as kc:
        await kc.wait_for_ready(timeout=30)
        result = await kc.execute_interactive(code, timeout=30)
    assert result.ok, result.error
    return "".join(m.content.get("text", "") for m in result.outputs if m.msg_type == "stream")


async def _exited(pid: int) -> None:
    """Return once process ``pid`` (not our child) has exited: its pidfd becomes readable."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    try:
        await asyncio.wait_for(exited, 30)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


# -- settings -----------------------------------------------------------------


def test_hosts_and_their_kernel_types_are_listed_from_the_settings(configure, sshd):
    finder = configure(_host_table("gpu", sshd, user="root", command="kernel-nanny", kernels=["spec/python3"]))
    kernels = dict(finder.find_kernels())
    assert kernels["ssh/gpu/spec/python3"]["display_name"] == "spec/python3 on gpu"
    assert kernels["ssh/gpu/spec/python3"]["host"] == f"root@127.0.0.1:{sshd.port}"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[providers.ssh.hosts.gpu]\nport = 22\nkernels = ["spec/python3"]\n',
            "[providers.ssh.hosts.gpu] host: missing",
        ),
        (
            '[providers.ssh.hosts.gpu]\nhost = "h"\nport = 99999\n',
            "[providers.ssh.hosts.gpu] port: must be a whole number from 1 to 65535, got 99999",
        ),
        (
            '[providers.ssh.hosts.gpu]\nhost = "h"\nconnect_timeout = inf\n',
            "[providers.ssh.hosts.gpu] connect_timeout: must be a number of seconds > 0, got inf",
        ),
        (
            '[providers.ssh.hosts.gpu]\nhost = "h"\nkernels = ["python3"]\n',
            "[providers.ssh.hosts.gpu] kernels: must be remote kernel type ids",
        ),
        (
            '[providers.ssh.hosts.gpu]\nhost = "h"\npasword = "x"\n',
            "[providers.ssh.hosts.gpu] pasword: unknown setting",
        ),
        ('[providers.ssh]\nhost = "h"\n', "[providers.ssh] host: unknown setting (known: hosts)"),
        ("[providers.ssh]\nhosts = 3\n", "[providers.ssh] hosts: must be a table, got 3"),
    ],
)
def test_a_wrong_setting_names_the_file_the_table_and_the_key(tmp_path, monkeypatch, table, message):
    path = tmp_path / "config.toml"
    path.write_text(table)
    with pytest.raises(ConfigError) as info:
        KernelFinder.from_entrypoints(config=path)
    assert str(info.value).startswith(f"{path}: {message}")


# -- launching: the provider's own manager --------------------------------------


async def test_launch_forwards_every_port_and_drives_the_remote_nanny(configure, root_host):
    table, runtime = root_host
    finder = configure(table)
    info, manager = await finder.launch(f"ssh/local/{TYPE}")
    assert isinstance(manager, SSHKernelManager)
    try:
        remote = manager.remote_info
        assert remote["ip"] == "127.0.0.1" and remote["transport"] == "tcp"  # bound to the host's loopback only
        assert info["ip"] == "127.0.0.1"
        ports = [info[f"{c}_port"] for c in ("shell", "iopub", "stdin", "control", "hb")]
        assert len(set(ports)) == 5
        assert all(isinstance(p, int) for p in ports)
        assert "nanny_control_port" not in info  # the remote nanny is the manager's business
        assert await _run(info, "import os; print('pid', os.getpid())") != "pid 1\n"
        assert await manager.is_alive()
        # an interrupt crosses the tunnel to the remote nanny, which signals the kernel
        result = await interrupted(info, manager)
        assert result.error["ename"] == "KeyboardInterrupt"
        await manager.kill()
        status = await asyncio.wait_for(manager.wait(), 30)
        assert status.reason == "killed"
        await manager.restart()
        assert "42" in await _run(info, "print(6 * 7)")
    finally:
        await manager.shutdown()
    assert _nanny_files(runtime) == []  # the remote nanny was stopped explicitly, its files removed
    await _exited(remote["nanny_pid"])  # fails by timeout if the remote nanny stays


# -- behind a local nanny, as an unprivileged user on another host ----------------


async def test_a_remote_kernel_behind_a_local_nanny_is_managed_like_a_local_one(configure, user_host, remote_host):
    table, runtime = user_host
    finder = configure(table)
    info, manager = await start_kernel(
        LaunchRequest(kernel_type=f"ssh/remote/{TYPE}", name="far", supervised=True), finder=finder
    )
    assert isinstance(manager, ManagerClient)
    try:
        remote_files = _nanny_files(runtime)
        assert len(remote_files) == 1
        remote = json.loads(remote_files[0].read_text())
        # the kernel listens on the remote host's own loopback: not reachable on its network address
        with pytest.raises(OSError), socket.create_connection((remote_host.address, remote["shell_port"]), timeout=2):
            pass
        out = await _run(info, "import getpass, os; print(getpass.getuser(), os.getpid())")
        user, pid = out.split()
        assert user == TEST_USER

        events: asyncio.Queue = asyncio.Queue()
        manager.add_event_handler(events.put_nowait)
        await _run(info, "import os; os.write(2, b'from the kernel process\\n')")
        while True:  # the remote process's own stderr crosses both nannies as a stream event
            event = await asyncio.wait_for(events.get(), 30)
            if event.msg_type == "stream" and "from the kernel process" in event.content["text"]:
                break

        await manager.restart()
        new_pid = (await _run(info, "import os; print(os.getpid())")).strip()
        assert new_pid != pid
        assert (await manager.info())["restart_count"] == 1

        await manager.kill()
        while True:
            event = await asyncio.wait_for(events.get(), 30)
            if event.msg_type == "kernel_died":
                break
        assert event.content["requested"] and not await manager.is_alive()
    finally:
        await manager.shutdown()
        await manager.cleanup()
    assert _nanny_files(runtime) == []
    await _exited(info["nanny_pid"])  # the local nanny is gone too


async def test_the_kernel_survives_a_dropped_connection_and_the_forwards_come_back(configure, root_host, sshd):
    table, runtime = root_host
    finder = configure(table)
    info, manager = await finder.launch(f"ssh/local/{TYPE}")
    assert isinstance(manager, SSHKernelManager)
    try:
        await _run(info, "state = 41")
        before = manager.ssh_local_address
        assert before is not None
        pids = sshd.session_pids(before[1])
        assert pids
        for pid in pids:  # the connection dies for real: its sshd processes are killed
            os.kill(pid, signal.SIGKILL)
        # the kernel keeps running on the host, and the same local ports lead to it again
        assert "42" in await _run(info, "print(state + 1)")
        after = manager.ssh_local_address
        assert after is not None
        assert sshd.session_pids(after[1]) != pids
        assert await manager.is_alive()
    finally:
        await manager.shutdown()
    assert _nanny_files(runtime) == []


async def test_a_local_nanny_rides_out_a_dropped_connection(configure, user_host):
    table, runtime = user_host
    finder = configure(table)
    info, manager = await start_kernel(LaunchRequest(kernel_type=f"ssh/remote/{TYPE}", supervised=True), finder=finder)
    try:
        await _run(info, "state = 41")
        events: asyncio.Queue = asyncio.Queue()
        manager.add_event_handler(events.put_nowait)
        # the connection dies for real: the sshd processes serving the test user's sessions are killed
        subprocess.run(["pkill", "-KILL", "-f", f"^sshd: {TEST_USER}"], check=True)
        assert "42" in await _run(info, "print(state + 1)")
        info_after = await manager.info()
        assert info_after["restart_count"] == 0 and info_after["state"] == "running"
        seen = []
        while not events.empty():
            seen.append(events.get_nowait().msg_type)
        assert "kernel_died" not in seen  # the local nanny did not take the drop for a death
    finally:
        await manager.shutdown()
        await manager.cleanup()
    assert _nanny_files(runtime) == []
    await _exited(info["nanny_pid"])


async def test_a_daemon_launches_ssh_kernels_from_its_own_configuration(root_host, tmp_path, monkeypatch):
    table, runtime = root_host
    local_runtime = tmp_path / "runtime"
    local_runtime.mkdir(mode=0o700)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(local_runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("KERNEL_NANNY_CONFIG", raising=False)  # only the daemon's --config names the host
    daemon = RunningDaemon(tmp_path, table)
    await daemon.start()
    try:
        async with daemon.client() as client:
            types = {entry["id"] for entry in await client.list_kernel_types()}
            assert f"ssh/local/{TYPE}" in types
            info, manager = await client.launch(f"ssh/local/{TYPE}", name="via-daemon")
            try:
                assert "42" in await _run(info, "print(6 * 7)")
                assert [k["name"] for k in await client.list_kernels()] == ["via-daemon"]
                assert len(_nanny_files(runtime)) == 1  # its remote nanny, on the host
            finally:
                await client.shutdown_kernel("via-daemon")
                await manager.cleanup()
        assert _nanny_files(runtime) == []
        await _exited(info["nanny_pid"])
    finally:
        assert await daemon.stop() == 0


# -- errors: each names the host and the fix, and leaves nothing running -------------


async def _launch_error(finder: KernelFinder, type_id: str) -> str:
    with pytest.raises(LaunchError) as info:
        await finder.launch(type_id)
    return str(info.value)


async def test_unreachable_host(configure, sshd):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    finder = configure(_host_table("gone", sshd, user="root", command="kernel-nanny", port=closed))
    message = await _launch_error(finder, f"ssh/gone/{TYPE}")
    assert "ssh host gone" in message and "unreachable" in message and "sshd runs there" in message


async def test_refused_key(configure, sshd, ssh_keys):
    finder = configure(_host_table("h", sshd, user="root", command="kernel-nanny", keys=[str(ssh_keys / "other_key")]))
    message = await _launch_error(finder, f"ssh/h/{TYPE}")
    assert "refused the key" in message and "other_key" in message and "authorized_keys" in message


async def test_unknown_host_key_is_refused_until_trusted(configure, sshd, root_host, tmp_path, capsys):
    table, runtime = root_host
    known_hosts = tmp_path / "ssh" / "known_hosts"
    table = table.replace(json.dumps(str(sshd.known_hosts)), json.dumps(str(known_hosts)))
    finder = configure(table)
    message = await _launch_error(finder, f"ssh/local/{TYPE}")
    assert "kernel-nanny ssh-trust local" in message
    known_hosts.parent.mkdir()
    known_hosts.write_text("")
    message = await _launch_error(finder, f"ssh/local/{TYPE}")
    assert "host key is not in" in message and "kernel-nanny ssh-trust local" in message

    known_hosts.unlink()  # trusting creates the file, private
    assert await asyncio.to_thread(cli_main, ["ssh-trust", "local", "--yes"]) == 0
    fingerprint = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.directory / "host_key.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert fingerprint in capsys.readouterr().out
    assert oct(known_hosts.stat().st_mode & 0o777) == "0o600"
    info, manager = await KernelFinder.from_entrypoints().launch(f"ssh/local/{TYPE}")
    await manager.shutdown()


async def test_kernel_nanny_missing_on_the_host(configure, sshd, ssh_keys):
    finder = configure(_host_table("bare", sshd, user="root", command="/nonexistent/kernel-nanny"))
    message = await _launch_error(finder, f"ssh/bare/{TYPE}")
    assert "'/nonexistent/kernel-nanny' was not found there" in message and "install kernel-nanny" in message


async def test_a_failing_remote_start_reports_the_remote_error(configure, root_host):
    table, runtime = root_host
    finder = configure(table.replace(f'kernels = ["{TYPE}"]', 'kernels = ["spec/no-such-kernel"]'))
    message = await _launch_error(finder, "ssh/local/spec/no-such-kernel")
    assert "ssh host local" in message and "no-such-kernel" in message
    assert _nanny_files(runtime) == []


async def test_unconfigured_types_are_not_launched(configure, root_host):
    table, _ = root_host
    finder = configure(table)
    with pytest.raises(LookupError):
        await finder.launch("ssh/local/spec/other")
    with pytest.raises(LookupError):
        await finder.launch(f"ssh/nohost/{TYPE}")


def test_ssh_trust_of_an_unknown_host_name_says_which_exist(configure, sshd, capsys):
    configure(_host_table("gpu", sshd, user="root", command="kernel-nanny"))
    assert cli_main(["ssh-trust", "cpu", "--yes"]) == 3
    err = capsys.readouterr().err
    assert "no ssh host 'cpu'" in err and "configured: gpu" in err


# -- re-attaching from JSON, in a new process -------------------------------------

SSH_MANAGER = "kernel_nanny.providers.ssh:SSHKernelManager"


async def test_a_new_process_takes_the_remote_kernel_over_from_json(configure, root_host, monkeypatch):
    table, runtime = root_host
    info, manager = await configure(table).launch(f"ssh/local/{TYPE}")
    try:
        state = manager.to_json()
        assert json.loads(state)["ssh_host"]["name"] == "local"
        monkeypatch.delenv("KERNEL_NANNY_CONFIG")  # the host's settings travel in the JSON
        outcome = await reattach_elsewhere(
            SSH_MANAGER,
            state,
            "alive",
            "execute:print(6 * 7)",
            "interrupt",
            "kill",
            "restart",
            "execute:print(7 * 6)",
            "shutdown",
        )
        assert outcome["results"] == [
            True,
            "42\n",
            "KeyboardInterrupt",
            "killed by SIGKILL",
            "restarted",
            "42\n",
            "shut down",
        ]
        assert _nanny_files(runtime) == []  # the new process stopped the remote nanny
    finally:
        await manager.cleanup()


async def test_a_remote_kernel_that_is_gone_is_refused_naming_it(configure, root_host):
    table, _ = root_host
    info, manager = await configure(table).launch(f"ssh/local/{TYPE}")
    state = manager.to_json()
    await manager.shutdown()
    outcome = await reattach_elsewhere(SSH_MANAGER, state, "alive")
    assert outcome["error"] == "NoSuchKernel"
    assert f"kernel {manager.remote_kernel_id[:12]} on ssh host local is gone" in outcome["message"]
    # a pid that now names another program (the remote sshd, say) is refused by its start time too
    data = json.loads(state)
    data["remote_info"]["nanny_pid"] = 1
    with pytest.raises(NoSuchKernel, match="is gone: its nanny .*pid 1"):
        await SSHKernelManager.from_json(json.dumps(data))


async def test_another_kind_of_state_is_refused_before_connecting():
    with pytest.raises(
        InvalidRequest, match="a kernel manager state of kind 'ssh' was expected, but this JSON is of kind 'docker'"
    ):
        await SSHKernelManager.from_json('{"kind": "docker", "version": 1}')
    with pytest.raises(InvalidRequest, match="lacks 'remote_info', 'ssh_host'"):
        await SSHKernelManager.from_json('{"kind": "ssh", "version": 1}')
