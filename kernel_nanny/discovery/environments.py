"""Kernel types from Python environments: conda, venv, uv and pixi, found by reading files alone.

One provider per kind of environment, each registered in the
``kernel_nanny.kernel_providers`` entry-point group like the other built-in ones:

* ``conda/<name>``: conda environments, a directory with ``conda-meta/``. Found in
  the ``envs_dirs`` (``$CONDA_ENVS_PATH``, the ``envs_dirs`` of the ``.condarc``
  files, ``~/.conda/envs``, ``<root>/envs`` of the installation named by
  ``$CONDA_EXE``, ``$CONDA_ROOT`` or ``$MAMBA_ROOT_PREFIX``) and in conda's own
  list, ``~/.conda/environments.txt``. The installation's root is ``conda/base``.
* ``venv/<name>``: venvs (``pyvenv.cfg``) in configured directories
  (``~/.virtualenvs``, ``~/.venvs``, ``$WORKON_HOME``).
* ``uv/<project>``: the ``.venv`` of a uv project (``uv.lock``, or a ``.venv`` uv made).
* ``pixi/<project>/<env>``: the environments of a pixi project (``.pixi/envs/<env>``).

Nothing is run to find them: no ``conda info``, no Python. An environment is
offered when its Python has ipykernel, which is decided from the files: an
``ipykernel/`` package in one of the environment's ``lib/python3.*/site-packages``
directories, in the directories its ``.pth`` files add, or, for a venv made with
``--system-site-packages`` (``include-system-site-packages = true`` in
``pyvenv.cfg``), in its base Python's. Each kernelspec inside an environment
(``<prefix>/share/jupyter/kernels/<spec>/kernel.json``: an R or Julia kernel
installed with conda) is offered as ``<kind>/<name>/<spec>``, ipykernel or not.
An environment that vanished or is broken is skipped with one warning (once for
each provider object: a daemon that lists its types again and again logs it once).

A kernel starts in its environment activated as a shell would: ``PATH`` starts
with ``<prefix>/bin``, ``CONDA_PREFIX`` (conda, pixi) or ``VIRTUAL_ENV`` (venv,
uv) is set, a conda environment's own variables (``conda env config vars set``,
kept in ``conda-meta/state``) too, and conda's ``<prefix>/etc/conda/activate.d/*.sh`` scripts, when
there are any, are sourced by ``/bin/sh``, which then ``exec``\\s the kernel: the
kernel keeps the process (its pid, process group and signals).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shlex
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from .._exceptions import LaunchError, NoSuchKernelType
from ..config import ConfigTable
from ..defaults import (
    ACTIVATION_SHELL,
    CONDA_ENVIRONMENTS_FILES,
    CONDA_ENVS_DIRS,
    CONDARC_FILES,
    PROJECT_ROOTS,
    VENV_DIRECTORIES,
)
from ..launch import KernelCommand, LaunchResult, launch_local
from ..launch.command import ipykernel_command
from .provider import KernelProvider
from .spec import find_kernel_specs, read_kernel_spec

__all__ = [
    "CondaProvider",
    "Environment",
    "EnvironmentProvider",
    "PixiProvider",
    "UvProvider",
    "VenvProvider",
    "conda_env_vars",
    "condarc_envs_dirs",
    "ipykernel_python_version",
]

log = logging.getLogger("kernel_nanny.discovery")

#: What a part of an environment's type id may be: a directory name a shell and a URL take as it is.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]*$")
_PYTHON_LIB = re.compile(r"^python(3\.\d+)$")
_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?)?")
_KERNELSPECS = Path("share", "jupyter", "kernels")
_ACTIVATE_D = Path("etc", "conda", "activate.d")


@dataclasses.dataclass(frozen=True)
class Environment:
    """A Python environment found on disk: its name in type ids, its directory, how to activate it."""

    name: str
    prefix: Path
    #: Variables its activation sets (``PATH`` refers to the launcher's as ``${PATH}``).
    activation: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Scripts a shell sources to activate it (conda's ``etc/conda/activate.d/*.sh``), in order.
    activate_scripts: tuple[Path, ...] = ()

    @property
    def python(self) -> Path:
        return self.prefix / "bin" / "python"

    def wrap(self, command: KernelCommand) -> KernelCommand:
        """``command`` run in this environment: its variables set, its activation scripts sourced first.

        The scripts run in a shell function, so that what they do to ``$@``
        does not touch the kernel's argv, and the shell then ``exec``\\s the
        kernel: same pid, same process group, signals straight to the kernel.
        """
        env = {**self.activation, **command.env}
        if not self.activate_scripts:
            return dataclasses.replace(command, env=env)
        sourced = "".join(f"  . {shlex.quote(str(script))}\n" for script in self.activate_scripts)
        script = f'kernel_nanny_activate() {{\n{sourced}}}\nkernel_nanny_activate\nexec "$@"\n'
        return dataclasses.replace(
            command, argv=[ACTIVATION_SHELL, "-c", script, "kernel-nanny-activate", *command.argv], env=env
        )


def read_pyvenv_cfg(prefix: Path) -> dict[str, str] | None:
    """The ``key = value`` lines of ``prefix/pyvenv.cfg``, or None without one."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


