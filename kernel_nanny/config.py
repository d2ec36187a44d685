"""Configuration: the files it comes from, and objects that are keyword-only, validated, with defaults in one place.

One set of TOML files configures the daemon and the providers (each in its
``[providers.<id>]`` table): ``--config FILE`` or ``$KERNEL_NANNY_CONFIG``
alone, else the system file then the user's. Nanny processes read the same
files, so a provider is configured the same way wherever it runs.

Every TOML value is read through a :class:`ConfigTable`, whose typed readers
(``string``, ``number``, ``whole_number``, ``path``, ``string_list``...) check
it and report a wrong one in one style, naming the file, the table, the key
and the reason::

    /etc/kernel-nanny/config.toml: [providers.ssh.hosts.gpu] port: must be a whole number from 1 to 65535, got 99999
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from ._backoff import backoff_delay
from ._exceptions import ConfigError
from .defaults import (
    DEFAULT_JOURNAL_DISK_BYTES,
    DEFAULT_JOURNAL_MEMORY_BYTES,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_RESTART_BACKOFF,
    DEFAULT_RESTART_MAX_BACKOFF,
    DEFAULT_RESTART_WINDOW,
    JOURNAL_MIN_BYTES,
)
from .paths import user_config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "CONFIG_ENV",
    "ConfigTable",
    "JournalLimits",
    "RestartPolicy",
    "config_files",
    "parse_size",
    "provider_settings",
    "read_config_file",
]

SYSTEM_CONFIG = Path("/etc/kernel-nanny/config.toml")
#: Environment variable naming the one configuration file to read (set by ``serve --config`` for its nannies).
CONFIG_ENV = "KERNEL_NANNY_CONFIG"

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Number:
    """What a number setting must be, written once for the check and for the message."""

    what: str
    whole: bool = False
    minimum: float = 0
    maximum: float | None = None
    #: Strictly above ``minimum`` (``> 0`` rather than ``>= 0``).
    above: bool = False

    def __str__(self) -> str:
        if self.maximum is not None:
            return f"{self.what} from {self.minimum:g} to {self.maximum:g}"
        return f"{self.what} {'>' if self.above else '>='} {self.minimum:g}"

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` fits (never a bool, nan or infinity)."""
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        if not math.isfinite(value) or value < self.minimum or (self.above and value == self.minimum):
            return False
        return self.maximum is None or value <= self.maximum


_WHOLE_NUMBER = _Number("a whole number", whole=True)
_SECONDS = _Number("a number of seconds")


