"""The nanny commands of the CLI: start, ps, exec, logs, events, interrupt, restart, kill, stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import CLI, jupyter_client_on
from tests.helpers import run_cli as run


def ps() -> list[dict]:
    return json.loads(run("ps", "--json").stdout)


@pytest.fixture
def started():
    name = f"k{os.getpid()}{time.monotonic_ns() % 100000}"
    result = run("start", "pyimport/kernel", "--name", name)
    assert result.returncode == 0, result.stderr
    kernel_id, connection_file = result.stdout.split()
    yield name, kernel_id, connection_file
    run("stop", kernel_id, "--now")


def test_start_prints_id_and_a_connection_file_jupyter_understands(started):
    name, kernel_id, connection_file = started
    assert len(kernel_id) == 32 and Path(connection_file).name == f"kernel-{kernel_id}.json"
    with jupyter_client_on(connection_file) as kc:
        assert kc.execute_interactive("1", timeout=30, output_hook=lambda m: None)["content"]["status"] == "ok"


def test_jupyter_console_runs_code_in_a_started_kernel(started):
    name, kernel_id, connection_file = started
    console = subprocess.run(
        [sys.executable, "-m", "jupyter_console", "--existing", connection_file, "--simple-prompt", "-y"],
        input="print(6 * 7)\nexit(keep_kernel=True)\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "42" in console.stdout, console.stdout + console.stderr
    assert run("exec", name, "-c", "print('still here')").stdout == "still here\n"


def test_ps_lists_running_kernels_and_removes_stale_files(started, runtime_dir):
    name, kernel_id, _ = started
    table = run("ps").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "TYPE", "PID", "STATE", "ACTIVITY", "UPTIME", "RESTARTS"]
    row = next(line for line in table if line.startswith(kernel_id[:12]))
    assert name in row and "pyimport/kernel" in row and "running" in row and " idle " in row
    stale = Path(runtime_dir) / "kernel-0123456789abcdef0123456789abcdef.json"
    stale.write_text(json.dumps({"kernel_id": "0123456789abcdef0123456789abcdef", "nanny_pid": 2**22 + 17}))
    assert all(entry["kernel_id"] != "0123456789abcdef0123456789abcdef" for entry in ps())
    assert not stale.exists()


def test_exec_in_a_running_kernel_keeps_state_and_the_kernel(started):
    name, kernel_id, _ = started
    assert run("exec", name, "-c", "counter = 41").returncode == 0
    result = run("exec", kernel_id[:8], "-c", "counter += 1\nprint(counter)")
    assert result.returncode == 0 and result.stdout == "42\n"
    failing = run("exec", name, "-c", "raise KeyError('k')")
    assert failing.returncode == 1 and "KeyError" in failing.stderr
    assert [e["state"] for e in ps() if e["kernel_id"] == kernel_id] == ["running"]


def test_logs_show_fd_level_output(started):
    name, _, _ = started
    run("exec", name, "-c", "import os; os.system('echo from-a-subprocess; echo on-fd-2 >&2')")
    logs = run("logs", name).stdout
    assert "from-a-subprocess" in logs and "on-fd-2" in logs


def test_logs_follow_prints_new_output_until_the_kernel_stops(started):
    name, kernel_id, _ = started
    with subprocess.Popen([*CLI, "logs", "-f", name], stdout=subprocess.PIPE, text=True) as follower:
        time.sleep(0.5)  # let it subscribe (its output is what is checked, not this delay)
        run("exec", name, "-c", "import os; os.system('echo followed-line')")
        line = follower.stdout.readline()
        while "followed-line" not in line:
            line = follower.stdout.readline()
            assert line, "logs -f ended before the new output arrived"
        run("stop", name)
        assert follower.wait(timeout=30) == 0


def test_events_restart_kill_and_stop(started):
    name, kernel_id, _ = started
    with subprocess.Popen([*CLI, "events", name, "--json"], stdout=subprocess.PIPE, text=True) as watcher:
        time.sleep(0.5)
        assert run("restart", name).returncode == 0
        assert [e["restart_count"] for e in ps() if e["kernel_id"] == kernel_id] == [1]
        assert run("kill", name).returncode == 0
        assert [e["state"] for e in ps() if e["kernel_id"] == kernel_id] == ["dead"]
        assert run("interrupt", name).returncode == 3  # not running: a clear error
        dead = run("exec", name, "-c", "1")
        assert dead.returncode == 3 and "is not running" in dead.stderr and "restart" in dead.stderr
        assert run("stop", name).returncode == 0
        out, _ = watcher.communicate(timeout=30)
    events = [json.loads(line)["event"] for line in out.splitlines()]
    # the kill ended the kernel, so stopping it reports no second death
    assert [e for e in events if e != "stream"] == ["kernel_died", "kernel_restarted", "kernel_died", "nanny_exiting"]
    assert all(e["kernel_id"] != kernel_id for e in ps())


def test_interrupt_stops_code_running_in_a_started_kernel(started):
    name, _, _ = started
    busy = subprocess.Popen(
        [*CLI, "exec", name, "-c", "print('busy', flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert busy.stdout.readline() == "busy\n"
    assert run("interrupt", name).returncode == 0
    _, err = busy.communicate(timeout=60)
    assert busy.returncode == 1 and "KeyboardInterrupt" in err


def test_unknown_kernels_and_taken_names_are_clear_errors(started):
    name, _, _ = started
    missing = run("stop", "no-such-kernel")
    assert missing.returncode == 3 and "no running kernel 'no-such-kernel'" in missing.stderr
    again = run("start", "pyimport/kernel", "--name", name)
    assert again.returncode == 3 and f"the name {name!r} is taken by kernel" in again.stderr
    bad = run("start", "pyimport/kernel", "--max-restarts", "-1")
    assert bad.returncode == 2 and "max_restarts" in bad.stderr and "Traceback" not in bad.stderr
    unknown_type = run("start", "spec/nope")
    assert unknown_type.returncode == 3 and "no kernel type 'spec/nope'" in unknown_type.stderr


@pytest.mark.parametrize("command", ["start", "ps", "interrupt", "restart", "stop", "kill", "logs", "events"])
def test_nanny_commands_have_help(command):
    result = run(command, "--help")
    assert result.returncode == 0 and f"usage: kernel-nanny {command}" in result.stdout
