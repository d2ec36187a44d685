"""Local launch: connection files, process groups, interrupts, the shutdown ladder."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from kernel_nanny import KernelClient, LaunchError
from kernel_nanny.launch import KernelCommand, launch_local, new_connection_info, runtime_dir
from kernel_nanny.launch import connection as connection_module
from kernel_nanny.paths import secure_directory

from ..conftest import IPYKERNEL
from ..helpers import BUSY_LOOP, interrupted

QUIET = {"echo_output": False}


def _mode(path) -> int:
    """Permission bits (jupyter_client may add the sticky bit to the runtime dir)."""
    return stat.S_IMODE(os.stat(path).st_mode) & 0o777


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is dead for our purposes
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


async def _run(info, code: str):
    async with KernelClient(info) as kc:
        return await kc.execute_interactive(code, timeout=30)


async def test_connection_file_is_private_and_removed_after_shutdown(kernel, runtime_dir):
    path = kernel.manager.connection_file
    assert path.parent == Path(runtime_dir)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert json.loads(path.read_text()) == kernel.connection_info
    ipc_files = [Path(f"{kernel.connection_info['ip']}-{n}") for n in range(1, 6)]
    assert all(p.exists() for p in ipc_files)
    await kernel.manager.shutdown()
    assert not path.exists()
    assert not any(p.exists() for p in ipc_files)


def test_ipc_is_the_default_and_puts_sockets_in_the_runtime_dir(runtime_dir):
    info = new_connection_info("abc123")
    assert info["transport"] == "ipc"
    assert info["ip"].startswith(runtime_dir)
    assert len(info["key"]) == 64  # 256-bit key, hex
    assert "curve_publickey" not in info


def test_tcp_ports_are_distinct_and_curve_follows_policy():
    auto = new_connection_info("k", transport="tcp", kernel_supports_curve=True)
    ports = {auto[f"{c}_port"] for c in ("shell", "iopub", "stdin", "control", "hb")}
    assert len(ports) == 5
    assert "curve_secretkey" in auto
    assert "curve_publickey" not in new_connection_info("k", transport="tcp", kernel_supports_curve=False)
    assert "curve_publickey" not in new_connection_info(
        "k", transport="tcp", kernel_supports_curve=True, encryption="disabled"
    )
    with pytest.raises(LaunchError, match="does not declare curve"):
        new_connection_info("k", transport="tcp", encryption="required")
    with pytest.raises(LaunchError, match="transport"):
        new_connection_info("k", transport="udp")
    with pytest.raises(LaunchError, match="encryption"):
        new_connection_info("k", transport="tcp", encryption="maybe")


def test_runtime_dir_is_tightened_and_foreign_dirs_refused(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    secure_directory(loose)
    assert _mode(loose) == 0o700
    if os.getuid() != 0:
        pytest.skip("needs root to create a directory owned by another user")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    with pytest.raises(LaunchError, match="another user"):
        secure_directory(foreign)
    assert runtime_dir().is_dir()


async def test_kernel_runs_in_its_own_process_group(kernel):
    pid = kernel.manager.pid
    assert os.getpgid(pid) == pid != os.getpgid(0)


async def test_argv_templating_env_expansion_and_cwd(tmp_path, monkeypatch):
    monkeypatch.setenv("KN_BASE", "from-launcher")
    resource = tmp_path / "res"
    resource.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    command = KernelCommand(
        argv=[*IPYKERNEL.argv, "--IPKernelApp.exec_lines=[]", "--HistoryManager.hist_file={resource_dir}/h.db"],
        env={"KN_SPEC": "${KN_BASE}/spec", "KN_UNKNOWN": "${KN_NOT_SET}"},
        resource_dir=str(resource),
    )
    info, manager = await launch_local(command, cwd=str(work), launch_params={**QUIET, "env": {"KN_EXTRA": "x"}})
    try:
        result = await _run(
            info,
            "import os; print(os.environ['KN_SPEC'], os.environ['KN_UNKNOWN'], os.environ['KN_EXTRA'], os.getcwd())",
        )
        assert result.stream_text().split() == ["from-launcher/spec", "${KN_NOT_SET}", "x", str(work)]
        assert command.format_argv("CF")[-1] == f"--HistoryManager.hist_file={resource}/h.db"
        assert command.format_argv("CF")[command.argv.index("{connection_file}")] == "CF"
    finally:
        await manager.shutdown(now=True)


async def test_signal_interrupt_stops_a_busy_loop(kernel):
    result = await interrupted(kernel.connection_info, kernel.manager, BUSY_LOOP)
    assert result.error["ename"] == "KeyboardInterrupt"
    assert await kernel.manager.is_alive()


async def test_message_mode_interrupt_goes_over_control():
    command = KernelCommand(argv=IPYKERNEL.argv, interrupt_mode="message")
    info, manager = await launch_local(command, launch_params=QUIET)
    try:
        result = await interrupted(info, manager)
        assert result.error["ename"] == "KeyboardInterrupt"
    finally:
        await manager.shutdown(now=True)


async def test_kill_takes_the_whole_process_group(kernel):
    result = await _run(
        kernel.connection_info,
        "import subprocess; p = subprocess.Popen(['sleep', '300']); print(p.pid)",
    )
    child = int(result.stream_text())
    assert _pid_alive(child)
    await kernel.manager.kill()
    status = await kernel.manager.wait()
    assert status.signal == signal.SIGKILL and status.reason == "killed"
    # the orphaned child is reparented and reaped by init, which may take a moment
    for _ in range(200):
        if not _pid_alive(child):
            break
        await asyncio.sleep(0.01)
    assert not _pid_alive(child)


async def test_graceful_shutdown_exits_cleanly(kernel):
    await kernel.manager.shutdown()
    status = await kernel.manager.wait()
    assert status.exit_code == 0 and status.success
    assert not await kernel.manager.is_alive()


STUBBORN = textwrap.dedent(
    """
    import json, signal, sys, zmq
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    info = json.load(open(sys.argv[1]))
    ctx = zmq.Context()
    socks = []
    for name, kind in [("shell", zmq.ROUTER), ("control", zmq.ROUTER), ("stdin", zmq.ROUTER), ("iopub", zmq.PUB), ("hb", zmq.REP)]:
        s = ctx.socket(kind); s.bind(f"ipc://{info['ip']}-{info[name + '_port']}"); socks.append(s)
    # answers nothing and ignores SIGTERM: only SIGKILL ends it
    signal.pause()
    """
)


async def test_shutdown_ladder_ends_with_sigkill_for_a_stubborn_process(tmp_path):
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    from kernel_nanny.launch import LocalKernelManager, write_connection_file

    info = new_connection_info("stubborn")
    path = write_connection_file(info, "stubborn")
    manager = LocalKernelManager(
        KernelCommand(argv=[sys.executable, str(script), "{connection_file}"]), info, path, shutdown_timeout=0.3
    )
    await manager.start()
    async with KernelClient(info) as kc:  # wait until its sockets are bound
        await kc.heartbeat(timeout=0.05)
    await manager.shutdown()
    status = await manager.wait()
    assert status.signal == signal.SIGKILL
    assert not path.exists()


async def test_restart_keeps_connection_info_and_resets_state(kernel):
    info = dict(kernel.connection_info)
    old_pid = kernel.manager.pid
    await _run(info, "remember = 1")
    await kernel.manager.restart()
    assert kernel.manager.connection_info == info
    assert kernel.manager.pid != old_pid
    result = await _run(info, "print('remember' in dir())")
    assert result.stream_text() == "False\n"


async def test_missing_executable_is_a_clear_launch_error(runtime_dir):
    before = set(os.listdir(runtime_dir))
    with pytest.raises(LaunchError, match="'/nonexistent/kernel' not found"):
        await launch_local(KernelCommand(argv=["/nonexistent/kernel", "{connection_file}"]))
    assert set(os.listdir(runtime_dir)) == before  # nothing left behind


async def test_kernel_dying_at_startup_reports_its_output(runtime_dir):
    before = set(os.listdir(runtime_dir))
    command = KernelCommand(
        argv=[sys.executable, "-c", "import sys; print('no such module: frob', file=sys.stderr); sys.exit(7)"]
    )
    with pytest.raises(LaunchError) as caught:
        await launch_local(command, kernel_name="test/broken", launch_params=QUIET)
    message = str(caught.value)
    assert "test/broken" in message and "code 7" in message and "no such module: frob" in message
    assert set(os.listdir(runtime_dir)) == before


async def test_startup_timeout_kills_the_kernel(runtime_dir):
    command = KernelCommand(argv=[sys.executable, "-c", "import time; print('hanging', flush=True); time.sleep(600)"])
    with pytest.raises(LaunchError, match="did not become ready within 0.5 s"):
        await launch_local(command, launch_params={**QUIET, "startup_timeout": 0.5})


async def test_unknown_launch_params_are_rejected():
    with pytest.raises(LaunchError, match="unknown launch parameter.*colour.*known: .*transport"):
        await launch_local(IPYKERNEL, launch_params={"colour": "blue"})


async def test_port_taken_before_the_kernel_binds_is_relaunched(monkeypatch):
    """A real EADDRINUSE in a real kernel. The race is forced (a fault that cannot be
    produced on demand): the first port pick returns a port another socket holds."""
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real_pick = connection_module._free_tcp_ports
    picks = []

    def pick(ip, count):
        ports = real_pick(ip, count)
        if not picks:
            ports[0] = taken
        picks.append(ports)
        return ports

    monkeypatch.setattr(connection_module, "_free_tcp_ports", pick)
    try:
        info, manager = await launch_local(IPYKERNEL, launch_params={**QUIET, "transport": "tcp"})
        try:
            assert len(picks) == 2
            assert info["shell_port"] != taken
            assert (await _run(info, "print(1)")).stream_text() == "1\n"
        finally:
            await manager.shutdown(now=True)
    finally:
        blocker.close()


async def test_death_is_seen_even_while_a_grandchild_holds_the_output_pipes():
    """A kernel that does not capture its fds passes them to its subprocesses; one in
    its own session survives the kernel and keeps the pipes open. The death must still
    be observed at once (asyncio's Process.wait() would wait for the pipes)."""
    command = KernelCommand(argv=[*IPYKERNEL.argv, "--IPKernelApp.capture_fd_output=False"])
    info, manager = await launch_local(command, launch_params=QUIET)
    holder = None
    try:
        result = await _run(
            info, "import subprocess\np = subprocess.Popen(['sleep', '300'], start_new_session=True)\nprint(p.pid)"
        )
        holder = int(result.stream_text())
        os.kill(manager.pid, signal.SIGKILL)
        status = await asyncio.wait_for(manager.wait(), 10)  # with the bug: 300 s
        assert status.signal == signal.SIGKILL
        assert _pid_alive(holder)  # the pipes are still held open
    finally:
        if holder:
            os.kill(holder, signal.SIGKILL)
        await manager.shutdown(now=True)


@pytest.mark.parametrize(
    "name", ["python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])]
)
def test_bare_python_in_a_spec_means_the_running_python(name):
    """As jupyter_client does: ipykernel's spec says 'python', which PATH may resolve elsewhere."""
    assert KernelCommand(argv=[name, "-m", "ipykernel_launcher"]).format_argv("cf")[0] == sys.executable
    assert KernelCommand(argv=["/usr/bin/python3", "x"]).format_argv("cf")[0] == "/usr/bin/python3"


async def test_a_missing_working_directory_is_named(tmp_path):
    with pytest.raises(LaunchError, match="working directory .*nowhere.* does not exist"):
        await launch_local(IPYKERNEL, cwd=str(tmp_path / "nowhere"), launch_params=QUIET)


def test_ipykernel_of_the_running_python_runs_through_kernel_nannys_launcher():
    """Any spec that runs ipykernel with this Python (ipykernel's own says 'python') gets the deeper iopub queue."""
    argv = ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert KernelCommand(argv=argv).format_argv("cf") == [
        sys.executable,
        "-m",
        "kernel_nanny.ipykernel_launcher",
        "-f",
        "cf",
    ]
    # Another Python may not have kernel-nanny: its ipykernel runs as written.
    other = ["/opt/other/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert KernelCommand(argv=other).format_argv("cf") == [other[0], "-m", "ipykernel_launcher", "-f", "cf"]
