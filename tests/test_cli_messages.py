"""What the command says when it is given something it cannot do: names, usage, one message style."""

from __future__ import annotations

import subprocess
import sys

CLI = [sys.executable, "-m", "kernel_nanny"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_a_bare_kernelspec_name_runs_that_kernel_type():
    """Jupyter users name kernels 'python3': with no running kernel of that name, it means spec/python3."""
    result = run("exec", "python3", "-c", "print('bare name')")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bare name\n"


def test_an_unknown_bare_name_says_where_to_look():
    result = run("exec", "no-such-thing", "-c", "1")
    assert result.returncode == 3
    assert "'no-such-thing'" in result.stderr and "kernel-nanny list" in result.stderr


def test_usage_errors_show_the_commands_own_usage():
    result = run("exec")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: kernel-nanny exec ")
    assert "kernel-nanny exec: error: give the code to run" in result.stderr


def test_timeouts_must_be_positive():
    for bad in ("-5", "0", "nan", "soon"):
        result = run("exec", "pyimport/kernel", "--timeout", bad, "-c", "1")
        assert result.returncode == 2, bad
        assert "usage: kernel-nanny exec" in result.stderr and "--timeout" in result.stderr
    result = run("start", "pyimport/kernel", "--restart-window", "-1")
    assert result.returncode == 2 and "--restart-window" in result.stderr


def test_a_request_to_a_dead_kernel_names_it_and_the_fix():
    started = run("start", "pyimport/kernel", "--name", "msg-dead", "--max-restarts", "0")
    assert started.returncode == 0, started.stderr
    try:
        assert run("kill", "msg-dead").returncode == 0
        result = run("interrupt", "msg-dead")
        assert result.returncode == 3
        # The same words as any other error: no ename prefix, the kernel's name, its state, and what revives it.
        assert result.stderr == (
            "kernel-nanny: error: kernel msg-dead is not running (state: dead); "
            "'kernel-nanny restart msg-dead' revives it\n"
        )
    finally:
        run("stop", "msg-dead")
