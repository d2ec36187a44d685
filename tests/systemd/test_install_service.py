"""``kernel-nanny install-service``: the user unit it prints and writes runs the daemon with this Python."""

from __future__ import annotations

import os
import sys

from .conftest import SYSTEMD_VARIABLES, run_cli, systemd_analyze_verify, unit_settings, unit_text


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


def test_print_shows_exec_start_with_this_python(tmp_path):
    env = _env(tmp_path)
    printed = run_cli("install-service", "--print", env=env).stdout
    settings = unit_settings(printed)
    assert settings["ExecStart"] == [f"{sys.executable} -m kernel_nanny serve"]
    # Everything else is the shipped unit, untouched.
    shipped = unit_settings(unit_text("kernel-nanny.service"))
    assert {k: v for k, v in settings.items() if k != "ExecStart"} == {
        k: v for k, v in shipped.items() if k != "ExecStart"
    }
    assert not (tmp_path / "config").exists()  # --print writes nothing


def test_no_enable_writes_the_unit_under_xdg_config_home_and_it_verifies(tmp_path):
    env = _env(tmp_path)
    done = run_cli("install-service", "--no-enable", env=env)
    path = tmp_path / "config" / "systemd" / "user" / "kernel-nanny.service"
    assert done.stdout.strip() == str(path)
    assert path.is_file()
    assert path.read_text() == run_cli("install-service", "--print", env=env).stdout
    assert unit_settings(path.read_text())["ExecStart"] == [f"{sys.executable} -m kernel_nanny serve"]
    verified = systemd_analyze_verify(path, user=True)
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "", verified.stderr
    # Running it again replaces the unit (say, after moving to another Python): still one valid file.
    run_cli("install-service", "--no-enable", env=env)
    assert sorted(p.name for p in path.parent.iterdir()) == ["kernel-nanny.service"]
