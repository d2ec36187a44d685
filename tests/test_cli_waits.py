"""Waits say what they wait for: a progress line on a terminal, timeouts that name the kernel, busy kernels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run_on_a_terminal

CLI = [sys.executable, "-m", "kernel_nanny"]
#: A kernel that prints, then takes its time (``{delay}`` seconds, or for ever) before it starts ipykernel.
SLOW_KERNEL = (
    "import sys, time; print('still booting', flush=True); time.sleep({delay}); "
    "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
)


@pytest.fixture
def slow_specs(tmp_path, monkeypatch) -> Path:
    """Kernelspecs spec/never (never ready) and spec/slow (ready after 2 s), in a JUPYTER_PATH of their own."""
    for name, delay in (("never", "3600"), ("slow", "2")):
        folder = tmp_path / "kernels" / name
        folder.mkdir(parents=True)
        argv = [sys.executable, "-c", SLOW_KERNEL.format(delay=delay), "-f", "{connection_file}"]
        (folder / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    return tmp_path


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_a_kernel_that_never_becomes_ready_is_named_with_its_output_and_the_option(slow_specs):
    for command in (
        ["exec", "spec/never", "--startup-timeout", "2", "-c", "1"],
        ["start", "spec/never", "--startup-timeout", "2"],
    ):
        result = run(*command)
        assert result.returncode == 3, result.stderr
        assert "kernel spec/never did not become ready within 2 s" in result.stderr
        assert "--startup-timeout" in result.stderr and "still booting" in result.stderr
    assert "never" not in run("ps").stdout  # nothing half-started is left


def test_a_slow_start_shows_progress_on_a_terminal(slow_specs):
    screen = run_on_a_terminal("start", "spec/slow", "--name", "slowpoke")
    try:
        assert "waiting for spec/slow to become ready" in screen and "Ctrl-C stops waiting" in screen
        assert "\x1b[K" in screen  # the line is erased once the kernel is ready
    finally:
        run("stop", "slowpoke")


def test_no_progress_line_when_stderr_is_not_a_terminal(slow_specs):
    result = run("exec", "spec/slow", "-c", "print('done')")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n" and "waiting for" not in result.stderr


def test_a_busy_kernel_says_so_in_ps_and_to_exec():
    assert run("start", "pyimport/kernel", "--name", "busybody").returncode == 0
    long_run = subprocess.Popen(
        [*CLI, "exec", "busybody", "-c", "print('go', flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert long_run.stdout is not None and long_run.stdout.readline() == "go\n"
        row = next(line for line in run("ps").stdout.splitlines() if "busybody" in line)
        assert " busy " in row
        # A second run waits for the first: it says so, and an interrupt (of the first) lets it through.
        screen = run_on_a_terminal(
            "exec", "busybody", "-c", "print('second')", until="is busy", then=["interrupt", "busybody"]
        )
        assert "kernel busybody is busy" in screen and "second" in screen
    finally:
        long_run.kill()
        long_run.communicate()
        run("stop", "busybody")
