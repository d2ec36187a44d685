"""The kernel-nanny command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests.helpers import CLI
from tests.helpers import run_cli as run


def test_list_shows_builtin_kernel_types():
    result = run("list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "LANGUAGE", "DISPLAY", "NAME"]
    assert any(line.startswith("pyimport/kernel ") and " python " in line for line in lines)
    assert any(line.startswith("spec/python3 ") for line in lines)


def test_list_json_has_ids_and_attributes():
    kernels = json.loads(run("list", "--json").stdout)
    by_id = {k["id"]: k for k in kernels}
    assert by_id["pyimport/kernel"]["language"] == "python"
    assert "{connection_file}" in by_id["spec/python3"]["argv"]


def test_exec_streams_output_and_exits_zero():
    result = run("exec", "pyimport/kernel", "-c", "import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "out\n42\n"
    assert result.stderr == "err\n"  # the kernel's own start-up chatter is not echoed


def test_exec_exits_one_with_a_plain_traceback_when_code_raises():
    result = run("exec", "pyimport/kernel", "-c", "print('before')\nraise ValueError('bad value')")
    assert result.returncode == 1
    assert result.stdout == "before\n"
    assert "ValueError: bad value" in result.stderr
    assert "\x1b[" not in result.stderr  # no colour codes when not on a terminal


def test_exec_runs_a_file_and_standard_input(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text("total = sum(range(5))\nprint('total', total)\n")
    assert run("exec", "spec/python3", str(script)).stdout == "total 10\n"
    assert run("exec", "pyimport/kernel", "-", stdin="print('from stdin')").stdout == "from stdin\n"


def test_exec_kernel_runs_in_the_given_cwd(tmp_path):
    result = run("exec", "pyimport/kernel", "--cwd", str(tmp_path), "-c", "import os; print(os.getcwd())")
    assert result.stdout.strip() == str(tmp_path)


def test_exec_errors_are_clear():
    unknown = run("exec", "spec/no-such-kernel", "-c", "1")
    assert unknown.returncode == 3
    assert "no kernel type 'spec/no-such-kernel'" in unknown.stderr and "pyimport/kernel" in unknown.stderr
    missing = run("exec", "pyimport/kernel", "/no/such/file.py")
    assert missing.returncode == 2 and "cannot read /no/such/file.py" in missing.stderr
    died = run("exec", "pyimport/kernel", "-c", "import os; os._exit(5)")
    assert died.returncode == 3 and "died" in died.stderr and "exit code 5" in died.stderr
    neither = run("exec", "pyimport/kernel")
    assert neither.returncode == 2


def test_exec_timeout_stops_the_kernel():
    result = run("exec", "pyimport/kernel", "--timeout", "1", "-c", "import time; time.sleep(60)")
    assert result.returncode == 3
    assert "did not finish within 1.0 s" in result.stderr


@pytest.mark.parametrize("command", [[], ["list"], ["exec"]])
def test_every_command_has_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "usage: kernel-nanny" in result.stdout
    if command == ["exec"]:
        assert "exit status" in result.stdout and "Ctrl-C" in result.stdout


def _start_busy_exec(code="print('busy', flush=True)\nwhile True: pass"):
    proc = subprocess.Popen(
        [*CLI, "exec", "pyimport/kernel", "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "busy\n"
    return proc


def test_ctrl_c_interrupts_the_kernel_not_the_command():
    proc = _start_busy_exec()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "interrupting the kernel" in err and "KeyboardInterrupt" in err


def test_second_ctrl_c_kills_a_kernel_that_ignores_the_first():
    proc = _start_busy_exec(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('busy', flush=True)\nwhile True: pass"
    )
    proc.send_signal(signal.SIGINT)
    while "interrupting" not in proc.stderr.readline():
        pass
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "killed the kernel" in err


def test_no_command_prints_help():
    result = run()
    assert result.returncode == 2 and "commands" in result.stdout


def test_runtime_dir_is_left_clean(runtime_dir):
    run("exec", "pyimport/kernel", "-c", "1")
    assert [f for f in os.listdir(runtime_dir) if f.startswith("kernel-")] == []
