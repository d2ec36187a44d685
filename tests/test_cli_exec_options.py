"""kernel-nanny exec --group, --python and --switch, run as a real subprocess."""

from __future__ import annotations

import json
import os
import venv

import pytest

from tests.helpers import environment_with_ipykernel
from tests.helpers import run_cli as run


def ps_names() -> set[str]:
    return {k["name"] for k in json.loads(run("ps", "--json").stdout)}


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    return environment_with_ipykernel(tmp_path_factory.mktemp("cli-envs") / "env")


def test_group_kernel_is_reused_across_invocations_and_left_running():
    group = f"cli{os.getpid()}"
    first = run("exec", "pyimport/kernel", "--group", group, "-c", "counter = 41")
    assert first.returncode == 0, first.stderr
    assert f"for group {group!r}" in first.stderr
    name = first.stderr.split("started kernel ", 1)[1].split()[0]
    try:
        assert name in ps_names()
        second = run("exec", "pyimport/kernel", "--group", group, "-c", "counter += 1\nprint(counter)")
        assert (second.returncode, second.stdout, second.stderr) == (0, "42\n", "")  # found again, silently
        failing = run("exec", "pyimport/kernel", "--group", group, "-c", "raise KeyError('k')")
        assert failing.returncode == 1 and "KeyError" in failing.stderr
    finally:
        assert run("stop", name).returncode == 0  # what the note says
    assert name not in ps_names()


def test_python_environment(environment, tmp_path):
    result = run("exec", "--python", str(environment), "-c", "import sys; print(sys.prefix)")
    assert (result.returncode, result.stdout) == (0, f"{environment}\n"), result.stderr
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint(sys.executable.startswith(sys.prefix))\n")
    assert run("exec", "--python", str(environment), str(script)).stdout == "True\n"
    bare = tmp_path / "bare"
    venv.create(bare, system_site_packages=False, with_pip=False)
    failed = run("exec", "--python", str(bare), "-c", "1")
    assert failed.returncode == 3 and "pip install ipykernel" in failed.stderr


def test_switch_reaches_the_kernel_command_line():
    result = run("exec", "spec/python3", "--switch=--HistoryManager.enabled=False", "-c", "import sys; sys.argv[-1]")
    assert (result.returncode, result.stdout) == (0, "'--HistoryManager.enabled=False'\n"), result.stderr


def test_option_errors_are_usage_errors(environment):
    assert run("exec", "some-running-kernel", "--group", "g", "-c", "1").returncode == 2
    both = run("exec", "pyimport/kernel", "--python", str(environment), "-c", "1")
    assert both.returncode == 2 and "not both" in both.stderr
    nothing = run("exec", "-c", "1")
    assert nothing.returncode == 2 and "--python ENV" in nothing.stderr
    assert run("exec", "pyimport/kernel", "--group", "a/b", "-c", "1").returncode == 2


def test_help_explains_the_new_options():
    text = run("exec", "--help").stdout
    for option in ("--group KEY", "--python ENV", "--switch ARG", "kernel-nanny stop NAME"):
        assert option in " ".join(text.split()), option
