"""The SSH provider's settings: one ``[providers.ssh.hosts.<name>]`` table per host.

Parsed and checked when the provider loads, so a typo is reported with its
key before anything connects.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigTable
from ..defaults import SSH_CONNECT_TIMEOUT

__all__ = ["DEFAULT_REMOTE_COMMAND", "RemoteKernel", "SSHHost", "parse_host", "parse_hosts"]

#: How the remote host runs kernel-nanny, unless a host says otherwise.
DEFAULT_REMOTE_COMMAND = "kernel-nanny"


@dataclass(frozen=True)
class RemoteKernel:
    """A kernel type of the remote host, as this side offers it."""

    type_id: str
    display_name: str = ""
    language: str = ""


@dataclass(frozen=True)
class SSHHost:
    """One remote host: how to reach it, how to run kernel-nanny there, which kernel types it offers."""

    name: str
    host: str
    port: int = 22
    user: str | None = None
    #: Private key files to offer; empty: asyncssh's defaults (``~/.ssh/id_*``, the agent).
    keys: tuple[Path, ...] = ()
    #: The known_hosts file the host key is checked against (never skipped).
    known_hosts: Path = field(default_factory=lambda: Path("~/.ssh/known_hosts").expanduser())
    #: The remote command line that runs kernel-nanny (e.g. ``/opt/venv/bin/kernel-nanny``).
    command: str = DEFAULT_REMOTE_COMMAND
    connect_timeout: float = SSH_CONNECT_TIMEOUT
    kernels: tuple[RemoteKernel, ...] = ()

    @property
    def address(self) -> str:
        """``user@host:port``, for messages."""
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data (a manager's state keeps how its host was reached)."""
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "keys": [str(key) for key in self.keys],
            "known_hosts": str(self.known_hosts),
            "command": self.command,
            "connect_timeout": self.connect_timeout,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SSHHost:
        """Settings :meth:`to_dict` gave; raises ``KeyError``, ``TypeError`` or ``ValueError`` for anything else."""
        settings = dict(data)
        return cls(
            name=str(settings.pop("name")),
            host=str(settings.pop("host")),
            keys=tuple(Path(key) for key in settings.pop("keys", ())),
            known_hosts=Path(settings.pop("known_hosts")),
            **settings,
        )

    def remote_argv(self, *args: str) -> str:
        """A shell command line running kernel-nanny with ``args`` on the remote host."""
        return " ".join([self.command, *(shlex.quote(a) for a in args)])


_HOST_KEYS = {"host", "port", "user", "key", "keys", "known_hosts", "command", "connect_timeout", "kernels"}


def parse_hosts(table: Mapping[str, Any]) -> dict[str, SSHHost]:
    """The hosts of a ``[providers.ssh]`` table, checked; a wrong setting raises :exc:`~kernel_nanny.ConfigError`
    naming the file, the table and the key."""
    settings = ConfigTable.of(table, "providers.ssh")
    settings.check_keys({"hosts"})
    hosts = settings.table("hosts")
    return {name: parse_host(hosts, name) for name in hosts}


def parse_host(hosts: ConfigTable, name: str) -> SSHHost:
    """The host in table ``name`` of ``hosts`` (also a Slurm cluster's ``login`` table)."""
    if "/" in name or not name:
        raise hosts.error(name, "a host's name may not be empty or contain '/'")
    entry = hosts.table(name)
    entry.check_keys(_HOST_KEYS)
    host = entry.string("host", None)
    if host is None:
        raise entry.error("host", "missing (the name or address of the host to connect to)")
    key = entry.path("key", None)
    keys = tuple(Path(k).expanduser() for k in entry.string_list("keys", ())) or ((key,) if key else ())
    given: dict[str, Any] = {  # the dataclass's defaults stand for what is not given
        "port": entry.whole_number("port", None, minimum=1, maximum=65535),
        "user": entry.string("user", None),
        "known_hosts": entry.path("known_hosts", None),
        "command": entry.string("command", None),
        "connect_timeout": entry.number("connect_timeout", None, above=True),
    }
    settings = {setting: value for setting, value in given.items() if value is not None}
    return SSHHost(name=name, host=host, keys=keys, kernels=_parse_kernels(entry), **settings)


def _parse_kernels(entry: ConfigTable) -> tuple[RemoteKernel, ...]:
    kernels = entry.get("kernels", [])
    expected = (
        "remote kernel type ids ('spec/python3') or tables "
        "({type = 'spec/python3', display_name = '...', language = 'python'})"
    )
    if not isinstance(kernels, list):
        raise entry.invalid("kernels", f"a list of {expected}")
    parsed = []
    for kernel in kernels:
        if isinstance(kernel, str):
            kernel = {"type": kernel}
        if not isinstance(kernel, dict) or not isinstance(kernel.get("type"), str) or "/" not in kernel["type"]:
            raise entry.error("kernels", f"must be {expected}, got {kernel!r}")
        unknown = sorted(set(kernel) - {"type", "display_name", "language"})
        if unknown:
            raise entry.error("kernels", f"unknown setting {unknown[0]!r} (known: display_name, language, type)")
        parsed.append(
            RemoteKernel(
                type_id=kernel["type"],
                display_name=str(kernel.get("display_name", "")),
                language=str(kernel.get("language", "")),
            )
        )
    return tuple(parsed)
