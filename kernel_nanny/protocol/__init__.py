"""The Jupyter wire protocol: framing, signing, verifying, parsing, connection info. No sockets here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # the static view of the lazy names below (imported on first use: PEP 562)
    from .connection import (
        CHANNELS,
        ConnectionInfo,
        channel_url,
        endpoint_port,
        endpoint_url,
        ipc_socket_paths,
        is_ipv6_endpoint,
        load_connection_info,
        normalize_connection_info,
    )
    from .daemon import DAEMON_PROTOCOL_VERSION, DAEMON_REQUESTS
    from .manager import ExitStatus, KernelManager, LaunchResult
    from .message import PROTOCOL_VERSION, Message, new_id, parse_date
    from .nanny import NANNY_EVENTS, NANNY_PROTOCOL_VERSION, NANNY_REQUESTS, parse_signal
    from .replay import DEFAULT_REPLAY_WINDOW, ReplayGuard
    from .session import DELIMITER, Session, dumps, loads, split_identities
    from .signing import DEFAULT_SIGNATURE_SCHEME, Signer

__all__ = [
    "CHANNELS",
    "ConnectionInfo",
    "DAEMON_PROTOCOL_VERSION",
    "DAEMON_REQUESTS",
    "DEFAULT_REPLAY_WINDOW",
    "DEFAULT_SIGNATURE_SCHEME",
    "DELIMITER",
    "ExitStatus",
    "KernelManager",
    "LaunchResult",
    "PROTOCOL_VERSION",
    "Message",
    "NANNY_EVENTS",
    "NANNY_PROTOCOL_VERSION",
    "NANNY_REQUESTS",
    "ReplayGuard",
    "Session",
    "Signer",
    "channel_url",
    "dumps",
    "endpoint_port",
    "endpoint_url",
    "ipc_socket_paths",
    "is_ipv6_endpoint",
    "load_connection_info",
    "loads",
    "new_id",
    "normalize_connection_info",
    "parse_date",
    "parse_signal",
    "split_identities",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CHANNELS": ".connection",
        "ConnectionInfo": ".connection",
        "DAEMON_PROTOCOL_VERSION": ".daemon",
        "DAEMON_REQUESTS": ".daemon",
        "DEFAULT_REPLAY_WINDOW": ".replay",
        "DEFAULT_SIGNATURE_SCHEME": ".signing",
        "DELIMITER": ".session",
        "ExitStatus": ".manager",
        "KernelManager": ".manager",
        "LaunchResult": ".manager",
        "PROTOCOL_VERSION": ".message",
        "Message": ".message",
        "NANNY_EVENTS": ".nanny",
        "NANNY_PROTOCOL_VERSION": ".nanny",
        "NANNY_REQUESTS": ".nanny",
        "ReplayGuard": ".replay",
        "Session": ".session",
        "Signer": ".signing",
        "channel_url": ".connection",
        "dumps": ".session",
        "endpoint_port": ".connection",
        "endpoint_url": ".connection",
        "ipc_socket_paths": ".connection",
        "is_ipv6_endpoint": ".connection",
        "load_connection_info": ".connection",
        "loads": ".session",
        "new_id": ".message",
        "normalize_connection_info": ".connection",
        "parse_date": ".message",
        "parse_signal": ".nanny",
        "split_identities": ".session",
    },
)
