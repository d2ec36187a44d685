"""Connection info: where a kernel's five channels listen and how to sign for them.

This is the JSON a kernel receives with ``-f connection_file``. Parsing and URL
building live here so that the launcher (which writes it) and the clients (which
read it) agree on one definition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._exceptions import ConnectionInfoError

__all__ = [
    "CHANNELS",
    "ConnectionInfo",
    "channel_url",
    "endpoint_port",
    "endpoint_url",
    "ipc_socket_paths",
    "is_ipv6_endpoint",
    "load_connection_info",
    "normalize_connection_info",
]

#: The kernel's five channels, in the order ports are allocated.
CHANNELS = ("shell", "iopub", "stdin", "control", "hb")

ConnectionInfo = dict[str, Any]


def normalize_connection_info(info: Mapping[str, Any]) -> ConnectionInfo:
    """Check ``info`` has what a client needs and return a plain dict copy.

    Raises :class:`~kernel_nanny.ConnectionInfoError` naming the missing or wrong field.
    """
    data = dict(info)
    data.setdefault("transport", "tcp")
    data.setdefault("ip", "127.0.0.1")
    data.setdefault("signature_scheme", "hmac-sha256")
    data.setdefault("key", "")
    if data["transport"] not in ("tcp", "ipc"):
        raise ConnectionInfoError(f"connection info: unknown transport {data['transport']!r} (tcp or ipc)")
    for channel in CHANNELS:
        port = data.get(f"{channel}_port")
        if not isinstance(port, int) or port <= 0:
            raise ConnectionInfoError(f"connection info: {channel}_port must be a positive integer, got {port!r}")
    if isinstance(data["key"], bytes):
        data["key"] = data["key"].decode()
    return data


def channel_url(info: Mapping[str, Any], channel: str) -> str:
    """The ZeroMQ endpoint of ``channel`` (``shell``, ``iopub``, ``stdin``, ``control``, ``hb``)."""
    return endpoint_url(info.get("transport", "tcp"), info.get("ip", "127.0.0.1"), info[f"{channel}_port"])


def endpoint_url(transport: str, ip: str, port: int | str) -> str:
    """``ipc://IP-PORT`` (``ip`` is then a path prefix) or ``tcp://IP:PORT``, an IPv6 address in brackets.

    ``port`` may be ``*`` for a server to bind any free port. Clients connect
    and servers bind through this one spelling, so the two always agree.
    """
    if transport == "ipc":
        return f"ipc://{ip}-{port}"
    host = f"[{ip}]" if ":" in ip else ip
    return f"tcp://{host}:{port}"


def endpoint_port(url: str) -> int:
    """The port of an :func:`endpoint_url` (as bound: a ``*`` already replaced by the real port)."""
    return int(url.rsplit("-" if url.startswith("ipc://") else ":", 1)[1])


def is_ipv6_endpoint(url: str) -> bool:
    """Whether ``url`` is tcp to an IPv6 address: zmq needs the ``ipv6`` socket option for it, on both ends."""
    return url.startswith("tcp://[")


def ipc_socket_paths(info: Mapping[str, Any]) -> list[Path]:
    """The socket files behind an ipc connection (every ``*_port``: the kernel's and a nanny's).

    Empty for tcp. Whoever removes an ipc kernel's files uses this, so the naming
    lives in one place with :func:`channel_url`.
    """
    if info.get("transport") != "ipc" or not isinstance(info.get("ip"), str):
        return []
    ports = [value for key, value in info.items() if key.endswith("_port") and isinstance(value, int)]
    return [Path(f"{info['ip']}-{port}") for port in ports]


def load_connection_info(path: str | os.PathLike[str]) -> ConnectionInfo:
    """Read and check a connection file, with an error that names the file."""
    try:
        with open(path, "rb") as file:
            raw = json.load(file)
    except FileNotFoundError as exc:
        raise ConnectionInfoError(f"connection file not found: {path}") from exc
    except PermissionError as exc:
        raise ConnectionInfoError(f"no permission to read connection file {path}") from exc
    except OSError as exc:
        raise ConnectionInfoError(f"cannot read connection file {path}: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConnectionInfoError(f"connection file {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConnectionInfoError(f"connection file {path} must hold a JSON object")
    try:
        return normalize_connection_info(raw)
    except ConnectionInfoError as exc:
        raise ConnectionInfoError(f"{path}: {exc}") from None
