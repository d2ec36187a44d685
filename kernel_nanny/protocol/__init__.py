"""The Jupyter wire protocol: framing, signing, verifying, parsing, connection info. No sockets here."""

from .connection import (
    CHANNELS,
    ConnectionInfo,
    channel_url,
    ipc_socket_paths,
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
    "ipc_socket_paths",
    "load_connection_info",
    "loads",
    "new_id",
    "normalize_connection_info",
    "parse_date",
    "parse_signal",
    "split_identities",
]
