"""Finding Python environments as kernel types (conda/, venv/, uv/, pixi/), by their files alone.

The environments are real (``python -m venv``, ``uv``) and made under the
test's own home (see :mod:`tests.providers.environments`); no kernel is
started here (test_env_kernels.py starts them).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from kernel_nanny import ConfigError, KernelFinder, LaunchError, NoSuchKernelType
from kernel_nanny.discovery.environments import (
    CondaProvider,
    PixiProvider,
    UvProvider,
    VenvProvider,
    condarc_envs_dirs,
)
from tests.helpers import CLI
from tests.providers.environments import (
    add_activate_script,
    add_kernelspec,
    home_fixture,  # noqa: F401 (the fixture "home")
    make_conda_env,
    make_uv_project,
    make_venv,
    write_environments_txt,
)

PYTHON_VERSION = "{}.{}".format(*sys.version_info[:2])


def kernels(provider: object) -> dict[str, dict[str, object]]:
    return dict(provider.find_kernels())  # type: ignore[attr-defined]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "kernel_nanny.discovery" and r.levelno == logging.WARNING
    ]


# -- venv ---------------------------------------------------------------------------------------


def test_venvs_with_ipykernel_are_listed_and_those_without_are_not(home):
    with_kernel = make_venv(home / ".virtualenvs" / "analysis", ipykernel=True)
    make_venv(home / ".virtualenvs" / "bare", ipykernel=False)  # no system site packages: no ipykernel
    found = kernels(VenvProvider())
    assert list(found) == ["analysis"]
    attributes = found["analysis"]
    assert attributes["display_name"] == f"Python {PYTHON_VERSION} (venv analysis)"
    assert attributes["language"] == "python"
    assert attributes["env_path"] == str(with_kernel)
    assert attributes["argv"] == [
        str(with_kernel / "bin" / "python"),
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]


def test_the_ipykernel_check_reads_files_its_own_site_packages_pth_files_and_the_base_python(home):
    """How "has ipykernel" is decided: an ``ipykernel/`` package in a site directory the Python reads.

    A venv with ``--system-site-packages`` has it from its base Python (found
    through pyvenv.cfg), one without has it once its own site-packages holds
    it, or a directory a ``.pth`` file adds does. Nothing is imported.
    """
    venvs = home / ".venvs"
    make_venv(venvs / "system", ipykernel=True)
    own = make_venv(venvs / "own", ipykernel=False)
    [own_site] = own.glob("lib/python*/site-packages")
    (own_site / "ipykernel").mkdir()
    by_pth = make_venv(venvs / "by-pth", ipykernel=False)
    [pth_site] = by_pth.glob("lib/python*/site-packages")
    (home / "elsewhere" / "ipykernel").mkdir(parents=True)
    (pth_site / "extra.pth").write_text(f"# a comment\nimport os\n{home / 'elsewhere'}\n")
    make_venv(venvs / "none", ipykernel=False)
    assert sorted(kernels(VenvProvider())) == ["by-pth", "own", "system"]


def test_venv_directories_default_to_virtualenvwrapper_and_dot_venvs(home, monkeypatch):
    make_venv(home / ".virtualenvs" / "a", ipykernel=True)
    make_venv(home / ".venvs" / "b", ipykernel=True)
    make_venv(home / "workon" / "c", ipykernel=True)
    assert sorted(kernels(VenvProvider())) == ["a", "b"]  # $WORKON_HOME unset: skipped
    monkeypatch.setenv("WORKON_HOME", str(home / "workon"))
    assert sorted(kernels(VenvProvider())) == ["a", "b", "c"]


def test_a_venv_whose_python_is_gone_is_skipped_with_one_warning(home, caplog):
    broken = make_venv(home / ".venvs" / "broken", ipykernel=True)
    make_venv(home / ".venvs" / "fine", ipykernel=True)
    python = broken / "bin" / "python"
    target = os.readlink(python)
    python.unlink()
    python.symlink_to(home / "no-such-python")
    with caplog.at_level(logging.WARNING, logger="kernel_nanny.discovery"):
        assert list(kernels(VenvProvider())) == ["fine"]
    [warning] = warnings_of(caplog)
    assert "venv broken" in warning and "no-such-python" in warning and target not in warning


# -- conda --------------------------------------------------------------------------------------


def test_conda_environments_come_from_environments_txt_and_the_envs_dirs(home, monkeypatch):
    listed = make_conda_env(home / "elsewhere" / "listed")  # only environments.txt names it
    write_environments_txt(home, listed)
    make_conda_env(home / ".conda" / "envs" / "default-dir")  # conda's default envs_dir for a user
    make_conda_env(home / "rc-envs" / "from-condarc")
    (home / ".condarc").write_text(f"channels:\n  - conda-forge\nenvs_dirs:\n  - {home / 'rc-envs'}  # mine\n")
    make_conda_env(home / "path-envs" / "from-variable")
    monkeypatch.setenv("CONDA_ENVS_PATH", str(home / "path-envs"))
    make_venv(home / "rc-envs" / "not-conda", ipykernel=True)  # no conda-meta: not a conda environment
    found = kernels(CondaProvider())
    assert sorted(found) == ["default-dir", "from-condarc", "from-variable", "listed"]
    assert found["listed"]["env_path"] == str(listed)
    assert found["listed"]["display_name"] == f"Python {PYTHON_VERSION} (conda env listed)"


def test_an_installations_root_is_conda_base(home, monkeypatch):
    root = make_conda_env(home / "miniforge3")
    (root / "condabin").mkdir()
    make_conda_env(root / "envs" / "work")
    write_environments_txt(home, root)
    assert sorted(kernels(CondaProvider())) == ["base"]  # named base by its condabin/
    monkeypatch.setenv("CONDA_EXE", str(root / "bin" / "conda"))  # an initialised shell: the root's envs too
    assert sorted(kernels(CondaProvider())) == ["base", "work"]


def test_a_vanished_conda_environment_is_skipped_with_one_warning(home, caplog):
    kept = make_conda_env(home / "envs" / "kept")
    gone = make_conda_env(home / "envs" / "gone")
    write_environments_txt(home, kept, gone)
    subprocess.run(["rm", "-rf", str(gone)], check=True)  # removed by hand: conda's list still names it
    with caplog.at_level(logging.WARNING, logger="kernel_nanny.discovery"):
        assert list(kernels(CondaProvider())) == ["kept"]
    assert warnings_of(caplog) == [f"skipping conda env gone at {gone}: it no longer exists"]
    with pytest.raises(LaunchError, match="no longer exists"):
        CondaProvider().kernel_command("gone")


def test_a_provider_warns_about_an_environment_once_however_often_it_lists(home, caplog):
    """A daemon lists its kernel types at every request for them: its log gets one line per problem."""
    gone = home / "envs" / "gone"
    write_environments_txt(home, gone)
    provider = CondaProvider()
    with caplog.at_level(logging.DEBUG, logger="kernel_nanny.discovery"):
        for _ in range(3):
            assert kernels(provider) == {}
    assert warnings_of(caplog) == [f"skipping conda env gone at {gone}: it no longer exists"]
    assert [r.levelno for r in caplog.records if "gone" in r.getMessage()] == [
        logging.WARNING,
        logging.DEBUG,
        logging.DEBUG,
    ]


def test_an_environments_txt_entry_without_conda_meta_is_skipped_with_a_warning(home, caplog):
    plain = make_venv(home / "plain", ipykernel=True)
    write_environments_txt(home, plain)
    with caplog.at_level(logging.WARNING, logger="kernel_nanny.discovery"):
        assert kernels(CondaProvider()) == {}
    assert warnings_of(caplog) == [f"skipping conda env plain at {plain}: it has no conda-meta"]


def test_two_environments_of_one_name_list_the_first_and_warn(home, caplog):
    first = make_conda_env(home / ".conda" / "envs" / "same")
    second = make_conda_env(home / "other" / "same")
    write_environments_txt(home, first, second)
    with caplog.at_level(logging.WARNING, logger="kernel_nanny.discovery"):
        found = kernels(CondaProvider())
    assert found["same"]["env_path"] == str(first)
    assert warnings_of(caplog) == [f"skipping conda env {second}: its name 'same' is {first}'s already"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("envs_dirs:\n  - /a\n  - '~/b'   # comment\n\n  - \"/c d\"\nchannels:\n  - x\n", ["/a", "~/b", "/c d"]),
        ("envs_dirs: [/a, '/b']\n", ["/a", "/b"]),
        ("envs_path:\n- /a\n", ["/a"]),
        ("channels: [x]\n  envs_dirs:\n  - /nested\n", []),
        ("", []),
    ],
)
def test_condarc_envs_dirs_are_read_without_yaml(text, expected):
    assert condarc_envs_dirs(text) == expected


def test_condarc_d_files_and_condarc_variable_are_read(home, monkeypatch):
    (home / ".conda" / "condarc.d").mkdir(parents=True)
    (home / ".conda" / "condarc.d" / "x.yml").write_text(f"envs_dirs: [{home / 'd-envs'}]\n")
    make_conda_env(home / "d-envs" / "one")
    (home / "custom.rc").write_text(f"envs_dirs:\n  - {home / 'var-envs'}\n")
    monkeypatch.setenv("CONDARC", str(home / "custom.rc"))
    make_conda_env(home / "var-envs" / "two")
    assert sorted(kernels(CondaProvider())) == ["one", "two"]


# -- kernelspecs inside environments ------------------------------------------------------------


def test_kernelspecs_inside_an_environment_are_listed_with_or_without_ipykernel(home):
    r_env = make_conda_env(home / ".conda" / "envs" / "r-env", ipykernel=False)
    fake_r = r_env / "bin" / "R"
    fake_r.write_text("#!/bin/sh\n")
    fake_r.chmod(0o755)
    add_kernelspec(
        r_env,
        "ir",
        {
            "argv": ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"],
            "language": "R",
            "display_name": "R",
        },
    )
    add_kernelspec(r_env, "Broken", {"argv": "not a list"})
    found = kernels(CondaProvider())
    assert list(found) == ["r-env/ir"]  # no ipykernel: no conda/r-env itself; the broken spec skipped
    assert found["r-env/ir"]["display_name"] == "R (conda env r-env)"
    assert found["r-env/ir"]["language"] == "R"
    assert found["r-env/ir"]["argv"][0] == str(fake_r)  # the environment's R, as its PATH would find it
    assert found["r-env/ir"]["env_path"] == str(r_env)
    command = CondaProvider().kernel_command("r-env/IR")  # names of kernelspecs are case-insensitive
    assert command.argv[0] == str(fake_r) and command.env["CONDA_PREFIX"] == str(r_env)
    with pytest.raises(NoSuchKernelType):
        CondaProvider().kernel_command("r-env/julia")
    with pytest.raises(LaunchError, match="has no ipykernel"):
        CondaProvider().kernel_command("r-env")


def test_a_kernelspecs_prefix_and_bare_python_are_the_environments(home):
    env = make_venv(home / ".venvs" / "spec-env", ipykernel=True)
    add_kernelspec(
        env,
        "python3",
        {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"},
    )
    add_kernelspec(env, "tool", {"argv": ["{prefix}/bin/tool", "{connection_file}"], "env": {"X": "1"}})
    provider = VenvProvider()
    assert sorted(kernels(provider)) == ["spec-env", "spec-env/python3", "spec-env/tool"]
    assert provider.kernel_command("spec-env/python3").argv[0] == str(env / "bin" / "python")
    tool = provider.kernel_command("spec-env/tool")
    assert tool.argv[0] == f"{env}/bin/tool"
    assert tool.env["X"] == "1" and tool.env["VIRTUAL_ENV"] == str(env)


# -- activation ---------------------------------------------------------------------------------


def test_activation_sets_path_and_the_environments_variable_and_wraps_only_for_activate_scripts(home):
    env = make_conda_env(home / ".conda" / "envs" / "plain")
    command = CondaProvider().kernel_command("plain")
    assert command.argv[0] == str(env / "bin" / "python")  # no activate.d: no shell in between
    assert command.env == {"PATH": f"{env / 'bin'}:${{PATH}}", "CONDA_PREFIX": str(env), "CONDA_DEFAULT_ENV": "plain"}
    add_activate_script(env, "b.sh", "B=1\n")
    add_activate_script(env, "a.sh", "A=1\n")
    add_activate_script(env, "ignored.csh", "setenv C 1\n")
    wrapped = CondaProvider().kernel_command("plain")
    assert wrapped.argv[:2] == ["/bin/sh", "-c"]
    assert wrapped.argv[3] == "kernel-nanny-activate"  # the shell's $0
    assert wrapped.argv[4:] == [str(env / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    script = wrapped.argv[2]
    assert script.index("a.sh") < script.index("b.sh") and "csh" not in script and script.endswith('exec "$@"\n')


# -- uv and pixi projects -----------------------------------------------------------------------


def test_uv_projects_under_the_project_roots_are_listed_with_ipykernel(home):
    with_kernel = make_uv_project(home / "projects" / "dashboard", ipykernel=True)
    make_uv_project(home / "projects" / "no-kernel", ipykernel=False)
    make_venv((home / "projects" / "not-uv").joinpath(".venv"), ipykernel=True)  # a .venv uv did not make
    found = kernels(UvProvider())
    assert list(found) == ["dashboard"]
    assert found["dashboard"]["env_path"] == str(with_kernel)
    assert found["dashboard"]["display_name"] == f"Python {PYTHON_VERSION} (uv project dashboard)"
    assert UvProvider().kernel_command("dashboard").env["VIRTUAL_ENV"] == str(with_kernel)
    # a root that is a project itself counts too
    assert list(kernels(UvProvider(project_roots=[str(home / "projects" / "dashboard")]))) == ["dashboard"]


def test_pixi_project_environments_are_listed_as_project_and_env(home):
    """pixi itself is not on PyPI: its layout is made by hand (``.pixi/envs/<env>`` conda prefixes)."""
    project = home / "src" / "climate"
    project.mkdir(parents=True)
    (project / "pixi.toml").write_text('[workspace]\nname = "climate"\n')
    default = make_conda_env(project / ".pixi" / "envs" / "default")
    make_conda_env(project / ".pixi" / "envs" / "test")
    found = kernels(PixiProvider())
    assert sorted(found) == ["climate/default", "climate/test"]
    assert found["climate/default"]["display_name"] == f"Python {PYTHON_VERSION} (pixi env climate/default)"
    env = PixiProvider().kernel_command("climate/default").env
    assert env["CONDA_PREFIX"] == str(default) and env["PIXI_PROJECT_ROOT"] == str(project)
    assert env["PIXI_ENVIRONMENT_NAME"] == "default"
    with pytest.raises(NoSuchKernelType):
        PixiProvider().kernel_command("climate")


# -- settings, registration, listing ------------------------------------------------------------


def test_providers_are_registered_and_take_their_settings_from_the_configuration(home, tmp_path):
    make_venv(tmp_path / "mine" / "one", ipykernel=True)
    make_conda_env(tmp_path / "conda-envs" / "two")
    project = make_uv_project(tmp_path / "work" / "three", ipykernel=True)
    config = tmp_path / "kernel-nanny.toml"
    config.write_text(
        f'[providers.venv]\ndirectories = ["{tmp_path / "mine"}"]\n'
        f'[providers.conda]\nenvs_dirs = ["{tmp_path / "conda-envs"}"]\nenvironments_files = []\n'
        f'[providers.uv]\nproject_roots = ["{tmp_path / "work"}"]\n'
    )
    finder = KernelFinder.from_entrypoints(config=config)
    assert {"conda", "venv", "uv", "pixi"} <= set(finder.providers)
    found = dict(finder.find_kernels())
    assert {"venv/one", "conda/two", "uv/three"} <= set(found)
    assert found["uv/three"]["env_path"] == str(project)
    assert finder.kernel_command("venv/one").argv[0] == str(tmp_path / "mine" / "one" / "bin" / "python")


def test_a_wrong_setting_names_its_file_table_and_key(tmp_path):
    config = tmp_path / "kernel-nanny.toml"
    config.write_text('[providers.venv]\ndirectory = ["~/x"]\n')
    with pytest.raises(ConfigError, match=r"\[providers.venv\] directory: unknown setting"):
        KernelFinder.from_entrypoints(config=config)
    config.write_text('[providers.pixi]\nproject_roots = "~/x"\n')
    with pytest.raises(ConfigError, match=r"\[providers.pixi\] project_roots: must be a list"):
        KernelFinder.from_entrypoints(config=config)


def test_kernel_nanny_list_shows_environment_kernels_with_their_paths(home):
    env = make_venv(home / ".virtualenvs" / "listed", ipykernel=True)
    result = subprocess.run([*CLI, "list"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "LANGUAGE", "DISPLAY", "NAME", "ENVIRONMENT"]
    [row] = [line for line in lines if line.startswith("venv/listed ")]
    assert row.split()[-1] == str(env)
    listing = json.loads(subprocess.run([*CLI, "list", "--json"], capture_output=True, text=True, timeout=60).stdout)
    assert {k["id"]: k for k in listing}["venv/listed"]["env_path"] == str(env)
    help_text = subprocess.run([*CLI, "list", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "conda/NAME" in " ".join(help_text.split())


def test_without_environments_the_listing_has_no_environment_column(home):
    result = subprocess.run([*CLI, "list"], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[0].split() == ["TYPE", "LANGUAGE", "DISPLAY", "NAME"]


def test_reprs_show_the_settings():
    assert repr(VenvProvider(directories=["~/a", "$B"])) == "<VenvProvider directories=~/a,$B>"


def test_conda_env_config_vars_are_set_and_a_broken_state_file_is_ignored_with_a_warning(home, caplog):
    env = make_conda_env(home / ".conda" / "envs" / "vars")
    (env / "conda-meta" / "state").write_text('{"env_vars": {"OMP_NUM_THREADS": "2"}}')
    assert CondaProvider().kernel_command("vars").env["OMP_NUM_THREADS"] == "2"
    (env / "conda-meta" / "state").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="kernel_nanny.discovery"):
        assert "OMP_NUM_THREADS" not in CondaProvider().kernel_command("vars").env
    [warning] = warnings_of(caplog)
    assert warning.startswith(f"ignoring {env / 'conda-meta' / 'state'}: ")
