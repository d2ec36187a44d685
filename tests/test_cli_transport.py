"""The default transport per kernel, ``--transport`` of exec, against a real non-ipykernel kernel (xeus-python)."""

from __future__ import annotations

import json
import subprocess
import sys

CLI = [sys.executable, "-m", "kernel_nanny"]
PRINT_TRANSPORT = "import ipykernel, json; print(json.load(open(ipykernel.get_connection_file()))['transport'])"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_ipykernel_gets_ipc_by_default():
    result = run("exec", "spec/python3", "-c", PRINT_TRANSPORT)
    assert (result.returncode, result.stdout) == (0, "ipc\n"), result.stderr


def test_exec_transport_option_chooses_tcp():
    result = run("exec", "spec/python3", "--transport", "tcp", "-c", PRINT_TRANSPORT)
    assert (result.returncode, result.stdout) == (0, "tcp\n"), result.stderr


def test_exec_runs_xeus_python_without_dropping_its_messages():
    # xeus-python refuses unix-socket paths of 24 characters or more, and its
    # welcome status has a null parent header (which jupyter_client accepts).
    result = run("exec", "spec/xpython", "-c", "print(1)")
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


def test_start_runs_xeus_python_on_tcp():
    started = run("start", "spec/xpython")
    assert started.returncode == 0, started.stderr
    kernel_id, connection_file = started.stdout.split()[:2]
    try:
        with open(connection_file) as file:
            assert json.load(file)["transport"] == "tcp"
        result = run("exec", kernel_id, "-c", "print(6 * 7)")
        assert (result.returncode, result.stdout) == (0, "42\n"), result.stderr
    finally:
        assert run("stop", kernel_id).returncode == 0


def test_a_kernel_dying_on_ipc_names_the_transport_and_the_fix():
    result = run("exec", "spec/xpython", "--transport", "ipc", "-c", "print(1)")
    assert result.returncode == 3
    assert "ipc transport" in result.stderr and "--transport tcp" in result.stderr
