"""Per-launch options (light: the nanny reads them before its kernel runs).

:class:`LaunchParams` is validated once, where input enters (see
:class:`~kernel_nanny.launch.request.LaunchRequest`), and then passed down
unchanged: providers receive the object itself. It is also a read-only
mapping of its fields, so providers written against the older
``launch_params`` dict (``params.get("transport")``) keep working.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .._exceptions import LaunchError
from ..defaults import DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STARTUP_TIMEOUT

# The timeout defaults stay importable from here (and from kernel_nanny.launch), where users found them.
__all__ = ["DEFAULT_SHUTDOWN_TIMEOUT", "DEFAULT_STARTUP_TIMEOUT", "ENCRYPTION_POLICIES", "TRANSPORTS", "LaunchParams"]

#: ``auto``: ``ipc`` for kernels known to handle it, else ``tcp``; ``ipc``: unix sockets in the
#: private runtime directory; ``tcp``: sockets bound to ``ip``.
TRANSPORTS = ("auto", "ipc", "tcp")
#: ``disabled``: plain tcp; ``auto``: CurveZMQ when the kernel declares support; ``required``: fail without it.
ENCRYPTION_POLICIES = ("auto", "required", "disabled")


@dataclass(frozen=True, kw_only=True)
class LaunchParams(Mapping[str, Any]):
    """Per-launch options (``launch_params`` in the provider API), all optional.

    ``transport`` is ``auto`` (default: ``ipc`` for ipykernel and kernelspecs whose
    ``metadata.supported_transports`` lists ``ipc``, ``tcp`` for the rest, since
    some kernels cannot take long unix-socket paths), ``ipc`` (unix sockets,
    nothing on the network) or ``tcp`` (bound to ``ip``, loopback by default); ``encryption`` applies to
    tcp: ``auto`` uses CurveZMQ when the kernel declares support, ``required``
    refuses to start without it, ``disabled`` sends plain tcp. ``env`` adds to
    the kernel's environment. ``echo_output`` passes the kernel process's own
    stdout/stderr (not the code's output) through to ours. ``connection_file``
    says where to write the kernel's connection file (default: ``kernel-<id>.json``
    in the runtime directory).

    Every value is checked when the object is made: a wrong one raises
    :exc:`~kernel_nanny.LaunchError` naming the parameter.
    """

    transport: str = "auto"
    ip: str = "127.0.0.1"
    encryption: str = "auto"
    env: Mapping[str, str] | None = None
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    echo_output: bool = True
    connection_file: str | None = None

    def __post_init__(self) -> None:
        _choice("transport", self.transport, TRANSPORTS)
        _choice("encryption", self.encryption, ENCRYPTION_POLICIES)
        if not isinstance(self.ip, str) or not self.ip:
            raise LaunchError(f"launch parameter 'ip' must be an address, got {self.ip!r}")
        if self.env is not None:
            if not isinstance(self.env, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
            ):
                raise LaunchError(f"launch parameter 'env' must map names to strings, got {self.env!r}")
            object.__setattr__(self, "env", dict(self.env))
        for name in ("startup_timeout", "shutdown_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise LaunchError(f"launch parameter {name!r} must be a number of seconds > 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.echo_output, bool):
            raise LaunchError(f"launch parameter 'echo_output' must be true or false, got {self.echo_output!r}")
        if self.connection_file is not None:
            path = Path(self.connection_file) if isinstance(self.connection_file, str) else None
            if path is None or not path.is_absolute():
                raise LaunchError(
                    f"launch parameter 'connection_file' must be an absolute path, got {self.connection_file!r}"
                )
            if not path.parent.is_dir():
                raise LaunchError(f"launch parameter 'connection_file': its directory {path.parent} does not exist")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> LaunchParams:
        """Validate a ``launch_params`` dict: unknown keys are an error that lists the known ones."""
        if isinstance(params, LaunchParams):
            return params
        if params is not None and not isinstance(params, Mapping):
            raise LaunchError(f"launch parameters must be a mapping of names to values, got {params!r}")
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise LaunchError(f"unknown launch parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict (what :meth:`from_mapping` takes)."""
        return asdict(self)

    # -- the read-only mapping view -------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELD_NAMES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELD_NAMES)

    def __len__(self) -> int:
        return len(_FIELD_NAMES)


_FIELD_NAMES = tuple(f.name for f in fields(LaunchParams))


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LaunchError(f"launch parameter {name!r} must be one of {', '.join(allowed)}, got {value!r}")
