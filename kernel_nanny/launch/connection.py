"""Fresh connection info for a local kernel, and its connection file.

Local kernels known to handle it (:func:`choose_transport`) default to the
``ipc`` transport: unix sockets in the 0700 runtime directory, so nothing
reaches a network interface. Other kernels, or ``tcp`` on request, bind the
loopback address and, where the kernel declares support
(``metadata.supported_encryption`` contains ``curve``), encrypts every channel
with CurveZMQ.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from .._exceptions import LaunchError
from ..paths import public_connection_file, runtime_dir, write_private_file
from ..protocol import CHANNELS, DEFAULT_SIGNATURE_SCHEME, ConnectionInfo

__all__ = ["ENCRYPTION_POLICIES", "choose_transport", "new_connection_info", "supports_curve", "write_connection_file"]

#: ``disabled``: plain tcp; ``auto``: CurveZMQ when the kernel declares support; ``required``: fail without it.
ENCRYPTION_POLICIES = ("auto", "required", "disabled")
#: Unix socket paths are limited to 107 bytes; longer runtime dirs fall back to a private temp dir.
_MAX_IPC_PATH = 100


def supports_curve(metadata: Mapping[str, Any]) -> bool:
    """Whether kernelspec metadata declares CurveZMQ support (``supported_encryption``)."""
    declared = metadata.get("supported_encryption")
    if isinstance(declared, str):
        declared = [declared]
    return isinstance(declared, (list, tuple)) and "curve" in {str(d).strip().lower() for d in declared}


def choose_transport(requested: str, metadata: Mapping[str, Any], argv: Sequence[str]) -> str:
    """The transport a local kernel gets: ``requested``, or for ``auto`` the one it is known to handle.

    Some kernels cannot take our unix-socket paths (xeus-python refuses paths of
    24 characters or more), so ``auto`` picks ``ipc`` only for ipykernel (seen in
    ``argv``) or a kernelspec declaring ``metadata.supported_transports``
    containing ``ipc``; every other kernel gets ``tcp`` on loopback.
    """
    if requested != "auto":
        return requested
    declared = metadata.get("supported_transports")
    if isinstance(declared, str):
        declared = [declared]
    if isinstance(declared, (list, tuple)) and "ipc" in {str(d).strip().lower() for d in declared}:
        return "ipc"
    return "ipc" if any(Path(arg).name.startswith("ipykernel") for arg in argv) else "tcp"


def new_connection_info(
    kernel_id: str,
    *,
    transport: str = "ipc",
    ip: str = "127.0.0.1",
    encryption: str = "auto",
    kernel_supports_curve: bool = False,
    kernel_name: str = "",
) -> ConnectionInfo:
    """Connection info with a new random key and channels nobody else uses."""
    if encryption not in ENCRYPTION_POLICIES:
        raise LaunchError(f"encryption must be one of {', '.join(ENCRYPTION_POLICIES)}, got {encryption!r}")
    info: ConnectionInfo = {
        "transport": transport,
        "signature_scheme": DEFAULT_SIGNATURE_SCHEME,
        "key": secrets.token_hex(32),
        "kernel_name": kernel_name,
    }
    if transport == "ipc":
        info["ip"] = _ipc_prefix(kernel_id)
        info.update({f"{channel}_port": n for n, channel in enumerate(CHANNELS, start=1)})
    elif transport == "tcp":
        info["ip"] = ip
        info.update(zip((f"{c}_port" for c in CHANNELS), _free_tcp_ports(ip, len(CHANNELS)), strict=True))
        import zmq  # here, not at the top: a nanny starts its kernel before it imports zmq (unless curve is used)

        use_curve = encryption != "disabled" and kernel_supports_curve and zmq.has("curve")
        if encryption == "required" and not use_curve:
            why = "libzmq lacks CurveZMQ" if not zmq.has("curve") else "the kernel does not declare curve support"
            raise LaunchError(f"encryption='required' but {why}")
        if use_curve:
            public, secret = zmq.curve_keypair()
            info["curve_publickey"], info["curve_secretkey"] = public.decode(), secret.decode()
    else:
        raise LaunchError(f"transport must be 'ipc' or 'tcp', got {transport!r}")
    return info


def write_connection_file(info: ConnectionInfo, kernel_id: str, path: Path | None = None) -> Path:
    """Write ``info`` (0600, atomically) to ``path``, by default ``kernel-<id>.json`` in the runtime dir."""
    path = path or public_connection_file(kernel_id)
    write_private_file(path, orjson.dumps(info, option=orjson.OPT_INDENT_2))
    return path


def _ipc_prefix(kernel_id: str) -> str:
    prefix = runtime_dir() / f"kn-{kernel_id[:12]}"
    if len(str(prefix)) + 3 > _MAX_IPC_PATH:
        prefix = Path(tempfile.mkdtemp(prefix="kn-")) / kernel_id[:12]
    return str(prefix)


def _free_tcp_ports(ip: str, count: int) -> list[int]:
    """Ports the OS just handed out. Another process may still take one before
    the kernel binds it; the launcher detects that and relaunches on fresh ports."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    held = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((ip, 0))
        return [sock.getsockname()[1] for sock in held]
    except OSError as exc:
        raise LaunchError(f"cannot allocate ports on {ip}: {exc.strerror}") from exc
    finally:
        for sock in held:
            sock.close()
