"""The shipped unit files: what they must say, and systemd's own verdict on them (systemd-analyze verify)."""

from __future__ import annotations

import os
import pwd
import sys

import pytest

from .conftest import systemd_analyze_verify, unit_settings, unit_text, with_exec_start

UNITS = ["kernel-nanny.service", "kernel-nanny@.service"]


@pytest.mark.parametrize("name", UNITS)
def test_unit_is_a_notify_service_that_spares_the_kernels(name):
    settings = unit_settings(unit_text(name))
    assert settings["Type"] == ["notify"]
    # systemd must accept READY/STATUS/WATCHDOG from the daemon itself only, not from nannies or kernels.
    assert settings["NotifyAccess"] == ["main"]
    # Stopping or restarting the daemon must signal the daemon only: nannies and kernels keep running.
    assert settings["KillMode"] == ["process"]
    (watchdog,) = settings["WatchdogSec"]
    assert watchdog.isdigit() and int(watchdog) > 0
    (exec_start,) = settings["ExecStart"]
    assert exec_start.endswith(" -m kernel_nanny serve")
    assert settings["Restart"] == ["on-failure"]


def test_template_runs_the_daemon_as_the_instance_user():
    settings = unit_settings(unit_text("kernel-nanny@.service"))
    assert settings["User"] == ["%i"]
    assert settings["WantedBy"] == ["multi-user.target"]


def test_user_unit_has_no_user_setting():
    settings = unit_settings(unit_text("kernel-nanny.service"))
    assert "User" not in settings
    assert settings["WantedBy"] == ["default.target"]


def _verify_clean(done) -> None:
    assert done.returncode == 0, f"systemd-analyze verify failed:\n{done.stdout}\n{done.stderr}"
    assert done.stderr.strip() == "", f"systemd-analyze verify warned:\n{done.stderr}"


def test_template_verifies_cleanly(tmp_path):
    # An instance for an existing, ordinary user ('nobody' draws a warning of its own): the one running the tests.
    user = pwd.getpwuid(os.getuid()).pw_name
    path = tmp_path / f"kernel-nanny@{user}.service"
    path.write_text(with_exec_start(unit_text("kernel-nanny@.service"), sys.executable))
    _verify_clean(systemd_analyze_verify(path))


def test_user_unit_verifies_cleanly(tmp_path):
    path = tmp_path / "kernel-nanny.service"
    path.write_text(with_exec_start(unit_text("kernel-nanny.service"), sys.executable))
    _verify_clean(systemd_analyze_verify(path, user=True))


def test_verify_catches_a_broken_unit(tmp_path):
    """The check above is not vacuous: systemd-analyze reports a missing executable and unknown keys."""
    path = tmp_path / "kernel-nanny.service"
    broken = with_exec_start(unit_text("kernel-nanny.service"), str(tmp_path / "no-such-python"))
    path.write_text(broken.replace("Type=notify", "Typ=notify"))
    done = systemd_analyze_verify(path, user=True)
    assert done.returncode != 0
    assert "no-such-python" in done.stderr
    assert "Unknown key" in done.stderr
