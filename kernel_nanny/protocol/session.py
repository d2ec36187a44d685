"""Serialise and deserialise Jupyter messages on the wire.

Wire format (Jupyter messaging 5.x)::

    [identity, ..., b"<IDS|MSG>", signature, header, parent_header, metadata, content, buffer, ...]

A :class:`Session` holds what one party needs to speak it: the key and
signature scheme (from the connection info), a session id and username for the
headers it writes, and a replay guard for what it receives. It does no I/O;
sockets live in the client and nanny packages.
"""

from __future__ import annotations

import base64
import getpass
import json
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from .._exceptions import InvalidJSON, MissingDelimiter, TooFewFrames
from .message import PROTOCOL_VERSION, Message, MessageIds, new_id, utcnow_iso
from .replay import DEFAULT_REPLAY_WINDOW, ReplayGuard
from .signing import DEFAULT_SIGNATURE_SCHEME, Signer

__all__ = ["DELIMITER", "Session", "dumps", "loads", "split_identities"]

DELIMITER = b"<IDS|MSG>"
_FRAME_NAMES = ("header", "parent_header", "metadata", "content")
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS
_LONG_NUMBER = re.compile(rb"\d{20}")


def _json_default(obj: Any) -> Any:
    """Types jupyter_client also accepts in content: bytes (base64), sets, decimals, dates, uuids.

    orjson handles dates and uuids itself; the stdlib fallback needs them here.
    """
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, UUID):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} in a Jupyter message")


def dumps(obj: Any) -> bytes:
    """Serialise one message part to JSON bytes."""
    try:
        return orjson.dumps(obj, default=_json_default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        # orjson refuses what stdlib json allows (integers beyond 64 bits, for one).
        return json.dumps(obj, default=_json_default, separators=(",", ":")).encode()


def loads(frame: bytes | memoryview, name: str = "frame", *, null_is_empty: bool = False) -> dict[str, Any]:
    """Parse one message part, which must be a JSON object.

    With ``null_is_empty``, ``null`` reads as ``{}``: jupyter_client's
    ``Session.deserialize`` accepts a null parent header, metadata or content
    (xeus-python's first status has a null parent header), so we do too.

    orjson reads integers beyond 64 bits as floats; a frame with a number of 20
    or more digits is parsed by the stdlib instead, so such integers stay exact.
    """
    try:
        value = json.loads(bytes(frame)) if _LONG_NUMBER.search(frame) else orjson.loads(frame)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise InvalidJSON(f"{name} is not valid JSON: {exc}") from exc
    if value is None and null_is_empty:
        return {}
    if not isinstance(value, dict):
        raise InvalidJSON(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def split_identities(frames: Sequence[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split raw frames at the ``<IDS|MSG>`` delimiter into (identities, message frames)."""
    for index, frame in enumerate(frames):
        if frame == DELIMITER:
            return list(frames[:index]), list(frames[index + 1 :])
    raise MissingDelimiter(f"no {DELIMITER.decode()} delimiter among {len(frames)} frames")


class Session:
    """Builds, signs, serialises and verifies messages for one party.

    ``key`` and ``signature_scheme`` come from the kernel's connection info.
    Messages this session receives are verified against the key, and a signed
    message seen twice is refused (:class:`~kernel_nanny.ReplayedMessage`).
    """

    def __init__(
        self,
        key: bytes | str = b"",
        signature_scheme: str = DEFAULT_SIGNATURE_SCHEME,
        *,
        session_id: str | None = None,
        username: str | None = None,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
    ) -> None:
        self.signer = Signer(key, signature_scheme)
        self.session_id = session_id or new_id()
        self.username = username if username is not None else _username()
        self._replay = ReplayGuard(replay_window)
        self._new_msg_id = MessageIds(self.session_id)

    @property
    def key(self) -> bytes:
        """The HMAC key (empty: messages are not signed)."""
        return self.signer.key

    @property
    def signature_scheme(self) -> str:
        """The signature scheme, e.g. ``hmac-sha256``."""
        return self.signer.scheme

    def __repr__(self) -> str:
        signing = self.signer.scheme if self.signer.enabled else "unsigned"
        return f"<Session id={self.session_id[:8]} {signing}>"

    def header(self, msg_type: str) -> dict[str, Any]:
        """A fresh header for a message of ``msg_type`` from this session."""
        return {
            "msg_id": self._new_msg_id(),
            "msg_type": msg_type,
            "username": self.username,
            "session": self.session_id,
            "date": utcnow_iso(),
            "version": PROTOCOL_VERSION,
        }

    def msg(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        parent: Message | dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes | memoryview] | None = None,
    ) -> Message:
        """Build a new message; ``parent`` is the message it answers, if any."""
        if isinstance(parent, Message):
            parent_header = parent.header
        elif parent is not None:
            parent_header = parent.get("header", parent)
        else:
            parent_header = {}
        return Message(
            header=self.header(msg_type),
            parent_header=parent_header,
            metadata=metadata if metadata is not None else {},
            content=content if content is not None else {},
            buffers=list(buffers) if buffers else [],
        )

    def serialize(self, msg: Message, identities: Sequence[bytes] = ()) -> list[bytes | memoryview]:
        """The frames to send for ``msg``, signed, with routing ``identities`` in front."""
        parts = [dumps(msg.header), dumps(msg.parent_header), dumps(msg.metadata), dumps(msg.content)]
        return [*identities, *msg.identities, DELIMITER, self.signer.sign(parts), *parts, *msg.buffers]

    def deserialize(self, frames: Sequence[bytes], *, fresh: bool = True) -> Message:
        """Verify and decode received frames (identities included) into a :class:`Message`.

        Raises a :class:`~kernel_nanny.ProtocolError` subclass for anything that
        is not a correctly signed, fresh Jupyter message; nothing is decoded
        before the signature has been checked. ``fresh=False`` skips the replay
        check, for messages that are repeats by design (a nanny's journal replayed).
        """
        identities, parts = split_identities(frames)
        if len(parts) < 5:
            raise TooFewFrames(f"expected at least 5 frames after the delimiter, got {len(parts)}")
        signature = bytes(parts[0])
        signed = parts[1:5]
        self.signer.verify(signature, signed)
        if self.signer.enabled and fresh:
            self._replay.check(signature)
        header = loads(signed[0], "header")
        parent_header, metadata, content = (
            loads(frame, name, null_is_empty=True) for frame, name in zip(signed[1:], _FRAME_NAMES[1:], strict=True)
        )
        if "msg_type" not in header or "msg_id" not in header:
            raise InvalidJSON("header lacks msg_id or msg_type")
        return Message(header, parent_header, metadata, content, list(parts[5:]), identities)


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the protocol only needs a label
        return "kernel-nanny"