class ConfigTable(Mapping[str, Any]):
    """A TOML table being read, with where it came from, so that each wrong value is reported
    as ``FILE: [TABLE] KEY: REASON``.

    ``name`` is the table's dotted name (``providers.ssh.hosts.gpu``; empty
    for a file's top level). A table merged from several files
    (:meth:`merge`) remembers which file set each key. Readers return
    ``default`` for a missing key and raise :exc:`~kernel_nanny.ConfigError`
    for a wrong one.
    """

    def __init__(
        self,
        values: Mapping[str, Any],
        name: str = "",
        file: Path | None = None,
        *,
        key_files: Mapping[str, Path] | None = None,
    ) -> None:
        self._values = dict(values)
        self.name = name
        self.file = file
        self._key_files = dict(key_files or {})

    @classmethod
    def of(cls, values: Mapping[str, Any], name: str) -> ConfigTable:
        """``values`` as a table named ``name``, unless it already is a table (which knows its file)."""
        return values if isinstance(values, ConfigTable) else cls(values, name)

    @classmethod
    def merge(cls, name: str, tables: Sequence[ConfigTable]) -> ConfigTable:
        """Tables of one name from several files, later files overriding earlier ones key by key."""
        values: dict[str, Any] = {}
        key_files: dict[str, Path] = {}
        for table in tables:
            values.update(table)
            key_files.update({key: file for key in table if (file := table.file_of(key)) is not None})
        return cls(values, name, tables[-1].file if tables else None, key_files=key_files)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<ConfigTable [{self.name}] file={self.file} keys={','.join(self._values)}>"

    def file_of(self, key: str | None) -> Path | None:
        """The file that set ``key`` (the table's own file for ``None``)."""
        return self._key_files.get(key, self.file) if key is not None else self.file

    # -- errors -----------------------------------------------------------

    def error(self, key: str | None, reason: str) -> ConfigError:
        """``FILE: [TABLE] KEY: REASON`` (a top-level key reads ``FILE: [KEY]: REASON``)."""
        if not self.name:
            where = f"[{key}]" if key is not None else ""
        else:
            where = f"[{self.name}]" if key is None else f"[{self.name}] {key}"
        return ConfigError(": ".join(str(part) for part in (self.file_of(key), where, reason) if part))

    def invalid(self, key: str, expected: str) -> ConfigError:
        """``...KEY: must be EXPECTED, got VALUE``."""
        return self.error(key, f"must be {expected}, got {self[key]!r}")

    def check_keys(self, known: Iterable[str]) -> None:
        """Refuse a key not in ``known`` (a typo must not be silently ignored)."""
        known = sorted(known)
        for key in self:
            if key not in known:
                raise self.error(key, f"unknown setting (known: {', '.join(known)})")

    # -- readers ----------------------------------------------------------

    def table(self, key: str) -> ConfigTable:
        """The sub-table ``key`` (empty if missing)."""
        value = self.get(key, {})
        if not isinstance(value, Mapping):
            raise self.invalid(key, "a table")
        return ConfigTable(value, f"{self.name}.{key}" if self.name else key, self.file_of(key))

    def string(self, key: str, default: _T, *, choices: Sequence[str] = (), empty: bool = False) -> str | _T:
        """A string, not empty unless ``empty``; one of ``choices`` if given."""
        if key not in self:
            return default
        value = self[key]
        if choices and value not in choices:
            raise self.invalid(key, f"one of {', '.join(choices)}")
        if not isinstance(value, str) or not (value or empty):
            raise self.invalid(key, "a string" if empty else "a non-empty string")
        return value

    def path(self, key: str, default: _T) -> Path | _T:
        """A file or directory path (``~`` expanded)."""
        if key not in self:
            return default
        value = self[key]
        if not isinstance(value, str) or not value:
            raise self.invalid(key, "a path")
        return Path(value).expanduser()

    def boolean(self, key: str, default: _T) -> bool | _T:
        """``true`` or ``false``."""
        if key not in self:
            return default
        if not isinstance(self[key], bool):
            raise self.invalid(key, "true or false")
        return bool(self[key])

    def string_list(self, key: str, default: _T) -> tuple[str, ...] | _T:
        """A list of non-empty strings."""
        if key not in self:
            return default
        value = self[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.invalid(key, "a list of non-empty strings")
        return tuple(value)

    def number(self, key: str, default: _T, *, what: str = "a number of seconds", above: bool = False) -> float | _T:
        """A finite number, ``>= 0`` (``> 0`` if ``above``); ``what`` names it in messages."""
        if key not in self:
            return default
        return float(self._checked(key, _Number(what, above=above)))

    def whole_number(self, key: str, default: _T, *, minimum: int = 0, maximum: int | None = None) -> int | _T:
        """A whole number from ``minimum`` (to ``maximum``); a port is ``minimum=1, maximum=65535``."""
        if key not in self:
            return default
        return int(self._checked(key, _Number("a whole number", whole=True, minimum=minimum, maximum=maximum)))

    def _checked(self, key: str, kind: _Number) -> Any:
        if not kind.accepts(self[key]):
            raise self.invalid(key, str(kind))
        return self[key]


def config_files(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files to read: ``path`` alone, else ``$KERNEL_NANNY_CONFIG`` alone, else the default files that exist
    (a directory in a default file's place is read, and so reported, not skipped)."""
    if path is not None:
        return [Path(path)]
    if os.environ.get(CONFIG_ENV):
        return [Path(os.environ[CONFIG_ENV])]
    return [p for p in (SYSTEM_CONFIG, user_config_dir() / "config.toml") if p.exists()]


def read_config_file(file: Path) -> dict[str, Any]:
    """One file's TOML; every failure is a :exc:`ConfigError` naming the file."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found") from None
    except PermissionError:
        raise ConfigError(f"{file}: no permission to read the configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the configuration file: {exc.strerror}") from None
    try:
        data: dict[str, Any] = tomllib.loads(raw.decode())
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (a latin-1 comment is the usual culprit)
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{file}: not valid TOML: not UTF-8 text (line {line})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return data


def provider_settings(files: list[Path]) -> dict[str, ConfigTable]:
    """Each provider's ``[providers.<id>]`` table, later files overriding earlier ones key by key."""
    found: dict[str, list[ConfigTable]] = {}
    for file in files:
        providers = ConfigTable(read_config_file(file), file=file).table("providers")
        for provider_id in providers:
            found.setdefault(provider_id, []).append(providers.table(provider_id))
    return {provider_id: ConfigTable.merge(f"providers.{provider_id}", tables) for provider_id, tables in found.items()}


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """How a nanny restarts a kernel that died without being asked to.

    At most ``max_restarts`` automatic restarts within any ``window`` seconds;
    past that the nanny publishes ``restart_failed`` and stops trying. The first
    restart is immediate (a crash should cost no more than a cold start); each
    further one in the window waits ``backoff`` seconds, doubling up to
    ``max_backoff``. ``max_restarts=0`` disables automatic restarts.
    """

    max_restarts: int = DEFAULT_MAX_RESTARTS
    window: float = DEFAULT_RESTART_WINDOW
    backoff: float = DEFAULT_RESTART_BACKOFF
    max_backoff: float = DEFAULT_RESTART_MAX_BACKOFF

    def __post_init__(self) -> None:
        for name, kind in _RESTART_SETTINGS.items():
            value = getattr(self, name)
            if not kind.accepts(value):
                raise ValueError(f"{name} must be {kind}, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before automatic restart number ``attempt`` (1-based) in the window."""
        if attempt <= 1:
            return 0.0
        return backoff_delay(attempt - 1, self.backoff, self.max_backoff)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (what ``from_dict`` takes)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestartPolicy:
        """Settings from a dict; unknown keys are an error."""
        unknown = set(data) - set(_RESTART_SETTINGS)
        if unknown:
            raise ValueError(f"unknown restart policy setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def from_table(cls, table: ConfigTable) -> RestartPolicy:
        """Settings from a ``[restart]`` table; a wrong one is a ConfigError naming the file, table and key."""
        table.check_keys(_RESTART_SETTINGS)
        return cls(**{key: table._checked(key, kind) for key, kind in _RESTART_SETTINGS.items() if key in table})


#: What each restart setting must be, for Python callers and ``[restart]`` tables alike.
_RESTART_SETTINGS = {"max_restarts": _WHOLE_NUMBER, "window": _SECONDS, "backoff": _SECONDS, "max_backoff": _SECONDS}


@dataclass(frozen=True, kw_only=True)
class JournalLimits:
    """How much of a kernel's output its nanny's journal keeps (bytes), oldest dropped first.

    ``memory`` caps the ring that answers replays from RAM; ``disk`` caps the
    segment files in the nanny's private state directory (``0``: memory only).
    Both ``0`` turn the journal off (:attr:`off`): the nanny records nothing,
    and clients read the kernel's own iopub socket. Otherwise each is a whole
    number of bytes, at least ``JOURNAL_MIN_BYTES`` (64 KiB);
    :meth:`from_dict` and ``[journal]`` tables also take sizes with a unit
    (``"8MiB"``, ``"512K"``: see :func:`parse_size`).
    """

    memory: int = DEFAULT_JOURNAL_MEMORY_BYTES
    disk: int = DEFAULT_JOURNAL_DISK_BYTES

    def __post_init__(self) -> None:
        if self.off:
            return
        for name in _JOURNAL_SETTINGS:
            problem = _cap_problem(name, getattr(self, name))
            if problem:
                raise ValueError(f"journal {name}: {problem}")

    @property
    def off(self) -> bool:
        """Whether the journal is off (both caps 0)."""
        return self.memory == 0 and self.disk == 0

    def to_dict(self) -> dict[str, Any]:
        """The caps as a JSON-ready dict of bytes (what :meth:`from_dict` takes)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JournalLimits:
        """Caps from a dict of bytes or sizes with a unit; unknown keys are an error."""
        unknown = set(data) - set(_JOURNAL_SETTINGS)
        if unknown:
            raise ValueError(f"unknown journal setting(s): {', '.join(sorted(unknown))}")
        sizes = {}
        for key, value in data.items():
            try:
                sizes[key] = parse_size(value)
            except ValueError as exc:
                raise ValueError(f"journal {key}: {exc}") from None
        return cls(**sizes)

    @classmethod
    def from_table(cls, table: ConfigTable) -> JournalLimits:
        """Caps from a ``[journal]`` table; a wrong one is a ConfigError naming the file, table and key."""
        table.check_keys(_JOURNAL_SETTINGS)
        sizes = {}
        for key in _JOURNAL_SETTINGS:
            if key in table:
                try:
                    sizes[key] = parse_size(table[key])
                except ValueError as exc:
                    raise table.error(key, str(exc)) from None
        try:
            return cls(**sizes)  # checks the pair: both 0 is the off switch, one 0 alone may not be
        except ValueError:
            for key, value in sizes.items():
                if problem := _cap_problem(key, value):
                    raise table.error(key, problem) from None
            raise


_JOURNAL_SETTINGS = ("disk", "memory")


def _cap_problem(name: str, value: object) -> str | None:
    """What is wrong with ``value`` as the journal's ``name`` cap (None: nothing)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= JOURNAL_MIN_BYTES or (name == "disk" and value == 0):
            return None
    minimum = f"a size from {JOURNAL_MIN_BYTES // 1024}KiB"
    zero = "0 (memory only) or " if name == "disk" else "0 (with disk 0: no journal) or "
    return f"must be {zero}{minimum}, got {value!r}"


#: Units of :func:`parse_size`, powers of 1024 as systemd reads them (``K``, ``KiB`` and ``KB`` alike).
_SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+)\s*(?:([KMGT])(?:I?B)?|(B))?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Bytes from a whole number or a size with a unit: ``"8MiB"``, ``"512K"``, ``"1 GB"`` (powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"must be a size in bytes, as a whole number or with a unit ('8MiB', '512K'), got {value!r}")
    number, unit = match[1], (match[2] or match[3] or "").upper()
    return int(number) * _SIZE_UNITS[unit]
