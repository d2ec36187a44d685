"""The daemon's secrets and who may connect: its API key, CurveZMQ keys, the allow-list.

All live in the state directory (0700), each file 0600, created on first use
and kept across restarts (so remote clients' files stay valid):

* ``api.key``: the HMAC key that signs every API message;
* ``server.key``: the daemon's CurveZMQ key pair for its tcp endpoint;
* ``gateway.token``: the token of the gateway API (``[gateway]``), for jupyter_server's
  ``GatewayClient.auth_token``;
* ``authorized_keys``: client public keys (Z85), one per line with an optional
  label after a space (UTF-8); other lines (comments) are ignored. It is checked
  on every connection attempt and every request on the tcp endpoint, so a key
  added takes effect without a restart, and a key removed cuts its client off
  (connections already open included: CurveZMQ vets a key only in the
  handshake, so the daemon checks the sender of each request too).

A line that cannot be read (not UTF-8, a malformed key) is skipped with a
warning, and a file that cannot be read at all (a directory, no permission)
allows no key, with a warning, until it is fixed: the daemon keeps serving
either way, and reads the file again as soon as it changes.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import zmq

from .._exceptions import ConfigError
from ..paths import open_private_file, secure_directory, write_private_file

__all__ = ["DaemonKeys", "check_client_name", "is_z85_key"]

log = logging.getLogger("kernel_nanny.daemon")

Z85_KEY_LENGTH = 40
_Z85_CHARACTERS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
#: The longest client name: a label for people to recognise a key by.
MAX_CLIENT_NAME_LENGTH = 100
#: The label of keys allowed by the configuration's ``allowed_client_keys``.
CONFIGURED_KEY_LABEL = "(allowed_client_keys)"


class DaemonKeys:
    def __init__(self, state_dir: Path, extra_allowed: tuple[str, ...] = ()) -> None:
        self.state_dir = secure_directory(state_dir)
        self.extra_allowed = extra_allowed
        self.authorized_keys_file = state_dir / "authorized_keys"
        #: The daemon's CurveZMQ key pair, made on first use.
        self.server_key_file = state_dir / "server.key"
        self._file_keys: dict[str, str] = {}
        self._file_signature: object = None  # what _signature() said when _file_keys was read

    def api_key(self) -> str:
        path = self.state_dir / "api.key"
        if not path.exists():
            write_private_file(path, secrets.token_hex(32).encode())
        return path.read_text().strip()

    def gateway_token(self) -> str:
        """The token every request to the gateway API must carry (``gateway.token``)."""
        path = self.state_dir / "gateway.token"
        if not path.exists():
            write_private_file(path, secrets.token_urlsafe(32).encode())
        return path.read_text().strip()

    def server_keypair(self) -> tuple[bytes, bytes]:
        path = self.server_key_file
        if not path.exists():
            public, secret = zmq.curve_keypair()
            write_private_file(path, json.dumps({"public": public.decode(), "secret": secret.decode()}).encode())
        data = json.loads(path.read_text())
        return data["public"].encode(), data["secret"].encode()

    def allowed_keys(self) -> dict[str, str]:
        """The allowed client keys (Z85) and their labels, from ``authorized_keys`` and the configuration.

        The file is parsed again only when its ``stat`` changes: one system
        call per check, cheap enough for every handshake and every request,
        so a change takes effect at once without a thread watching the file.
        """
        signature = _signature(self.authorized_keys_file)
        if signature != self._file_signature:
            self._file_keys = self._read_authorized_keys()
            self._file_signature = signature
        return {**self._file_keys, **dict.fromkeys(self.extra_allowed, CONFIGURED_KEY_LABEL)}

    def _read_authorized_keys(self) -> dict[str, str]:
        path = self.authorized_keys_file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            # Fail closed: a list that cannot be read allows nobody (the configuration's keys still count).
            log.warning("cannot read %s (%s): it allows no client until it is fixed", path, exc.strerror or exc)
            return {}
        keys: dict[str, str] = {}
        for number, raw in enumerate(data.splitlines(), 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                log.warning("%s line %d is not UTF-8 text; skipped (write it in UTF-8)", path, number)
                continue
            # A line whose first word is not 40 characters long is a comment
            # ("#" is itself a Z85 character, so it cannot mark comments).
            key, *label = line.split(maxsplit=1) or [""]
            if len(key) != Z85_KEY_LENGTH:
                continue
            if not is_z85_key(key):
                log.warning("%s line %d: %r is not a Z85 key; skipped", path, number, key)
                continue
            keys[key] = label[0].strip() if label else ""
        return keys

    def callback(self, domain: str, key: bytes) -> bool:
        """The ZAP credentials check: is this client's public key allowed?

        It never raises: an exception would end pyzmq's authenticator task,
        and with it every later handshake, for good.
        """
        try:
            return key.decode("ascii", errors="replace") in self.allowed_keys()
        except Exception:
            log.exception("cannot check a client key against %s; refused", self.authorized_keys_file)
            return False

    def new_client(self, name: str, endpoint: str) -> dict[str, Any]:
        """A key pair for a new remote client, allow-listed; returns its client connection info.

        The returned dict (write it to a 0600 file and hand it over securely)
        is all a :class:`~kernel_nanny.DaemonClient` needs to connect.
        """
        check_client_name(name)
        public, secret = zmq.curve_keypair()
        self._append_line(f"{public.decode()} {name}\n".encode())
        return {
            "endpoint": endpoint,
            "server_public_key": self.server_keypair()[0].decode(),
            "client_public_key": public.decode(),
            "client_secret_key": secret.decode(),
            "key": self.api_key(),
            "signature_scheme": "hmac-sha256",
            "name": name,
        }

    def _append_line(self, line: bytes) -> None:
        """Append ``line`` to ``authorized_keys`` as a line of its own (a hand edit may have left no final newline)."""
        path = self.authorized_keys_file
        try:
            fd = open_private_file(path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:  # a directory in its place, no permission...
            raise ConfigError(f"cannot add a key to {path}: {exc.strerror or exc}; fix or remove it") from exc
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)


def check_client_name(name: str) -> str:
    """``name``, if it can label a client's key in ``authorized_keys``; else :exc:`ValueError` saying why.

    The name is written after the key, on the key's line: a line break in it
    would add lines (keys) of the caller's choosing, so only printable
    characters are taken (any script: the file is UTF-8).
    """
    if not name or name != name.strip():
        raise ValueError(f"the client name {name!r} must not be empty, nor start or end with a space")
    if not name.isprintable():
        raise ValueError(
            f"the client name {name!r} may hold only printable characters: no line breaks, tabs or control characters"
        )
    if len(name) > MAX_CLIENT_NAME_LENGTH:
        raise ValueError(
            f"the client name is {len(name)} characters long; at most {MAX_CLIENT_NAME_LENGTH} are allowed"
        )
    return name


def is_z85_key(text: str) -> bool:
    """Whether ``text`` is a CurveZMQ key in Z85 (40 characters of the Z85 alphabet)."""
    return len(text) == Z85_KEY_LENGTH and _Z85_CHARACTERS.issuperset(text)


def _signature(path: Path) -> object:
    """What changes when ``path`` is rewritten, replaced or removed (or becomes unreadable).

    Editors and ``sed -i`` replace the file (a new inode); an edit in place
    changes its size or its timestamps, unless it keeps the size within one
    tick of the file system's clock, a few milliseconds after the last write.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return str(exc)
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode)
