"""The SSH provider's settings: one ``[providers.ssh.hosts.<name>]`` table per host.

Parsed and checked when the provider loads, so a typo is reported with its
key before anything connects.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError

__all__ = ["DEFAULT_REMOTE_COMMAND", "RemoteKernel", "SSHHost", "parse_hosts"]

#: How the remote host runs kernel-nanny, unless a host says otherwise.
DEFAULT_REMOTE_COMMAND = "kernel-nanny"
DEFAULT_CONNECT_TIMEOUT = 10.0


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
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    kernels: tuple[RemoteKernel, ...] = ()

    @property
    def address(self) -> str:
        """``user@host:port``, for messages."""
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"

    def remote_argv(self, *args: str) -> str:
        """A shell command line running kernel-nanny with ``args`` on the remote host."""
        return " ".join([self.command, *(shlex.quote(a) for a in args)])


_HOST_KEYS = {"host", "port", "user", "key", "keys", "known_hosts", "command", "connect_timeout", "kernels"}


def parse_hosts(table: Mapping[str, Any]) -> dict[str, SSHHost]:
    """The hosts of a ``[providers.ssh]`` table, checked; a wrong setting raises :exc:`ConfigError`."""
    unknown = set(table) - {"hosts"}
    if unknown:
        raise ConfigError(f"{', '.join(sorted(unknown))}: unknown setting (known: hosts)")
    hosts = table.get("hosts", {})
    if not isinstance(hosts, dict):
        raise ConfigError("hosts: expected one table per host ([providers.ssh.hosts.<name>])")
    return {name: _parse_host(name, entry) for name, entry in hosts.items()}


def _parse_host(name: str, entry: Any) -> SSHHost:
    where = f"hosts.{name}"
    if "/" in name or not name:
        raise ConfigError(f"{where}: a host's name may not be empty or contain '/'")
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(entry) - _HOST_KEYS
    if unknown:
        known = ", ".join(sorted(_HOST_KEYS))
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown setting (known: {known})")
    settings: dict[str, Any] = {"name": name, "host": _string(entry, where, "host", required=True)}
    if "port" in entry:
        port = entry["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"{where}.port: expected a port number (1-65535), got {port!r}")
        settings["port"] = port
    if "user" in entry:
        settings["user"] = _string(entry, where, "user")
    keys = entry.get("keys", [entry["key"]] if "key" in entry else [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"{where}.keys: expected a list of private key file paths, got {keys!r}")
    settings["keys"] = tuple(Path(os.path.expanduser(k)) for k in keys)
    if "known_hosts" in entry:
        settings["known_hosts"] = Path(os.path.expanduser(_string(entry, where, "known_hosts")))
    if "command" in entry:
        settings["command"] = _string(entry, where, "command")
    if "connect_timeout" in entry:
        timeout = entry["connect_timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"{where}.connect_timeout: expected a number of seconds > 0, got {timeout!r}")
        settings["connect_timeout"] = float(timeout)
    settings["kernels"] = tuple(_parse_kernel(where, k) for k in entry.get("kernels", []))
    return SSHHost(**settings)


def _parse_kernel(where: str, entry: Any) -> RemoteKernel:
    if isinstance(entry, str):
        entry = {"type": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str) or "/" not in entry["type"]:
        raise ConfigError(
            f"{where}.kernels: expected remote kernel type ids ('spec/python3') or tables "
            f"({{type = 'spec/python3', display_name = '...', language = 'python'}}), got {entry!r}"
        )
    unknown = set(entry) - {"type", "display_name", "language"}
    if unknown:
        raise ConfigError(
            f"{where}.kernels: unknown setting {sorted(unknown)[0]!r} (known: type, display_name, language)"
        )
    return RemoteKernel(
        type_id=entry["type"],
        display_name=str(entry.get("display_name", "")),
        language=str(entry.get("language", "")),
    )


def _string(entry: Mapping[str, Any], where: str, key: str, *, required: bool = False) -> str:
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value
