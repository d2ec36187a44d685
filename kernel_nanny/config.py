"""Configuration objects: keyword-only, validated, comparable, with defaults in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RestartPolicy"]

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
