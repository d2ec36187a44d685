"""The Jupyter message as a value: header, parent header, metadata, content, buffers.

Dates stay as the ISO-8601 strings they travel as; ``Message.date`` parses on
demand with ``datetime.fromisoformat`` (a fraction of a microsecond), because
parsing every date eagerly is where jupyter_client's ``Session`` spends most of
its time and most consumers never look at the date.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import count
from typing import Any

__all__ = ["PROTOCOL_VERSION", "Message", "new_id", "parse_date"]

#: The Jupyter messaging protocol version this implementation speaks.
PROTOCOL_VERSION = "5.4"


def new_id() -> str:
    """A fresh random id, as used for session ids and kernel ids."""
    return uuid.uuid4().hex


def parse_date(value: str) -> datetime:
    """Parse an ISO-8601 date from a header; naive dates are taken as UTC."""
    if value.endswith("Z"):  # fromisoformat only accepts "Z" from Python 3.11 on
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def utcnow_iso() -> str:
    """The current time as an ISO-8601 string with an explicit UTC offset."""
    return datetime.now(timezone.utc).isoformat()


class MessageIds:
    """Message ids unique across processes: ``<session-prefix>_<pid>_<counter>``.

    A counter is much cheaper than a uuid per message and still unique, since
    the prefix is random per session and the pid guards against forks.
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._counter = count()

    def __call__(self) -> str:
        return f"{self._prefix}_{os.getpid()}_{next(self._counter)}"


@dataclass(slots=True)
class Message:
    """One Jupyter message, as sent or as received.

    ``identities`` holds the ZeroMQ routing prefix (frames before ``<IDS|MSG>``);
    it matters for ROUTER sockets and is empty otherwise. ``seq`` is the
    message's sequence number in its nanny's journal when it was read from
    there (:meth:`ManagerClient.follow <kernel_nanny.ManagerClient.follow>`,
    a :class:`~kernel_nanny.KernelClient` following the journal), else None.
    """

    header: dict[str, Any]
    parent_header: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    buffers: list[bytes | memoryview] = field(default_factory=list)
    identities: list[bytes] = field(default_factory=list)
    seq: int | None = None

    @property
    def msg_id(self) -> str:
        """This message's unique id (``header["msg_id"]``)."""
        return str(self.header["msg_id"])

    @property
    def msg_type(self) -> str:
        """What kind of message this is (``header["msg_type"]``), e.g. ``execute_reply``."""
        return str(self.header["msg_type"])

    @property
    def parent_id(self) -> str | None:
        """The ``msg_id`` of the request this message answers, if any."""
        return self.parent_header.get("msg_id")

    @property
    def date(self) -> datetime | None:
        """When the message was created, parsed from the header (timezone-aware), or None."""
        raw = self.header.get("date")
        return parse_date(raw) if isinstance(raw, str) else raw

    def to_dict(self) -> dict[str, Any]:
        """The dict shape jupyter_client uses (``msg['content']``, ``msg['msg_type']``...)."""
        return {
            "header": self.header,
            "msg_id": self.header.get("msg_id"),
            "msg_type": self.header.get("msg_type"),
            "parent_header": self.parent_header,
            "metadata": self.metadata,
            "content": self.content,
            "buffers": self.buffers,
        }
