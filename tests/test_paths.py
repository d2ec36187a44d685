"""The user's XDG directories, computed in one place, and private files (paths.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kernel_nanny import LaunchError
from kernel_nanny.paths import open_private_file, systemd_user_unit_dir, user_config_dir, user_state_dir


def test_xdg_variables_are_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert user_config_dir() == tmp_path / "cfg" / "kernel-nanny"
    assert user_state_dir() == tmp_path / "state" / "kernel-nanny"
    assert systemd_user_unit_dir() == tmp_path / "cfg" / "systemd" / "user"


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_variables_mean_the_home_defaults(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HOME", str(tmp_path))
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)
    assert user_config_dir() == Path(tmp_path, ".config", "kernel-nanny")
    assert user_state_dir() == Path(tmp_path, ".local", "state", "kernel-nanny")
    assert systemd_user_unit_dir() == Path(tmp_path, ".config", "systemd", "user")


def test_appended_files_are_made_0600_and_never_opened_through_a_symlink(tmp_path):
    loose = tmp_path / "nanny.log"
    loose.write_text("old\n")
    loose.chmod(0o666)
    os.close(open_private_file(loose))
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "output.log").symlink_to(victim)
    with pytest.raises(LaunchError, match=f"{tmp_path / 'output.log'} is a symbolic link"):
        open_private_file(tmp_path / "output.log")
    assert victim.read_text() == "precious\n"
