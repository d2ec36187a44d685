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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from ..config import ConfigTable, JournalLimits, RestartPolicy, config_files, parse_size, read_config_file
from ..gateway.settings import GatewaySettings, parse_address
from ..launch.params import ENCRYPTION_POLICIES, TRANSPORTS
from ..paths import user_state_dir
from .keys import is_z85_key
from .pool_settings import PoolLimits, PoolSettings

__all__ = ["ConfigError", "DaemonConfig", "load_config"]

_TCP_ENDPOINT = re.compile(r"^tcp://(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(\*|[1-9][0-9]{0,4})$")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    """Every daemon setting, with its default. See the configuration reference in the docs."""

    #: ``tcp://ADDRESS:PORT`` to also serve remote clients (CurveZMQ, allow-listed keys only); empty: local only.
    tcp_endpoint: str = ""
    #: Where the daemon keeps kernel records and keys (0700).
    state_dir: Path = field(default_factory=user_state_dir)
    #: Extra client public keys (Z85) allowed on the tcp endpoint, besides ``<state_dir>/authorized_keys``.
    allowed_client_keys: tuple[str, ...] = ()
    log_level: str = "info"
    #: How many kernels may run at once (0: no limit).
    max_kernels: int = 0
    #: Kernel type ids (shell-style patterns) the daemon launches; others are refused.
    allowed_types: tuple[str, ...] = ("*",)
    #: Transport of kernels the daemon launches: ``auto`` (``ipc`` for kernels known to handle it,
    #: else ``tcp`` on loopback), ``ipc`` (local clients) or ``tcp`` (remote clients).
    kernel_transport: str = "auto"
    kernel_ip: str = "127.0.0.1"
    #: Shut down kernels idle (not executing) for longer than this many seconds (0: never).
    idle_timeout: float = 0.0
    #: Shut down kernels busy executing for longer than this many seconds (0: never).
    busy_timeout: float = 0.0
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    #: How much of each kernel's output its nanny keeps for replay (``[journal]``).
    journal: JournalLimits = field(default_factory=JournalLimits)
    #: The Jupyter Kernel Gateway API (``[gateway]``): off unless it has a port.
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    #: Pools of ready kernels (``[pool."<kernel type>"]``), and their limits (``[pool]``).
    pools: tuple[PoolSettings, ...] = ()
    pool_limits: PoolLimits = field(default_factory=PoolLimits)
    #: Other daemons whose kernel types are offered as ``<name>/<type>``: name -> client connection file.
    remote_daemons: dict[str, Path] = field(default_factory=dict)
    #: The files this configuration came from (for messages).
    sources: tuple[Path, ...] = ()
    #: The file that set each setting (``"daemon.tcp_endpoint"`` -> file), for :meth:`error`.
    origins: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)

    def error(self, table: str, key: str, reason: str) -> ConfigError:
        """A setting that reads well but fails in use (a port in use), reported as a wrong one is:
        ``FILE: [TABLE] KEY: REASON``, naming the file that set it."""
        return ConfigTable({}, table, self.origins.get(f"{table}.{key}")).error(key, reason)


def _tcp_endpoint(table: ConfigTable, key: str) -> str:
    value = table.string(key, "", empty=True)
    match = _TCP_ENDPOINT.match(value)
    if value and (match is None or (match[2] != "*" and int(match[2]) > 65535)):
        raise table.invalid(key, "'tcp://ADDRESS:PORT' (port 1-65535 or *)")
    return value


def _client_keys(table: ConfigTable, key: str) -> tuple[str, ...]:
    keys = table.string_list(key, ())
    bad = [k for k in keys if not is_z85_key(k)]
    if bad:
        raise table.error(key, f"{bad[0]!r} is not a Z85 CurveZMQ public key (40 characters)")
    return keys


def _log_level(table: ConfigTable, key: str) -> str:
    value = table.string(key, "")
    if value.lower() not in LOG_LEVELS:
        raise table.invalid(key, f"one of {', '.join(LOG_LEVELS)}")
    return value.lower()


def _ip_address(table: ConfigTable, key: str) -> str:
    value = table.string(key, "")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise table.invalid(key, "an IP address to bind kernels to") from None
    return value


#: Where each setting is written: table -> {key: (DaemonConfig field, the reader that checks it)}.
_SETTINGS: dict[str, dict[str, tuple[str, Callable[[ConfigTable, str], Any]]]] = {
    "daemon": {
        "tcp_endpoint": ("tcp_endpoint", _tcp_endpoint),
        "state_dir": ("state_dir", lambda table, key: table.path(key, None)),
        "allowed_client_keys": ("allowed_client_keys", _client_keys),
        "log_level": ("log_level", _log_level),
    },
    "kernels": {
        "max_kernels": ("max_kernels", lambda table, key: table.whole_number(key, None)),
        "allowed_types": ("allowed_types", lambda table, key: table.string_list(key, None)),
        "transport": ("kernel_transport", lambda table, key: table.string(key, None, choices=TRANSPORTS)),
        "ip": ("kernel_ip", _ip_address),
    },
    "culling": {
        "idle_timeout": ("idle_timeout", lambda table, key: table.number(key, None)),
        "busy_timeout": ("busy_timeout", lambda table, key: table.number(key, None)),
    },
}
_SECTIONS = sorted([*_SETTINGS, "providers", "restart", "journal", "remote_daemons", "gateway", "pool"])