def _site_directories(prefix: Path, pyvenv: Mapping[str, str] | None) -> Iterator[tuple[str, Path]]:
    """``(python version, directory)`` for each site directory an environment's Python reads (by the files)."""
    try:
        versions = sorted(m.group(1) for e in os.scandir(prefix / "lib") if (m := _PYTHON_LIB.match(e.name)))
    except OSError:
        return
    for version in versions:
        yield version, prefix / "lib" / f"python{version}" / "site-packages"
    if pyvenv is None or pyvenv.get("include-system-site-packages", "").lower() != "true" or not pyvenv.get("home"):
        return
    base = Path(pyvenv["home"]).parent  # home is the directory of the base interpreter: <base prefix>/bin
    for version in versions:
        yield version, base / "lib" / f"python{version}" / "site-packages"
        yield version, base / "lib" / f"python{version}" / "dist-packages"  # Debian's
        yield version, base / "local" / "lib" / f"python{version}" / "dist-packages"
        yield version, Path("~/.local/lib", f"python{version}", "site-packages").expanduser()  # the user site


def _pth_directories(site: Path) -> Iterator[Path]:
    """The directories ``site``'s ``.pth`` files add to ``sys.path`` (their ``import`` lines are not run)."""
    try:
        pth_files = sorted(e.path for e in os.scandir(site) if e.name.endswith(".pth"))
    except OSError:
        return
    for pth in pth_files:
        try:
            lines = Path(pth).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if line and not line.startswith(("#", "import ", "import\t")):
                yield site / line


def ipykernel_python_version(prefix: Path, pyvenv: Mapping[str, str] | None = None) -> str | None:
    """The version (``3.11``) of the environment's Python if it has ipykernel, by the files; else None."""
    sites = list(_site_directories(prefix, pyvenv))
    for version, site in sites:
        if (site / "ipykernel").is_dir():
            return version
    for version, site in sites:
        if any((directory / "ipykernel").is_dir() for directory in _pth_directories(site)):
            return version
    return None


