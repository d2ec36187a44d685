"""The daemon's secrets and who may connect: its API key, CurveZMQ keys, the allow-list.

All live in the state directory (0700), each file 0600, created on first use
and kept across restarts (so remote clients' files stay valid):

* ``api.key``: the HMAC key that signs every API message;
* ``server.key``: the daemon's CurveZMQ key pair for its tcp endpoint;
* ``authorized_keys``: client public keys (Z85), one per line with an optional
  label after a space; other lines (comments) are ignored. It is read on every
  connection attempt, so a key added (or removed) takes effect without a restart.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import zmq

from ..paths import secure_directory, write_private_file

__all__ = ["DaemonKeys"]

Z85_KEY_LENGTH = 40


class DaemonKeys:
    def __init__(self, state_dir: Path, extra_allowed: tuple[str, ...] = ()) -> None:
        self.state_dir = secure_directory(state_dir)
        self.extra_allowed = extra_allowed
        self.authorized_keys_file = state_dir / "authorized_keys"
        #: The daemon's CurveZMQ key pair, made on first use.
        self.server_key_file = state_dir / "server.key"

    def api_key(self) -> str:
        path = self.state_dir / "api.key"
        if not path.exists():
            write_private_file(path, secrets.token_hex(32).encode())
        return path.read_text().strip()

    def server_keypair(self) -> tuple[bytes, bytes]:
        path = self.server_key_file
        if not path.exists():
            public, secret = zmq.curve_keypair()
            write_private_file(path, json.dumps({"public": public.decode(), "secret": secret.decode()}).encode())
        data = json.loads(path.read_text())
        return data["public"].encode(), data["secret"].encode()

    def allowed_keys(self) -> set[str]:
        keys = set(self.extra_allowed)
        try:
            lines = self.authorized_keys_file.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            # A line whose first word is not a 40-character Z85 key is a comment
            # ("#" is itself a Z85 character, so it cannot mark comments).
            fields = line.split()
            if fields and len(fields[0]) == Z85_KEY_LENGTH:
                keys.add(fields[0])
        return keys

    def callback(self, domain: str, key: bytes) -> bool:
        """The ZAP credentials check: is this client's public key allowed?"""
        return key.decode(errors="replace") in self.allowed_keys()

    def new_client(self, name: str, endpoint: str) -> dict[str, Any]:
        """A key pair for a new remote client, allow-listed; returns its client connection info.

        The returned dict (write it to a 0600 file and hand it over securely)
        is all a :class:`~kernel_nanny.DaemonClient` needs to connect.
        """
        public, secret = zmq.curve_keypair()
        with open(self.authorized_keys_file, "a", encoding="ascii") as file:
            file.write(f"{public.decode()} {name}\n")
        self.authorized_keys_file.chmod(0o600)
        return {
            "endpoint": endpoint,
            "server_public_key": self.server_keypair()[0].decode(),
            "client_public_key": public.decode(),
            "client_secret_key": secret.decode(),
            "key": self.api_key(),
            "signature_scheme": "hmac-sha256",
            "name": name,
        }