def load_config(path: str | os.PathLike[str] | None = None) -> DaemonConfig:
    """The configuration from ``path`` alone, or from the default files, over the defaults.

    ``[providers.<id>]`` tables are the providers' own: each provider checks its table when the
    daemon's :class:`~kernel_nanny.KernelFinder` loads it.
    """
    files = config_files(path)
    found: dict[str, list[ConfigTable]] = {}
    for file in files:
        root = ConfigTable(read_config_file(file), file=file)
        for section in root:
            if section not in _SECTIONS:
                raise root.error(section, f"unknown section (known: {', '.join(_SECTIONS)})")
            found.setdefault(section, []).append(root.table(section))
    tables = {section: ConfigTable.merge(section, found.get(section, [])) for section in _SECTIONS}
    settings: dict[str, Any] = {}
    origins: dict[str, Path] = {}
    for section, readers in _SETTINGS.items():
        table = tables[section]
        table.check_keys(readers)
        for key in table:
            name, read = readers[key]
            settings[name] = read(table, key)
            if (origin := table.file_of(key)) is not None:
                origins[f"{section}.{key}"] = origin
    remotes = tables["remote_daemons"]
    return DaemonConfig(
        **settings,
        restart_policy=RestartPolicy.from_table(tables["restart"]),
        journal=JournalLimits.from_table(tables["journal"]),
        gateway=_gateway(tables["gateway"]),
        pools=_pools(tables["pool"]),
        pool_limits=_pool_limits(tables["pool"]),
        remote_daemons={name: _remote(remotes, name) for name in remotes},
        sources=tuple(files),
        origins=origins,
    )


def _remote(table: ConfigTable, name: str) -> Path:
    if "/" in name:
        raise table.error(name, "a remote daemon's name may not contain '/'")
    entry = table[name]
    if isinstance(entry, Mapping):
        entry = entry.get("connection_file")
    if not isinstance(entry, str) or not entry:
        raise table.invalid(name, f'the path of a client connection file ({name} = "/path/file.json")')
    return Path(entry).expanduser()


#: The keys of ``[pool]`` itself; every other key is a kernel type (they contain a '/') naming a pool.
_POOL_LIMITS = ("max_kernels", "max_memory")
_POOL_SETTINGS = ("size", "cwd", "env", "transport", "encryption", "switches")


def _pool_limits(table: ConfigTable) -> PoolLimits:
    limits = PoolLimits()
    max_memory = limits.max_memory
    if "max_memory" in table:
        try:
            max_memory = parse_size(table["max_memory"])
        except ValueError as exc:
            raise table.error("max_memory", str(exc)) from None
    return PoolLimits(max_kernels=table.whole_number("max_kernels", limits.max_kernels), max_memory=max_memory)


def _pools(table: ConfigTable) -> tuple[PoolSettings, ...]:
    pools = []
    for key in table:
        if key in _POOL_LIMITS:
            continue
        if "/" not in key:
            raise table.error(
                key,
                f"unknown setting (known: {', '.join(_POOL_LIMITS)}; a pool is a table named by a kernel "
                'type, such as [pool."spec/python3"])',
            )
        pool = table.table(key)
        pool.check_keys(_POOL_SETTINGS)
        env = pool.table("env")
        for name in env:
            if not isinstance(env[name], str):
                raise env.invalid(name, "a string")
        cwd = pool.path("cwd", None)
        if cwd is not None and not cwd.is_absolute():
            raise pool.invalid("cwd", "an absolute path")
        pools.append(
            PoolSettings(
                kernel_type=key,
                size=pool.whole_number("size", 1, minimum=1),
                cwd=None if cwd is None else str(cwd),
                env=dict(env),
                transport=pool.string("transport", None, choices=TRANSPORTS),
                encryption=pool.string("encryption", None, choices=ENCRYPTION_POLICIES),
                switches=pool.string_list("switches", ()),
            )
        )
    return tuple(pools)


def _gateway(table: ConfigTable) -> GatewaySettings:
    table.check_keys(("address", "certfile", "keyfile", "insecure", "idle_timeout"))
    host_port: tuple[str, int | None] = (GatewaySettings().host, None)
    address = table.string("address", "", empty=True)
    if address:
        try:
            host_port = parse_address(address)
        except ValueError as exc:
            raise table.error("address", str(exc)) from None
    settings = GatewaySettings(
        host=host_port[0],
        port=host_port[1],
        certfile=table.path("certfile", None),
        keyfile=table.path("keyfile", None),
        insecure=table.boolean("insecure", False),
        idle_timeout=table.number("idle_timeout", GatewaySettings.idle_timeout, above=True),
    )
    problem = settings.problem() if settings.on else None
    if problem:
        raise table.error(None, problem)
    return settings