def conda_env_vars(prefix: Path) -> dict[str, str]:
    """The variables ``conda env config vars set`` keeps in ``conda-meta/state`` (set by ``conda activate``).

    Raises ``ValueError`` for a state file that cannot be read as JSON.
    """
    try:
        state = json.loads((prefix / "conda-meta" / "state").read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{prefix / 'conda-meta' / 'state'}: {exc}") from exc
    variables = state.get("env_vars") if isinstance(state, dict) else None
    if not isinstance(variables, dict):
        return {}
    return {str(key): str(value) for key, value in variables.items()}


def _expanded(path: str) -> Path | None:
    """``path`` with ``~`` and ``$VARS`` expanded; None when it names an unset variable."""
    expanded = os.path.expandvars(os.path.expanduser(path))
    return None if "$" in expanded or not expanded else Path(expanded).expanduser()


def _subdirectories(directory: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def condarc_envs_dirs(text: str) -> list[str]:
    """The ``envs_dirs`` (or ``envs_path``) of a ``.condarc``'s text: a block list or a flow list.

    Only this top-level key is read, so no YAML library is needed; anything
    else in the file is ignored.
    """
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^(?:envs_dirs|envs_path)\s*:\s*(.*?)\s*(?:#.*)?$", line)
        if match is None:
            continue
        rest = match.group(1)
        if rest.startswith("["):
            return [_unquoted(item) for item in rest.strip("[]").split(",") if item.strip()]
        items = []
        for follow in lines[index + 1 :]:
            item = follow.strip()
            if not item or item.startswith("#"):
                continue
            if not item.startswith("-"):
                break
            items.append(_unquoted(re.sub(r"\s+#.*$", "", item[1:])))
        return [item for item in items if item]
    return []


def _unquoted(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value


class EnvironmentProvider(KernelProvider):
    """The shared part of the environment providers: from ``(name, prefix)`` candidates to kernel types.

    A subclass sets :attr:`id` and :attr:`kind_label`, finds its candidates
    (:meth:`candidates`, cheap: directory listings), says how to recognise one
    (:meth:`problem`) and how to activate it (:meth:`activation`).
    """

    #: How the kind is named in display names (``conda env``).
    kind_label: ClassVar[str]
    #: Whether conda's ``activate.d`` scripts apply (conda prefixes: conda and pixi).
    conda_prefix: ClassVar[bool] = False
    #: The settings of ``[providers.<id>]`` (each a list of paths).
    setting_keys: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def candidates(self) -> Iterable[tuple[str, Path]]:
        """``(name, prefix)`` of each environment there seems to be, first of a name winning."""

    def problem(self, prefix: Path) -> str | None:
        """Why ``prefix`` is not an environment of this kind, or None when it is."""
        if not prefix.is_dir():
            return "it no longer exists"
        marker = "conda-meta" if self.conda_prefix else "pyvenv.cfg"
        if not (prefix / marker).exists():
            return f"it has no {marker}"
        python = prefix / "bin" / "python"
        if python.is_symlink() and not python.exists():
            return f"its bin/python links to {os.readlink(python)}, which does not exist"
        return None

    def activation(self, name: str, prefix: Path) -> dict[str, str]:
        """What activating the environment sets (``PATH`` first)."""
        return {"PATH": f"{prefix / 'bin'}{os.pathsep}${{PATH}}"}

    def warn(self, message: str, *args: object) -> None:
        """Log a warning once per provider: a daemon lists its kernel types again and again."""
        warned: set[str] = self.__dict__.setdefault("_warned", set())
        text = message % args
        if text in warned:
            log.debug("%s", text)
            return
        warned.add(text)
        log.warning("%s", text)

    # -- from candidates to environments -------------------------------------------------------

    def _named(self) -> Iterator[tuple[str, Path]]:
        """The candidates with usable names, each prefix and name once."""
        names: dict[str, Path] = {}
        prefixes: set[Path] = set()
        for name, prefix in self.candidates():
            if prefix in prefixes:
                continue
            prefixes.add(prefix)
            if not all(_NAME.match(part) for part in name.split("/")):
                self.warn("skipping %s %s: %r cannot be a kernel type name", self.kind_label, prefix, name)
                continue
            if name in names:
                self.warn("skipping %s %s: its name %r is %s's already", self.kind_label, prefix, name, names[name])
                continue
            names[name] = prefix
            yield name, prefix

    def _environment(self, name: str, prefix: Path, *, activate: bool = True) -> Environment | None:
        """The environment at ``prefix``, or None (with a warning) if it vanished or is broken.

        ``activate=False`` leaves its activation variables out (a listing shows none of them, and reading
        them can mean reading a file per environment); the scripts stay, as they shape the command line."""
        problem = self.problem(prefix)
        if problem is not None:
            self.warn("skipping %s %s at %s: %s", self.kind_label, name, prefix, problem)
            return None
        scripts: tuple[Path, ...] = ()
        if self.conda_prefix:
            try:
                scripts = tuple(
                    sorted(Path(e.path) for e in os.scandir(prefix / _ACTIVATE_D) if e.name.endswith(".sh"))
                )
            except OSError:
                pass
        return Environment(name, prefix, self.activation(name, prefix) if activate else {}, scripts)

    def environments(self) -> Iterator[Environment]:
        """Every usable environment of this kind (one warning for each skipped)."""
        for name, prefix in self._named():
            environment = self._environment(name, prefix, activate=False)
            if environment is not None:
                yield environment

    # -- the provider interface ------------------------------------------------------------------

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for environment in self.environments():
            yield from self._kernels_of(environment)

    def _kernels_of(self, environment: Environment) -> Iterator[tuple[str, dict[str, Any]]]:
        label = f"{self.kind_label} {environment.name}"
        where = {"env_path": str(environment.prefix)}
        version = self._ipykernel_version(environment)
        if version is not None:
            command = self._python_command(environment)
            yield (
                environment.name,
                {
                    "display_name": f"Python {version} ({label})",
                    "language": "python",
                    "argv": command.argv,
                    "interrupt_mode": command.interrupt_mode,
                    "metadata": dict(command.metadata),
                    **where,
                },
            )
        for spec_name, directory in find_kernel_specs([str(environment.prefix / _KERNELSPECS)]).items():
            try:
                spec = read_kernel_spec(directory, spec_name)
            except (OSError, ValueError) as exc:
                self.warn("skipping kernelspec %s of %s: %s", spec_name, label, exc)
                continue
            command = self._spec_command(environment, directory, spec)
            yield (
                f"{environment.name}/{spec_name}",
                {
                    "display_name": f"{spec.get('display_name', spec_name)} ({label})",
                    "language": spec.get("language", ""),
                    "argv": command.argv,
                    "interrupt_mode": command.interrupt_mode,
                    "metadata": dict(command.metadata),
                    "resource_dir": str(directory),
                    **where,
                },
            )

    @staticmethod
    def _ipykernel_version(environment: Environment) -> str | None:
        python = environment.python
        if not (python.is_file() and os.access(python, os.X_OK)):
            return None
        return ipykernel_python_version(environment.prefix, read_pyvenv_cfg(environment.prefix))

    @staticmethod
    def _python_command(environment: Environment) -> KernelCommand:
        return environment.wrap(ipykernel_command(str(environment.python)))

    @staticmethod
    def _spec_command(environment: Environment, directory: Path, spec: Mapping[str, Any]) -> KernelCommand:
        """A kernelspec of the environment: ``{prefix}`` is the environment's, a bare program its own if it has it."""
        argv = [arg.replace("{prefix}", str(environment.prefix)) for arg in spec["argv"]]
        program = environment.prefix / "bin" / argv[0]
        if "/" not in argv[0] and (program.is_file() or _PYTHON_NAME.fullmatch(argv[0])):
            # What the activated PATH finds. A Python is always the environment's, even one it lacks (the launch
            # then fails, naming it): a bare "python" would otherwise mean kernel-nanny's own.
            argv[0] = str(program)
        command = KernelCommand(
            argv=argv,
            env=dict(spec.get("env", {})),
            resource_dir=str(directory),
            interrupt_mode=spec.get("interrupt_mode", "signal"),
            metadata=spec.get("metadata", {}),
        )
        return environment.wrap(command)

    def kernel_command(self, name: str) -> KernelCommand:
        for env_name, prefix in self._named():
            if name != env_name and not (name.startswith(f"{env_name}/") and "/" not in name[len(env_name) + 1 :]):
                continue
            environment = self._environment(env_name, prefix)
            if environment is None:
                raise LaunchError(f"{self.id}/{env_name}: {self.problem(prefix)} ({prefix})")
            if name == env_name:
                if self._ipykernel_version(environment) is None:
                    raise LaunchError(
                        f"{self.id}/{name}: the Python environment {prefix} has no ipykernel. "
                        f"Install it there: {environment.python} -m pip install ipykernel"
                    )
                return self._python_command(environment)
            spec_name = name[len(env_name) + 1 :].lower()
            directory = find_kernel_specs([str(prefix / _KERNELSPECS)]).get(spec_name)
            if directory is None:
                break
            try:
                spec = read_kernel_spec(directory, spec_name)
            except (OSError, ValueError) as exc:
                raise LaunchError(f"kernelspec {spec_name} in {directory} is invalid: {exc}") from exc
            return self._spec_command(environment, directory, spec)
        raise NoSuchKernelType(f"{self.id}/{name}")

    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None
    ) -> LaunchResult:
        return await launch_local(
            self.kernel_command(name), kernel_name=f"{self.id}/{name}", cwd=cwd, launch_params=launch_params
        )

    def load_config(self, config: Mapping[str, Any]) -> None:
        """Each setting is a list of paths (``~`` and ``$VARS`` expanded when read), replacing the default."""
        table = ConfigTable.of(config, f"providers.{self.id}")
        table.check_keys(self.setting_keys)
        for key in self.setting_keys:
            value = table.string_list(key, None)
            if value is not None:
                setattr(self, key, value)

    def __repr__(self) -> str:
        settings = " ".join(f"{key}={','.join(getattr(self, key))}" for key in self.setting_keys)
        return f"<{type(self).__name__} {settings}>"


def _existing(paths: Iterable[str]) -> Iterator[Path]:
    for path in paths:
        expanded = _expanded(path)
        if expanded is not None:
            yield expanded


class CondaProvider(EnvironmentProvider):
    """conda environments as ``conda/<name>`` (``conda/base`` for an installation's root)."""

    id = "conda"
    kind_label = "conda env"
    conda_prefix = True
    setting_keys = ("environments_files", "envs_dirs", "condarc_files")

    def __init__(
        self,
        *,
        environments_files: Iterable[str] = CONDA_ENVIRONMENTS_FILES,
        envs_dirs: Iterable[str] = CONDA_ENVS_DIRS,
        condarc_files: Iterable[str] = CONDARC_FILES,
    ) -> None:
        self.environments_files = tuple(environments_files)
        self.envs_dirs = tuple(envs_dirs)
        self.condarc_files = tuple(condarc_files)

    @staticmethod
    def roots() -> list[Path]:
        """The installations the environment names: ``$CONDA_ROOT``, ``$MAMBA_ROOT_PREFIX``, ``$CONDA_EXE``'s."""
        roots = [os.environ.get("CONDA_ROOT"), os.environ.get("MAMBA_ROOT_PREFIX")]
        if os.environ.get("CONDA_EXE"):
            roots.append(str(Path(os.environ["CONDA_EXE"]).parent.parent))
        return [Path(root) for root in roots if root]

    def _condarc_texts(self) -> Iterator[str]:
        for entry in self.condarc_files:
            path = _expanded(entry)
            if path is None:
                continue
            files = [path]
            if entry.endswith("/"):
                try:
                    files = sorted(Path(e.path) for e in os.scandir(path) if e.name.endswith((".yml", ".yaml")))
                except OSError:
                    continue
            for file in files:
                try:
                    yield file.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue

    def all_envs_dirs(self) -> list[Path]:
        """Where conda keeps environments: ``$CONDA_ENVS_PATH``, the .condarc files', the settings', the roots'."""
        dirs: list[str] = []
        for variable in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS"):
            dirs += [d for d in os.environ.get(variable, "").split(os.pathsep) if d]
        for text in self._condarc_texts():
            dirs += condarc_envs_dirs(text)
        dirs += self.envs_dirs
        dirs += [str(root / "envs") for root in self.roots()]
        return list(dict.fromkeys(_existing(dirs)))

    def _name_of(self, prefix: Path) -> str:
        if prefix in self.roots() or (prefix / "condabin").is_dir():
            return "base"
        return prefix.name

    def candidates(self) -> Iterator[tuple[str, Path]]:
        for root in self.roots():
            if (root / "conda-meta").is_dir():
                yield "base", root
        for directory in self.all_envs_dirs():
            for prefix in _subdirectories(directory):
                if (prefix / "conda-meta").is_dir():
                    yield prefix.name, prefix
        for file in _existing(self.environments_files):
            try:
                lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    prefix = Path(line).expanduser()
                    yield self._name_of(prefix), prefix

    def activation(self, name: str, prefix: Path) -> dict[str, str]:
        """``PATH``, ``CONDA_PREFIX``, ``CONDA_DEFAULT_ENV``, and the variables ``conda env config vars set`` saved."""
        return {
            **super().activation(name, prefix),
            "CONDA_PREFIX": str(prefix),
            "CONDA_DEFAULT_ENV": name,
            **self._saved_variables(prefix),
        }

    def _saved_variables(self, prefix: Path) -> dict[str, str]:
        try:
            return conda_env_vars(prefix)
        except ValueError as exc:
            self.warn("ignoring %s", exc)
            return {}


class _VirtualEnvProvider(EnvironmentProvider):
    """Environments that ``bin/activate`` activates: ``VIRTUAL_ENV`` names them."""

    def activation(self, name: str, prefix: Path) -> dict[str, str]:
        return {**super().activation(name, prefix), "VIRTUAL_ENV": str(prefix), "VIRTUAL_ENV_PROMPT": name}


class VenvProvider(_VirtualEnvProvider):
    """venvs (``pyvenv.cfg``) in the configured directories as ``venv/<name>``."""

    id = "venv"
    kind_label = "venv"
    setting_keys = ("directories",)

    def __init__(self, *, directories: Iterable[str] = VENV_DIRECTORIES) -> None:
        self.directories = tuple(directories)

    def candidates(self) -> Iterator[tuple[str, Path]]:
        for directory in _existing(self.directories):
            for prefix in _subdirectories(directory):
                if (prefix / "pyvenv.cfg").is_file():
                    yield prefix.name, prefix


def _projects(roots: Iterable[str]) -> Iterator[Path]:
    """Each root that exists, then its sub-directories: where projects are looked for (one level)."""
    for root in _existing(roots):
        if root.is_dir():
            yield root
            yield from _subdirectories(root)


class UvProvider(_VirtualEnvProvider):
    """The ``.venv`` of each uv project under the project roots as ``uv/<project>``."""

    id = "uv"
    kind_label = "uv project"
    setting_keys = ("project_roots",)

    def __init__(self, *, project_roots: Iterable[str] = PROJECT_ROOTS) -> None:
        self.project_roots = tuple(project_roots)

    def candidates(self) -> Iterator[tuple[str, Path]]:
        for project in _projects(self.project_roots):
            pyvenv = read_pyvenv_cfg(project / ".venv")
            if pyvenv is not None and ("uv" in pyvenv or (project / "uv.lock").is_file()):
                yield project.name, project / ".venv"


class PixiProvider(EnvironmentProvider):
    """The environments of each pixi project under the project roots as ``pixi/<project>/<env>``."""

    id = "pixi"
    kind_label = "pixi env"
    conda_prefix = True
    setting_keys = ("project_roots",)

    def __init__(self, *, project_roots: Iterable[str] = PROJECT_ROOTS) -> None:
        self.project_roots = tuple(project_roots)

    def candidates(self) -> Iterator[tuple[str, Path]]:
        for project in _projects(self.project_roots):
            for prefix in _subdirectories(project / ".pixi" / "envs"):
                if (prefix / "conda-meta").is_dir():
                    yield f"{project.name}/{prefix.name}", prefix

    def activation(self, name: str, prefix: Path) -> dict[str, str]:
        project = prefix.parent.parent.parent
        return {
            **super().activation(name, prefix),
            "CONDA_PREFIX": str(prefix),
            "PIXI_PROJECT_ROOT": str(project),
            "PIXI_ENVIRONMENT_NAME": prefix.name,
        }
