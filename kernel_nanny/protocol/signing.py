"""HMAC signatures of Jupyter messages.

The signature covers the header, parent header, metadata and content frames
(not the buffers), as the protocol specifies. An empty key means messages are
neither signed nor checked, which the protocol allows for trusted transports.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from .._exceptions import InvalidSignature

__all__ = ["DEFAULT_SIGNATURE_SCHEME", "Signer"]

DEFAULT_SIGNATURE_SCHEME = "hmac-sha256"


class Signer:
    """Signs and verifies the four signed frames of a message."""

    __slots__ = ("_hmac", "key", "scheme")

    def __init__(self, key: bytes | str, scheme: str = DEFAULT_SIGNATURE_SCHEME) -> None:
        self.key = key.encode() if isinstance(key, str) else bytes(key)
        self.scheme = scheme
        algorithm = scheme[len("hmac-") :] if scheme.startswith("hmac-") else ""
        try:
            if algorithm not in hashlib.algorithms_available:
                raise ValueError(algorithm)
            # Keyed once; each signature copies this prepared state (cheaper than re-keying).
            prepared = hmac.new(self.key or b"probe", digestmod=algorithm)
        except (ValueError, TypeError):  # unknown, or a hash HMAC cannot use (shake_*)
            raise ValueError(
                f"unsupported signature_scheme {scheme!r}: expected 'hmac-<hash>', "
                "e.g. 'hmac-sha256' (the default), 'hmac-sha512' or 'hmac-md5'"
            ) from None
        self._hmac = prepared if self.key else None

    @property
    def enabled(self) -> bool:
        return self._hmac is not None

    def sign(self, frames: Sequence[bytes | memoryview]) -> bytes:
        """The hex digest of ``frames`` (``b""`` when signing is off)."""
        if self._hmac is None:
            return b""
        mac = self._hmac.copy()
        for frame in frames:
            mac.update(frame)
        return mac.hexdigest().encode()

    def verify(self, signature: bytes, frames: Sequence[bytes | memoryview]) -> None:
        """Raise :class:`~kernel_nanny.InvalidSignature` unless ``signature`` matches ``frames``."""
        if self._hmac is None:
            return
        if not signature:
            raise InvalidSignature("unsigned message received, but a key is configured")
        if not hmac.compare_digest(signature, self.sign(frames)):
            raise InvalidSignature(f"bad message signature ({self.scheme})")
