"""Where and how the gateway listens: ``[gateway]`` / ``serve --gateway [HOST:]PORT``, checked before anything binds."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..defaults import GATEWAY_HOST, GATEWAY_IDLE_TIMEOUT

__all__ = ["GatewaySettings", "parse_address"]


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """The gateway's listening address and TLS files; ``port`` None: the gateway is off.

    Every request needs the daemon's gateway token whatever the address
    (``kernel-nanny keys --gateway-token``). A non-loopback address also needs
    TLS (``certfile`` and ``keyfile``), since the token and all kernel traffic
    would cross the network in clear text, unless ``insecure`` says that
    something in front (a TLS-terminating proxy) takes care of it.
    """

    host: str = GATEWAY_HOST
    port: int | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure: bool = False
    #: Seconds an HTTP connection may stay open without sending a request (an open WebSocket is not idle).
    idle_timeout: float = GATEWAY_IDLE_TIMEOUT

    @property
    def on(self) -> bool:
        return self.port is not None

    @property
    def tls(self) -> bool:
        return self.certfile is not None

    @property
    def url(self) -> str:
        """The base URL clients use (``http(s)://HOST:PORT``); port 0 is the one the server was given."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def problem(self) -> str | None:
        """Why these settings must not be served (a sentence naming the fix), or None."""
        if (self.certfile is None) != (self.keyfile is None):
            return "TLS needs both certfile and keyfile"
        for name, path in (("certfile", self.certfile), ("keyfile", self.keyfile)):
            if path is not None and not path.is_file():
                return f"{name} {path} is not a readable file"
        if not self.tls and not self.insecure and not _is_loopback(self.host):
            return (
                f"serving the gateway on {self.host} without TLS would send its token and every kernel's code and "
                "output in clear text: give certfile and keyfile, or say insecure = true (--gateway-insecure) "
                "if a TLS-terminating proxy is in front"
            )
        return None


def parse_address(value: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:8888`` for IPv6) as ``(host, port)``; the host defaults to loopback.

    Raises ValueError with what is expected.
    """
    host, sep, port = value.rpartition(":")
    if not sep:
        host = GATEWAY_HOST
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ValueError(f"expected [HOST:]PORT with a port from 0 to 65535 (0: any free port), got {value!r}")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
