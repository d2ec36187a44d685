"""The nanny's reader of its kernel's iopub: every message into the journal, the few it acts on to the nanny.

One SUB socket, fast and local, with a deep receive queue (``SUB_RCVHWM``), so that the
kernel's PUB socket (which drops what a slow subscriber cannot take) is
drained by someone who keeps up. Each message goes into the journal as it
arrived, signature and all (:mod:`.journal`); only the messages the nanny
itself acts on (``status``, ``shutdown_reply``, the ``kernel.`` topics) are
verified and decoded, for :meth:`KernelNanny._on_kernel_iopub`.

**Clients keep their welcome.** ipykernel greets each new subscription with
``iopub_welcome``, but its XPUB socket hears a subscription only the first
time a topic is subscribed. A catch-all (empty) subscription here would make
every client's catch-all a repeat, and clients would wait for a welcome that
never comes. So the recorder subscribes to the one-character prefixes of
printable ASCII instead: together they match every topic kernels send, and
the empty topic stays new for the first client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import zmq
import zmq.asyncio

from .._exceptions import ProtocolError
from .._tasks import TaskGroup
from ..client._sockets import connect
from ..protocol import Message, Session
from ..protocol.connection import channel_url
from ..protocol.session import DELIMITER
from .journal import Journal

__all__ = ["EVERY_TOPIC", "IopubRecorder"]

log = logging.getLogger("kernel_nanny.nanny")

#: Subscriptions that match every topic kernels use (they are ASCII text: ``kernel.<id>.status``,
#: ``stream.stdout``, ``execute_result``...) and leave the empty one to clients (see the module docstring).
#: Printable ASCII only: xeus-python aborts on a subscription that is not valid UTF-8.
EVERY_TOPIC = tuple(bytes([byte]) for byte in range(0x20, 0x7F))
#: Messages read in one go before the recorder lets the nanny's other tasks run.
_DRAIN_BATCH = 256


class IopubRecorder:
    """Journals every iopub message of the kernel at ``connection_info``; passes those on ``topics`` to ``handle``.

    Without a journal (it is off) it reads only ``topics``.
    """

    def __init__(
        self,
        connection_info: Mapping[str, Any],
        session: Session,
        journal: Journal | None,
        handle: Callable[[Message], None],
        topics: tuple[bytes, ...],
    ) -> None:
        self.journal = journal
        self._session = session
        self._handle = handle
        self._topics = topics
        url = channel_url(connection_info, "iopub")
        subscribed = EVERY_TOPIC if journal is not None else topics
        self._socket = connect(zmq.asyncio.Context.instance(), zmq.SUB, url, connection_info, topics=subscribed)
        self._tasks = TaskGroup(log)
        self._tasks.spawn(self._read(), name="nanny-iopub-recorder")

    def __repr__(self) -> str:
        last_seq = None if self.journal is None else self.journal.last_seq
        return f"<IopubRecorder last_seq={last_seq} closed={self._socket.closed}>"

    async def _read(self) -> None:
        # Waking the event loop costs more than recording a message, and a kernel printing line by line wakes
        # it once per message: a reader callback on the socket's descriptor drains what is queued, without
        # the futures and poller an awaited receive would set up each time (a third of the CPU per print).
        loop = asyncio.get_running_loop()
        drain: zmq.Socket[bytes] = zmq.Socket.shadow(self._socket.underlying)
        fd = int(drain.getsockopt(zmq.FD))
        reading = True

        def readable() -> None:
            for _ in range(_DRAIN_BATCH):
                if not reading:  # closed while a continuation was scheduled
                    return
                try:
                    frames = drain.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return  # drained: ZeroMQ's descriptor signals again when more comes (edge-triggered)
                try:
                    self._record(frames)
                except Exception:  # a malformed message is the kernel's bug: never the end of the recording
                    log.exception("could not record an iopub message of %d frames", len(frames))
            loop.call_soon(readable)  # more are queued: let the nanny's other work in first

        loop.add_reader(fd, readable)
        try:
            readable()  # what arrived before the reader was registered
            await loop.create_future()  # until close() cancels this
        finally:
            reading = False
            loop.remove_reader(fd)

    def _record(self, frames: list[bytes]) -> None:
        try:
            split = frames.index(DELIMITER)
        except ValueError:
            log.warning("dropped an iopub message without a delimiter (%d frames)", len(frames))
            return
        signed = frames[split + 1 :]
        if len(signed) < 5:
            log.warning("dropped an iopub message of %d frames after the delimiter", len(signed))
            return
        if self.journal is not None:
            header, parent = _json(signed[1]), _json(signed[2])
            if header.get("msg_type") == "iopub_welcome":
                # ipykernel's greeting of a new subscription: here, of one of this reader's 95 (EVERY_TOPIC),
                # arriving at any time after the kernel is up. Not the kernel's output: never replayed to clients.
                return
            self.journal.append(
                signed,
                received=time.time(),
                parent_msg_id=str(parent["msg_id"]) if parent.get("msg_id") else None,
                msg_type=str(header.get("msg_type", "")),
            )
        topic = frames[0] if split else b""
        if topic.startswith(self._topics):
            try:
                msg = self._session.deserialize(frames)
            except ProtocolError as exc:
                log.warning("dropped an iopub message: %s", exc)
                return
            self._handle(msg)

    async def close(self) -> None:
        """Stop reading (the journal stays, for the nanny to close)."""
        await self._tasks.cancel_all()
        # A reader has nothing to deliver: its queued subscriptions, towards a kernel that may be gone, must not
        # hold the context's termination (a forked nanny waits for that before it exits).
        self._socket.close(linger=0)


def _json(frame: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
