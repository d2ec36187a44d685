"""Real Python environments for the environment providers' tests, made under a home of the test's own.

``home`` points ``HOME`` (and ``XDG_CONFIG_HOME``) at a temporary directory
and clears the variables through which conda, virtualenvwrapper and an
activated shell name environments, so the user's own environments never
show up in a test and a test's never outlive it.

Which environment "has ipykernel" is decided by the providers from the files
(an ``ipykernel/`` package in a site directory the environment's Python
reads). :func:`make_venv` gives a venv ipykernel the cheap way, as
``--system-site-packages`` of the Python running the tests (which has
ipykernel): the venv's Python really imports it from there, and the
providers find it there through ``pyvenv.cfg``'s ``home`` and
``include-system-site-packages``. Run from a venv, the tests' Python is not
the new venv's base, so a ``.pth`` file adds its site directories as well
(``.pth`` directories are read by the providers too).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

#: What names environments outside the files the providers read: none may leak in from the user's shell.
ENVIRONMENT_VARIABLES = (
    "CONDA_ENVS_PATH",
    "CONDA_ENVS_DIRS",
    "CONDA_EXE",
    "CONDA_ROOT",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "CONDARC",
    "MAMBA_ROOT_PREFIX",
    "WORKON_HOME",
    "VIRTUAL_ENV",
)


@pytest.fixture(name="home")
def home_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty home directory of the test's own, with no environment variable naming environments."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for variable in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    yield home


def make_venv(path: Path, *, ipykernel: bool) -> Path:
    """``python -m venv`` at ``path`` (no pip); with ipykernel, as ``--system-site-packages`` of this Python."""
    args = [
        sys.executable,
        "-m",
        "venv",
        "--without-pip",
        *(["--system-site-packages"] if ipykernel else []),
        str(path),
    ]
    subprocess.run(args, check=True)
    if ipykernel and sys.prefix != sys.base_prefix:  # the tests run in a venv: its packages are not the base's
        [site_packages] = path.glob("lib/python*/site-packages")
        (site_packages / "kernel-nanny-tests.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return path


def make_conda_env(path: Path, *, ipykernel: bool = True) -> Path:
    """A conda-layout prefix: a venv given ``conda-meta/``, which is how conda prefixes are recognised.

    conda's package channels cannot be reached from the test machines, so
    no ``conda create`` here: the prefix has conda's marker and a real Python.
    """
    make_venv(path, ipykernel=ipykernel)
    (path / "conda-meta").mkdir()
    (path / "conda-meta" / "history").write_text("")
    return path


def add_activate_script(prefix: Path, name: str, text: str) -> Path:
    """An ``etc/conda/activate.d`` script, as conda packages install them."""
    directory = prefix / "etc" / "conda" / "activate.d"
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text(text)
    return script


def add_kernelspec(prefix: Path, name: str, spec: dict[str, object]) -> Path:
    """A kernelspec installed into the environment (``<prefix>/share/jupyter/kernels/<name>``)."""
    directory = prefix / "share" / "jupyter" / "kernels" / name
    directory.mkdir(parents=True)
    (directory / "kernel.json").write_text(json.dumps(spec))
    return directory


def write_environments_txt(home: Path, *prefixes: Path) -> Path:
    """conda's list of environments, ``~/.conda/environments.txt``."""
    file = home / ".conda" / "environments.txt"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("".join(f"{prefix}\n" for prefix in prefixes))
    return file


def uv_executable() -> str:
    """The ``uv`` executable (the ``uv`` package of the ``test`` extra), installed from PyPI if missing."""
    found = shutil.which("uv")
    if found is not None:
        return found
    try:
        from uv import find_uv_bin
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "uv"], check=True)
        from uv import find_uv_bin
    return str(find_uv_bin())


def make_uv_project(path: Path, *, ipykernel: bool) -> Path:
    """A uv project (``uv init --bare``) and its ``.venv`` (``uv venv``) at ``path``; returns the ``.venv``.

    With ipykernel, the ``.venv`` sees this Python's packages (``--system-site-packages``):
    installing ipykernel and its dependencies from PyPI would make the test slow and
    dependent on the network.
    """
    uv = uv_executable()
    path.mkdir(parents=True)
    env = {**os.environ, "UV_NO_CONFIG": "1", "UV_OFFLINE": "1", "UV_CACHE_DIR": str(path.parent / ".uv-cache")}
    subprocess.run([uv, "init", "--bare", "--quiet", "--no-workspace"], cwd=path, env=env, check=True)
    args = [uv, "venv", "--quiet", "--python", sys.executable, *(["--system-site-packages"] if ipykernel else [])]
    subprocess.run(args, cwd=path, env=env, check=True)
    venv = path / ".venv"
    if ipykernel and sys.prefix != sys.base_prefix:
        [site_packages] = venv.glob("lib/python*/site-packages")
        (site_packages / "kernel-nanny-tests.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv
