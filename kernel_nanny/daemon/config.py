"""The daemon's configuration: TOML files over embedded defaults.

Files are read in order, each overriding the one before: the system file
(``/etc/kernel-nanny/config.toml``), then the user's
(``$XDG_CONFIG_HOME/kernel-nanny/config.toml``), or only the file given with
``--config``. With no file at all the defaults serve out of the box. Anything
wrong is reported with the file, the key and what is wrong, before the daemon
binds a socket.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from ..config import RestartPolicy, config_files, read_config_file

__all__ = ["ConfigError", "DaemonConfig", "load_config"]

_TCP_ENDPOINT = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(\*|[1-9][0-9]{0,4})$")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _user_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "kernel-nanny"


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    """Every daemon setting, with its default. See the configuration reference in the docs."""

    #: ``tcp://ADDRESS:PORT`` to also serve remote clients (CurveZMQ, allow-listed keys only); empty: local only.
    tcp_endpoint: str = ""
    #: Where the daemon keeps kernel records and keys (0700).
    state_dir: Path = field(default_factory=_user_state_dir)
    #: Extra client public keys (Z85) allowed on the tcp endpoint, besides ``<state_dir>/authorized_keys``.
    allowed_client_keys: tuple[str, ...] = ()
    log_level: str = "info"
    #: How many kernels may run at once (0: no limit).
    max_kernels: int = 0
    #: Kernel type ids (shell-style patterns) the daemon launches; others are refused.
    allowed_types: tuple[str, ...] = ("*",)
    #: Transport of kernels the daemon launches: ``ipc`` (local clients) or ``tcp`` (remote clients).
    kernel_transport: str = "ipc"
    kernel_ip: str = "127.0.0.1"
    #: Shut down kernels idle (not executing) for longer than this many seconds (0: never).
    idle_timeout: float = 0.0
    #: Shut down kernels busy executing for longer than this many seconds (0: never).
    busy_timeout: float = 0.0
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    #: Other daemons whose kernel types are offered as ``<name>/<type>``: name -> client connection file.
    remote_daemons: dict[str, Path] = field(default_factory=dict)
    #: The files this configuration came from (for messages).
    sources: tuple[Path, ...] = ()


_SECTIONS: dict[str, dict[str, str]] = {
    # toml section -> {toml key: DaemonConfig field}
    "daemon": {
        "tcp_endpoint": "tcp_endpoint",
        "state_dir": "state_dir",
        "allowed_client_keys": "allowed_client_keys",
        "log_level": "log_level",
    },
    "kernels": {
        "max_kernels": "max_kernels",
        "allowed_types": "allowed_types",
        "transport": "kernel_transport",
        "ip": "kernel_ip",
    },
    "culling": {"idle_timeout": "idle_timeout", "busy_timeout": "busy_timeout"},
}


def load_config(path: str | os.PathLike[str] | None = None) -> DaemonConfig:
    """The configuration from ``path`` alone, or from the default files, over the defaults.

    ``[providers.<id>]`` tables are the providers' own: each provider checks its table when the
    daemon's :class:`~kernel_nanny.KernelFinder` loads it.
    """
    files = config_files(path)
    values: dict[str, Any] = {}
    restart: dict[str, Any] = {}
    restart_file: Path | None = None
    remotes: dict[str, Path] = {}
    for file in files:
        data = read_config_file(file)
        for section, table in data.items():
            if section == "providers":
                _check_table(file, section, table)
            elif section == "restart":
                _check_table(file, section, table)
                restart.update(table)
                restart_file = file
            elif section == "remote_daemons":
                _check_table(file, section, table)
                for name, entry in table.items():
                    remotes[name] = _remote(file, name, entry)
            elif section in _SECTIONS:
                _check_table(file, section, table)
                for key, value in table.items():
                    if key not in _SECTIONS[section]:
                        known = ", ".join(sorted(_SECTIONS[section]))
                        raise ConfigError(f"{file}: [{section}] {key}: unknown setting (known: {known})")
                    values[_SECTIONS[section][key]] = (file, f"[{section}] {key}", value)
            else:
                known = ", ".join(sorted([*_SECTIONS, "providers", "restart", "remote_daemons"]))
                raise ConfigError(f"{file}: [{section}]: unknown section (known: {known})")
    settings = {name: _convert(file, where, name, value) for name, (file, where, value) in values.items()}
    try:
        policy = RestartPolicy.from_dict(restart)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{restart_file}: [restart]: {exc}") from None
    return DaemonConfig(**settings, restart_policy=policy, remote_daemons=remotes, sources=tuple(files))


def _check_table(file: Path, section: str, table: Any) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: {section} must be a table ([{section}])")


def _remote(file: Path, name: str, entry: Any) -> Path:
    where = f"{file}: [remote_daemons] {name}"
    if "/" in name:
        raise ConfigError(f"{where}: a remote daemon's name may not contain '/'")
    if isinstance(entry, str):
        return Path(entry).expanduser()
    if isinstance(entry, dict) and isinstance(entry.get("connection_file"), str):
        return Path(entry["connection_file"]).expanduser()
    raise ConfigError(f'{where}: expected the path of a client connection file ({name} = "/path/file.json")')


def _convert(file: Path, where: str, name: str, value: Any) -> Any:
    problem = f"{file}: {where}:"
    kind = {f.name: f.type for f in fields(DaemonConfig)}[name]
    if name in ("tcp_endpoint", "log_level", "kernel_transport", "kernel_ip"):
        if not isinstance(value, str):
            raise ConfigError(f"{problem} expected a string, got {value!r}")
        if name == "log_level" and value.lower() not in LOG_LEVELS:
            raise ConfigError(f"{problem} expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
        if name == "kernel_transport" and value not in ("ipc", "tcp"):
            raise ConfigError(f"{problem} expected 'ipc' or 'tcp', got {value!r}")
        if name == "tcp_endpoint" and value and not _TCP_ENDPOINT.match(value):
            raise ConfigError(f"{problem} expected 'tcp://ADDRESS:PORT' (port 1-65535 or *), got {value!r}")
        if name == "kernel_ip":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError(f"{problem} expected an IP address to bind kernels to, got {value!r}") from None
        return value.lower() if name == "log_level" else value
    if name == "state_dir":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{problem} expected a directory path, got {value!r}")
        return Path(value).expanduser()
    if name in ("allowed_client_keys", "allowed_types"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{problem} expected a list of strings, got {value!r}")
        if name == "allowed_client_keys":
            bad = [k for k in value if len(k) != 40]
            if bad:
                raise ConfigError(f"{problem} {bad[0]!r} is not a Z85 CurveZMQ public key (40 characters)")
        return tuple(value)
    if name == "max_kernels":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{problem} expected a whole number >= 0, got {value!r}")
        return value
    if name in ("idle_timeout", "busy_timeout"):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{problem} expected a number of seconds >= 0, got {value!r}")
        return float(value)
    raise AssertionError(f"no conversion for {name} ({kind})")  # pragma: no cover
