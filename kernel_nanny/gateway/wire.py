"""The two ways a Jupyter WebSocket carries kernel messages, both ways round.

**Legacy JSON** (no subprotocol): a text frame holds the message as one JSON
object with its ``channel`` (``shell`` if it has none); a message with binary buffers travels as a
binary frame: a big-endian ``uint32`` count of parts, one ``uint32`` offset
per part, then the JSON object and the buffers.

**v1** (subprotocol ``v1.kernel.websocket.jupyter.org``): every message is a
binary frame: a little-endian ``uint64`` count of offsets, the offsets, then
the channel name and the message's parts as on the kernel's sockets (header,
parent header, metadata, content, buffers), each JSON part as its own
serialized bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from .._exceptions import ProtocolError
from ..protocol import Message
from ..protocol.session import dumps, loads

__all__ = ["V1_SUBPROTOCOL", "WireError", "decode", "encode"]

V1_SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
CHANNELS = ("shell", "control", "stdin", "iopub")


class WireError(ValueError):
    """A frame that is not a kernel message in the connection's format (the reason says what is wrong)."""


def encode(msg: Message, channel: str, *, v1: bool) -> str | bytes:
    """``msg`` from ``channel`` as one WebSocket frame (text for legacy JSON without buffers, else binary)."""
    if v1:
        parts = [dumps(msg.header), dumps(msg.parent_header), dumps(msg.metadata), dumps(msg.content)]
        return _pack_v1(channel.encode(), [*parts, *map(bytes, msg.buffers)])
    body = {**msg.to_dict(), "channel": channel, "buffers": []}
    if not msg.buffers:
        return dumps(body).decode()
    parts = [dumps(body), *map(bytes, msg.buffers)]
    offsets = [4 * (len(parts) + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"!{len(parts) + 1}I", len(parts), *offsets) + b"".join(parts)


def decode(frame: str | bytes, *, v1: bool) -> tuple[str, Message]:
    """A frame from the client as ``(channel, message)``; WireError names what is wrong with a bad one."""
    if v1:
        if isinstance(frame, str):
            raise WireError("a v1 connection sends binary frames, got text")
        channel, parts = _unpack_v1(frame)
        if len(parts) < 4:
            raise WireError(f"a v1 message has header, parent header, metadata and content; got {len(parts)} parts")
        try:
            header, parent, metadata, content = (
                loads(part, name, null_is_empty=True) for part, name in zip(parts, _PART_NAMES, strict=False)
            )
        except ProtocolError as exc:
            raise WireError(str(exc)) from None
        msg = Message(header, parent, metadata, content, buffers=list[bytes | memoryview](parts[4:]))
    else:
        body, buffers = _unpack_legacy(frame) if isinstance(frame, bytes) else (frame, [])
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise WireError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise WireError("a message is a JSON object")
        channel = str(
            data.get("channel") or "shell"
        )  # as jupyter_server: jupyter_server's own GatewayKernelClient sends none
        msg = Message(
            _part(data, "header"),
            _part(data, "parent_header"),
            _part(data, "metadata"),
            _part(data, "content"),
            buffers=list[bytes | memoryview](buffers),
        )
    if channel not in CHANNELS:
        raise WireError(f"unknown channel {channel!r} (expected one of {', '.join(CHANNELS)})")
    if not isinstance(msg.header.get("msg_id"), str) or not isinstance(msg.header.get("msg_type"), str):
        raise WireError("the header needs 'msg_id' and 'msg_type' strings")
    return channel, msg


_PART_NAMES = ("header", "parent_header", "metadata", "content")


def _part(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise WireError(f"'{name}' must be an object")
    return value


def _pack_v1(channel: bytes, parts: list[bytes]) -> bytes:
    count = len(parts) + 2
    offsets = [8 * (count + 1), 8 * (count + 1) + len(channel)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"<{count + 1}Q", count, *offsets) + channel + b"".join(parts)


def _unpack_v1(frame: bytes) -> tuple[str, list[bytes]]:
    try:
        (count,) = struct.unpack_from("<Q", frame)
        if not 2 <= count <= len(frame) // 8:
            raise WireError(f"a v1 frame of {len(frame)} bytes cannot hold {count} offsets")
        offsets = struct.unpack_from(f"<{count}Q", frame, 8)
    except struct.error:
        raise WireError(f"a v1 frame of {len(frame)} bytes is too short for its offsets") from None
    if list(offsets) != sorted(offsets) or offsets[-1] > len(frame) or offsets[0] != 8 * (count + 1):
        raise WireError("a v1 frame's offsets are out of order or out of range")
    channel = frame[offsets[0] : offsets[1]].decode("utf-8", "replace")
    return channel, [frame[start:end] for start, end in zip(offsets[1:], offsets[2:], strict=False)]


def _unpack_legacy(frame: bytes) -> tuple[bytes, list[bytes]]:
    try:
        (count,) = struct.unpack_from("!I", frame)
        if not 1 <= count <= len(frame) // 4:
            raise WireError(f"a binary frame of {len(frame)} bytes cannot hold {count} parts")
        offsets = [*struct.unpack_from(f"!{count}I", frame, 4), len(frame)]
    except struct.error:
        raise WireError(f"a binary frame of {len(frame)} bytes is too short for its offsets") from None
    if offsets != sorted(offsets) or offsets[0] != 4 * (count + 1):
        raise WireError("a binary frame's offsets are out of order or out of range")
    parts = [frame[start:end] for start, end in zip(offsets, offsets[1:], strict=False)]
    return parts[0], parts[1:]
