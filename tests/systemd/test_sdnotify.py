"""sd_notify without systemd: the daemon talks to a NOTIFY_SOCKET the test owns, as systemd would see it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from kernel_nanny.daemon.sdnotify import SystemdNotifier

from .conftest import NotifySocket, daemon_env, pid_alive, run_cli, wait_until

# -- SystemdNotifier on its own ------------------------------------------------


def test_no_notify_socket_is_a_no_op():
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.ready("serving") is False
    assert notifier.status("x") is False
    assert notifier.stopping() is False
    assert notifier.watchdog() is False


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_fields_reach_the_socket(notify_socket_factory, kind):
    sock = notify_socket_factory(kind)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": sock.address})
    assert notifier.enabled
    assert notifier.ready("serving 0 kernel(s)")
    note = sock.wait_for(lambda n: True, 5)
    assert note.fields == {"READY": "1", "STATUS": "serving 0 kernel(s)", "MAINPID": str(os.getpid())}
    assert note.pid == os.getpid()
    assert notifier.status("busy")
    assert sock.wait_for(lambda n: True, 5).fields == {"STATUS": "busy"}
    assert notifier.watchdog()
    assert sock.wait_for(lambda n: True, 5).fields == {"WATCHDOG": "1"}
    assert notifier.stopping()
    assert sock.wait_for(lambda n: True, 5).fields == {"STOPPING": "1", "STATUS": "stopping; kernels keep running"}


def test_never_raises_when_the_socket_is_gone(tmp_path):
    path = tmp_path / "notify.sock"
    sock = NotifySocket(str(path))
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
    assert notifier.watchdog()
    sock.close()  # the supervisor went away: no socket file at all
    assert not path.exists()
    assert notifier.watchdog() is False
    assert notifier.ready("x") is False
    # a socket file nobody listens on (ECONNREFUSED), an abstract name nobody bound, a path that is no socket
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(path))
    dead.close()
    assert SystemdNotifier({"NOTIFY_SOCKET": str(path)}).status("x") is False
    assert SystemdNotifier({"NOTIFY_SOCKET": f"@kernel-nanny-nobody-{os.getpid()}"}).status("x") is False
    (tmp_path / "plain").write_text("")
    assert SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "plain")}).status("x") is False
    assert SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "no-dir" / "s")}).stopping() is False


def test_watchdog_interval_is_half_the_timeout_for_this_process_only():
    usec = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}
    assert SystemdNotifier(usec).watchdog_interval == 15.0
    assert SystemdNotifier({**usec, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 15.0
    # The watchdog is meant for another process (say, the parent that started us): not ours to feed.
    assert SystemdNotifier({**usec, "WATCHDOG_PID": str(os.getppid())}).watchdog_interval is None
    assert SystemdNotifier({**usec, "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert SystemdNotifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "soon"}).watchdog_interval is None
    assert SystemdNotifier({"NOTIFY_SOCKET": "@x"}).watchdog_interval is None


def test_reads_the_process_environment_by_default(monkeypatch, notify_socket_factory):
    sock = notify_socket_factory("abstract")
    monkeypatch.setenv("NOTIFY_SOCKET", sock.address)
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = SystemdNotifier()
    assert notifier.watchdog_interval == 2.0
    assert notifier.status("hello")
    assert sock.wait_for(lambda n: True, 5).fields == {"STATUS": "hello"}


# -- the real daemon -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_serve_notifies_ready_watchdog_status_and_stopping(tmp_path, notify_socket_factory, kind):
    sock = notify_socket_factory(kind)
    env = daemon_env(tmp_path, NOTIFY_SOCKET=sock.address, WATCHDOG_USEC="1000000")
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "kernel_nanny", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    kernel_pids: list[int] = []
    try:
        ready = sock.wait_for(lambda n: "READY" in n.fields, 60, "with READY=1")
        assert ready.fields["READY"] == "1"
        assert ready.fields["MAINPID"] == str(daemon.pid)
        assert ready.pid == daemon.pid  # what NotifyAccess=main requires
        status = ready.fields["STATUS"]
        assert status.startswith("serving 0 kernel(s) on ipc://"), status
        assert str(tmp_path / "runtime") in status

        # WATCHDOG=1 at about half of WATCHDOG_USEC (1 s), from the daemon itself.
        beats = [n for n in sock.collect(2.6) if n.fields.get("WATCHDOG") == "1"]
        assert len(beats) >= 4, [n.raw for n in sock.received]
        assert all(n.pid == daemon.pid for n in beats)

        # A kernel launched through the daemon: STATUS follows.
        started = run_cli("start", "pyimport/kernel", "--name", "sdn", env=env)
        kernel_id = started.stdout.split()[0]
        update = sock.wait_for(lambda n: "STATUS" in n.fields and "READY" not in n.fields, 30, "with a STATUS update")
        assert update.fields["STATUS"].startswith("serving 1 kernel(s)"), update.raw
        assert update.pid == daemon.pid
        listing = json.loads(run_cli("ps", "--json", env=env).stdout)
        assert [k["kernel_id"] for k in listing] == [kernel_id]
        kernel_pids = [listing[0]["pid"], listing[0]["nanny_pid"]]
        assert all(pid_alive(pid) for pid in kernel_pids)

        # SIGTERM (systemctl stop): STOPPING=1, exit status 0.
        daemon.send_signal(signal.SIGTERM)
        stopping = sock.wait_for(lambda n: "STOPPING" in n.fields, 20, "with STOPPING=1")
        assert stopping.fields["STOPPING"] == "1"
        assert stopping.pid == daemon.pid
        assert daemon.wait(timeout=30) == 0, log_path.read_text()
        assert not (tmp_path / "runtime" / "kernel-nanny-daemon.json").exists()

        # The kernel outlives the daemon (KillMode=process relies on it), and works without it.
        assert all(pid_alive(pid) for pid in kernel_pids), kernel_pids
        assert run_cli("exec", "sdn", "-c", "print(6 * 7)", env=env).stdout == "42\n"
        listing = json.loads(run_cli("ps", "--json", env=env).stdout)
        assert [(k["kernel_id"], k["state"]) for k in listing] == [(kernel_id, "running")]

        run_cli("stop", "--all", env=env)
        assert wait_until(lambda: not any(pid_alive(pid) for pid in kernel_pids), 30), kernel_pids
        assert json.loads(run_cli("ps", "--json", env=env).stdout) == []
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if any(pid_alive(pid) for pid in kernel_pids):
            run_cli("stop", "--all", "--now", env=env, check=False)
        for pid in kernel_pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_serve_without_watchdog_sends_no_watchdog(tmp_path, notify_socket_factory):
    sock = notify_socket_factory("path")
    # WATCHDOG_PID names another process: the watchdog is not the daemon's to feed.
    env = daemon_env(tmp_path, NOTIFY_SOCKET=sock.address, WATCHDOG_USEC="1000000", WATCHDOG_PID="1")
    with open(tmp_path / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "kernel_nanny", "serve"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        sock.wait_for(lambda n: "READY" in n.fields, 60, "with READY=1")
        assert not [n for n in sock.collect(1.5) if "WATCHDOG" in n.fields]
        daemon.send_signal(signal.SIGTERM)
        sock.wait_for(lambda n: "STOPPING" in n.fields, 20, "with STOPPING=1")
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
