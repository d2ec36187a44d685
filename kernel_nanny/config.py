"""Configuration: the files it comes from, and objects that are keyword-only, validated, with defaults in one place.

One set of TOML files configures the daemon and the providers (each in its
``[providers.<id>]`` table): ``--config FILE`` or ``$KERNEL_NANNY_CONFIG``
alone, else the system file then the user's. Nanny processes read the same
files, so a provider is configured the same way wherever it runs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["CONFIG_ENV", "RestartPolicy", "config_files", "provider_settings", "read_config_file"]

SYSTEM_CONFIG = Path("/etc/kernel-nanny/config.toml")
#: Environment variable naming the one configuration file to read (set by ``serve --config`` for its nannies).
CONFIG_ENV = "KERNEL_NANNY_CONFIG"


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "kernel-nanny"


def config_files(path: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files to read: ``path`` alone, else ``$KERNEL_NANNY_CONFIG`` alone, else the default files that exist."""
    if path is not None:
        return [Path(path)]
    if os.environ.get(CONFIG_ENV):
        return [Path(os.environ[CONFIG_ENV])]
    return [p for p in (SYSTEM_CONFIG, user_config_dir() / "config.toml") if p.is_file()]


def read_config_file(file: Path) -> dict[str, Any]:
    """One file's TOML; every failure is a :exc:`ConfigError` naming the file."""
    try:
        with open(file, "rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found") from None
    except PermissionError:
        raise ConfigError(f"{file}: no permission to read the configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None


def provider_settings(files: list[Path]) -> dict[str, dict[str, Any]]:
    """Each provider's ``[providers.<id>]`` table, later files overriding earlier ones key by key."""
    settings: dict[str, dict[str, Any]] = {}
    for file in files:
        providers = read_config_file(file).get("providers", {})
        if not isinstance(providers, dict) or not all(isinstance(t, dict) for t in providers.values()):
            raise ConfigError(f"{file}: [providers] must hold one table per provider ([providers.<id>])")
        for provider_id, table in providers.items():
            settings.setdefault(provider_id, {}).update(table)
    return settings


DEFAULT_MAX_RESTARTS = 5
DEFAULT_RESTART_WINDOW = 60.0
DEFAULT_RESTART_BACKOFF = 0.5
DEFAULT_RESTART_MAX_BACKOFF = 10.0


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
        if isinstance(self.max_restarts, bool) or not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ValueError(f"max_restarts must be a whole number >= 0, got {self.max_restarts!r}")
        for name in ("window", "backoff", "max_backoff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before automatic restart number ``attempt`` (1-based) in the window."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 2)))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (what ``from_dict`` takes)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestartPolicy:
        """Settings from a dict; unknown keys are an error."""
        unknown = set(data) - {"max_restarts", "window", "backoff", "max_backoff"}
        if unknown:
            raise ValueError(f"unknown restart policy setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)
