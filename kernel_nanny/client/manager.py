"""ManagerClient: the manager interface, over a kernel's nanny sockets.

Anyone who can read a nanny's connection file (or is handed its connection
info) can manage the kernel as if it were a local child process: ask whether
it is alive, interrupt, signal, kill, restart, shut it down, wait for its death
and follow its events. Requests go to ``nanny_control``; events come from
``nanny_events``; both are signed with the kernel's key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, cast

import zmq
import zmq.asyncio

from .._exceptions import ConnectionInfoError, IncompatibleProtocol, NannyUnavailable, NoSuchKernel, ProtocolError
from .._lifetime import Lifetime
from .._loop import BlockingTwin, blocking
from .._tasks import TaskGroup, wait_for
from ..defaults import (
    CLIENT_LINGER_MS,
    DEFAULT_HEARTBEAT_INTERVAL,
    MISSED_HEARTBEATS,
    NANNY_REQUEST_TIMEOUT,
    NANNY_SLOW_REQUEST_TIMEOUT,
    REPLAY_MAX_WAIT,
)
from ..protocol import (
    DELIMITER,
    NANNY_PROTOCOL_VERSION,
    ExitStatus,
    Message,
    Session,
    channel_url,
    load_connection_info,
    normalize_connection_info,
)
from ..protocol.manager_state import dump_manager_state, load_manager_state, wrong_field
from ..protocol.nanny import JournalEntry, NannyInfo
from ._requests import RequestChannel
from ._sockets import connect, read_messages
from .running import ProcessIdentity

__all__ = ["BlockingManagerClient", "ManagerClient"]

log = logging.getLogger("kernel_nanny.client")

EventHandler = Callable[[Message], None]


class ManagerClient(Lifetime):
    """Manages a nanny-supervised kernel from any process (asyncio).

    ::

        async with ManagerClient.from_connection_file(path) as manager:
            await manager.interrupt()
            async for event in manager.events():
                print(event.msg_type, event.content)
    """

    def __init__(
        self,
        connection_info: Mapping[str, Any],
        *,
        timeout: float = NANNY_REQUEST_TIMEOUT,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        info = normalize_connection_info(connection_info)
        for key in ("nanny_control_port", "nanny_events_port"):
            if not isinstance(info.get(key), int):
                raise ConnectionInfoError(f"connection info has no {key}: this kernel is not managed by a nanny")
        version = str(info.get("nanny_protocol_version", NANNY_PROTOCOL_VERSION))
        if version.split(".")[0] != NANNY_PROTOCOL_VERSION.split(".")[0]:
            raise IncompatibleProtocol(
                f"the nanny speaks protocol {version}, this client {NANNY_PROTOCOL_VERSION}: upgrade kernel-nanny"
            )
        self.connection_info = info
        self.timeout = timeout
        self.session = Session(info["key"], info["signature_scheme"])
        self._context = context or zmq.asyncio.Context.instance()
        self._control: RequestChannel | None = None
        self._events: zmq.asyncio.Socket | None = None
        self._tasks = TaskGroup(log)
        self._handlers: list[EventHandler] = []
        self._subscribed: asyncio.Event | None = None
        self._last_event = 0.0
        #: Why the nanny exited, once it said so (``nanny_exiting``): it answers nothing more.
        self._exit_reason: str | None = None

    @classmethod
    def from_connection_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> ManagerClient:
        """A manager client for the nanny whose connection file is at ``path``."""
        return cls(load_connection_info(path), **kwargs)

    def to_json(self) -> str:
        """The nanny's connection info (with its key: write it 0600) as a re-attachable state of kind ``nanny``.

        The same idea as the providers' managers' ``to_json`` (:ref:`reattach-from-json`):
        :meth:`from_json` makes a client for the same nanny in any process.
        """
        return dump_manager_state("nanny", {"connection_info": self.connection_info})

    @classmethod
    async def from_json(cls, data: str, **kwargs: Any) -> ManagerClient:
        """A client for the nanny that :meth:`to_json` describes, once it is known to be there.

        Raises :exc:`~kernel_nanny.InvalidRequest` (a :exc:`ValueError`) for
        JSON that is not a nanny's state. A nanny of this host is checked by
        its process (pid and start time, as ``kernel-nanny ps`` does): one
        that is gone raises :exc:`~kernel_nanny.NoSuchKernel`. A nanny
        elsewhere must answer an ``info`` request, signed with the kernel's
        key (:exc:`~kernel_nanny.NannyUnavailable` if it does not answer).
        """
        state = load_manager_state(data, "nanny", ("connection_info",))
        try:
            client = cls(state["connection_info"], **kwargs)
        except (ConnectionInfoError, TypeError) as exc:
            raise wrong_field("nanny", exc) from None
        info = client.connection_info
        if info.get("nanny_host") == socket.gethostname():
            pid, start_time = info.get("nanny_pid"), info.get("nanny_start_time")
            nanny = ProcessIdentity(
                pid if isinstance(pid, int) else 0, start_time if isinstance(start_time, int) else None
            )
            if not nanny.is_nanny():
                raise NoSuchKernel(
                    f"kernel {client.kernel_id[:12]} is gone: its nanny (pid {nanny.pid}) has exited, or that pid "
                    "now belongs to another program; start a new kernel ('kernel-nanny ps' lists those running)"
                )
            return client
        try:
            await client.info()  # answered with this kernel's key: the nanny is the one recorded
        except BaseException:
            await client.cleanup()
            raise
        return client

    def __repr__(self) -> str:
        return f"<ManagerClient kernel={self.kernel_id[:8]} type={self.kernel_type} state={self.state.value}>"

    @property
    def kernel_id(self) -> str:
        """The kernel's id, as ``kernel-nanny ps`` shows it."""
        return str(self.connection_info.get("kernel_id", ""))

    @property
    def kernel_type(self) -> str:
        """The kernel's type id, e.g. ``spec/python3``."""
        return str(self.connection_info.get("kernel_type", ""))

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between the nanny's heartbeats (three missed: the nanny is taken for dead)."""
        return float(self.connection_info.get("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL))

    # -- lifetime (close() closes this client's sockets; the kernel and its nanny keep running) --

    def _begin_closing(self) -> None:
        if self._control is not None:
            self._control.close("the manager client was closed while waiting for a reply")
        self._tasks.cancel()
        if self._events is not None:
            self._events.close(linger=CLIENT_LINGER_MS)

    async def _finish_closing(self) -> None:
        await self._tasks.cancel_all()  # the readers have stopped

    async def cleanup(self) -> None:
        """Release this client's resources (the manager interface's cleanup)."""
        self.close()
        await self.wait_closed()

    # -- sockets ----------------------------------------------------------

    def _control_channel(self) -> RequestChannel:
        self._check_open()
        if self._control is None:
            self._control = RequestChannel(
                self._context,
                channel_url(self.connection_info, "nanny_control"),
                self.session,
                label="nanny_control",
                tasks=self._tasks,
                unavailable=lambda why: NannyUnavailable(f"the nanny of kernel {self.kernel_id[:8]}: {why}"),
                curve=self.connection_info,
            )
        return self._control

    async def subscribe(self) -> None:
        """Subscribe to the nanny's events and return once the subscription is live.

        A subscription takes a few milliseconds to reach the nanny, and events
        published before that are lost to this client (PUB/SUB keeps no
        backlog). Call this after :meth:`add_event_handler` and before acting,
        when a handler must not miss what the action causes: subscribe, then
        kill the kernel, and ``kernel_died`` is sure to arrive. :meth:`events`,
        :meth:`wait`, :meth:`restart` and :meth:`shutdown` call it themselves.
        Live means the nanny's greeting (a ``heartbeat``) arrived; none within
        the client's ``timeout`` raises :exc:`NannyUnavailable`. Cheap once live.
        """
        self._events_socket()
        assert self._subscribed is not None
        try:
            await wait_for(self._subscribed.wait(), self.timeout)
        except asyncio.TimeoutError:
            raise NannyUnavailable(
                f"no event from the nanny of kernel {self.kernel_id[:8]} within {self.timeout} s"
            ) from None

    def _events_socket(self) -> None:
        self._check_open()
        if self._events is None:
            self._subscribed = asyncio.Event()
            url = channel_url(self.connection_info, "nanny_events")
            self._events = connect(self._context, zmq.SUB, url, self.connection_info)
            self._tasks.spawn(
                read_messages(self._events, self.session, self._on_event, "nanny_events"), name="manager-events"
            )

    def _on_event(self, msg: Message) -> None:
        assert self._subscribed is not None
        self._subscribed.set()
        self._last_event = asyncio.get_running_loop().time()
        if msg.msg_type == "nanny_exiting":
            self._exit_reason = str(msg.content.get("reason") or "it exited")
        for handler in list(self._handlers):
            try:
                handler(msg)
            except Exception:
                log.exception("event handler %r failed on %s", handler, msg.msg_type)

    # -- requests ---------------------------------------------------------

    async def request(
        self, name: str, content: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send ``<name>_request`` and return the reply's content.

        Raises :class:`NannyUnavailable` if the nanny does not answer within
        ``timeout`` (default: the client's), :class:`KernelError` if it answers
        with ``status: error``.
        """
        if self._exit_reason is not None:
            raise NannyUnavailable(
                f"the nanny of kernel {self.kernel_id[:8]} has exited ({self._exit_reason}): it answers no more "
                "requests ('kernel-nanny ps' lists the running kernels)"
            )
        # Subscribed to events, a nanny that dies mid-request is noticed by its
        # missing heartbeats instead of after the whole timeout.
        watch = self._next_or_unavailable if self._events is not None else None
        seconds = self.timeout if timeout is None else timeout
        return await self._control_channel().call(name, content, seconds, watch)

    async def info(self) -> NannyInfo:
        """The nanny's view: versions, kernel type and pid, state, restarts, policy, last exit..."""
        return cast(NannyInfo, await self.request("info"))

    async def is_alive(self) -> bool:
        """Whether the kernel process is running (the nanny's answer)."""
        return bool((await self.request("is_alive"))["alive"])

    async def interrupt(self) -> None:
        """Interrupt the running code (by signal or message, per the kernel's interrupt_mode)."""
        await self.request("interrupt")

    async def signal(self, signum: int | str) -> None:
        """Send a signal, by number or name (``"SIGTERM"``), to the kernel's process group."""
        await self.request("signal", {"signum": signum})

    async def kill(self) -> None:
        """SIGKILL the kernel. The nanny stays, and does not restart it."""
        await self.request("kill")

    async def restart(self, now: bool = False) -> None:
        """Restart the kernel in place (same connection info); returns once it is ready.

        Clients connected across the restart should call ``wait_for_ready()``
        before executing, so their iopub subscription to the new process is live.
        """
        await self.subscribe()
        await self.request("restart", {"now": now}, timeout=NANNY_SLOW_REQUEST_TIMEOUT)

    async def shutdown(self, now: bool = False) -> None:
        """Stop the kernel (``now``: at once, by SIGKILL); returns once the nanny is exiting, its files gone.

        Returns at once if this client heard the nanny exit already.
        """
        if self._exit_reason is not None:
            return
        exiting: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        def on_event(event: Message) -> None:
            if event.msg_type == "nanny_exiting" and not exiting.done():
                exiting.set_result(event)

        self.add_event_handler(on_event)
        try:
            await self.subscribe()
            await self.request("shutdown", {"now": now}, timeout=NANNY_SLOW_REQUEST_TIMEOUT)
            try:
                await self._next_or_unavailable(exiting)
            except NannyUnavailable:
                pass  # it went without a word: gone all the same
        finally:
            self.remove_event_handler(on_event)

    # -- events -----------------------------------------------------------

    def add_event_handler(self, handler: EventHandler) -> None:
        """Call ``handler(event)`` for every event the nanny publishes (on this client's loop).

        Subscribes at once; events published before the subscription is live
        (a few milliseconds) are not seen: ``await`` :meth:`subscribe`
        when that matters.
        """
        self._events_socket()
        self._handlers.append(handler)

    def remove_event_handler(self, handler: EventHandler) -> None:
        """Stop calling ``handler`` (added with :meth:`add_event_handler`)."""
        self._handlers.remove(handler)

    async def replay(
        self, since: int = 0, *, parent_msg_id: str | None = None, last: int | None = None
    ) -> AsyncIterator[JournalEntry]:
        """The kernel's recorded output after sequence number ``since``, oldest first, from the nanny's journal.

        The nanny keeps every iopub message of its kernel (and markers for its
        starts, deaths and restarts) under a sequence number, so a client that
        was away, or too slow, reads what it missed: remember the last ``seq``
        processed and ask from there. ``parent_msg_id`` keeps only the output of
        one request (an ``execute_request``'s msg_id); ``last=N`` starts with the
        last N entries. Entries come in pages; the iterator asks for the next as
        it goes. Dropped entries (the journal is bounded) show as one ``lost``
        entry where they were. Messages are verified with the kernel's key.
        """
        watch = self._next_or_unavailable if self._events is not None else None
        request: dict[str, Any] = {"since": since, "parent_msg_id": parent_msg_id, "last": last}
        while True:
            page, more, cursor = await self._replay_page(request, self.timeout, watch)
            for entry in page:
                yield entry
            if not more:
                return
            request = {"since": cursor, "parent_msg_id": parent_msg_id}

    async def follow(self, since: int = 0, *, parent_msg_id: str | None = None) -> AsyncIterator[JournalEntry]:
        """The journal after ``since`` (as :meth:`replay`), then each new entry as the kernel publishes it.

        Every entry comes once, in order, whatever the pace of the reader: a
        reader that falls behind reads on from the journal instead of losing
        messages (as a subscriber to the kernel's iopub would), and learns of
        entries the bounded journal dropped before it got to them by a ``lost``
        entry. Each request for more waits in the nanny until there is more, so
        a quiet kernel costs nothing. Ends when the nanny exits (the kernel was
        stopped), after the last entry; raises :class:`NannyUnavailable` if the
        nanny goes silent.
        """
        exiting: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        def on_event(event: Message) -> None:
            if event.msg_type == "nanny_exiting" and not exiting.done():
                exiting.set_result(event)

        async def reply_unless_exiting(reply: Awaitable[Message]) -> Message:
            return await self._next_or_unavailable(reply, unless=exiting)

        self.add_event_handler(on_event)
        try:
            await self.subscribe()
            request: dict[str, Any] = {"since": since, "parent_msg_id": parent_msg_id, "wait": REPLAY_MAX_WAIT}
            while True:
                try:
                    page, _, cursor = await self._replay_page(
                        request, self.timeout + REPLAY_MAX_WAIT, reply_unless_exiting
                    )
                except _NannyExited:
                    return
                for entry in page:
                    yield entry
                request["since"] = cursor
        finally:
            self.remove_event_handler(on_event)

    async def _replay_page(
        self,
        request: dict[str, Any],
        timeout: float,
        watch: Callable[[Awaitable[Message]], Awaitable[Message]] | None,
    ) -> tuple[list[JournalEntry], bool, int]:
        """One ``replay_request``: its entries (a ``lost`` one first, at the cursor, if any were dropped),
        whether there are more, and the cursor to ask from next.

        The cursor moves past every entry the nanny sent, skipped ones included, and past the dropped
        ones when a page holds nothing else (the journal's ``last_seq``: no entry up to it matches): a
        cursor left in place would ask for, and be told of, the same dropped entries again at once."""
        reply = await self._control_channel().call_for_message("replay", request, timeout, watch)
        content = reply.content
        page: list[JournalEntry] = []
        if content["lost"]:
            page.append(
                JournalEntry(seq=request["since"], received=0.0, kind="lost", content={"count": content["lost"]})
            )
        buffers = iter(reply.buffers)
        for entry in content["entries"]:
            frames = [bytes(next(buffers)) for _ in range(entry["frames"])]
            seq, received, kind = int(entry["seq"]), float(entry["received"]), str(entry["kind"])
            if kind == "iopub":
                try:  # the kernel's signature, checked with its key; no replay check: a replay repeats by design
                    message = self.session.deserialize([DELIMITER, *frames], fresh=False)
                except ProtocolError as exc:
                    log.warning("skipped journal entry %d of kernel %s: %s", seq, self.kernel_id[:8], exc)
                    continue
                message.seq = seq
                page.append(JournalEntry(seq=seq, received=received, kind=kind, message=message))
            else:
                page.append(JournalEntry(seq=seq, received=received, kind=kind, content=json.loads(frames[0])))
        if content["entries"]:
            cursor = int(content["entries"][-1]["seq"])
        elif content["lost"]:
            cursor = max(int(request["since"]), int(content["last_seq"]))
        else:
            cursor = int(request["since"])
        return page, bool(content["more"]), cursor

    async def events(self) -> AsyncIterator[Message]:
        """Iterate over the nanny's events, from now until it says ``nanny_exiting``.

        Raises :class:`NannyUnavailable` if the nanny stops beating.
        """
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self.add_event_handler(queue.put_nowait)
        try:
            await self.subscribe()
            while True:
                event = await self._next_or_unavailable(queue.get())
                yield event
                if event.msg_type == "nanny_exiting":
                    return
        finally:
            self.remove_event_handler(queue.put_nowait)

    async def wait(self) -> ExitStatus:
        """Wait for the kernel's next death and return how it ended.

        Returns at once with the last exit if the kernel is not running now.
        Raises :class:`NannyUnavailable` if the nanny stops beating meanwhile.
        """
        died: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        def on_event(event: Message) -> None:
            if event.msg_type == "kernel_died" and not died.done():
                died.set_result(event)

        self.add_event_handler(on_event)
        try:
            await self.subscribe()
            info = await self.info()
            if not info["alive"] and info["last_exit"] is not None:
                return ExitStatus.from_dict(info["last_exit"])
            event = await self._next_or_unavailable(died)
        finally:
            self.remove_event_handler(on_event)
        return ExitStatus.from_dict(event.content)

    async def _next_or_unavailable(self, awaitable: Any, *, unless: asyncio.Future[Message] | None = None) -> Message:
        """Await ``awaitable`` while watching the heartbeat; a silent nanny raises NannyUnavailable.

        ``unless`` done first (the nanny said it is exiting) raises ``_NannyExited``.
        """
        future = asyncio.ensure_future(awaitable)
        watched = {future} if unless is None else {future, unless}
        limit = self.heartbeat_interval * MISSED_HEARTBEATS
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.wait(watched, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
                if future.done():
                    result: Message = future.result()
                    return result
                if unless is not None and unless.done():
                    raise _NannyExited
                if loop.time() - self._last_event > limit:
                    raise NannyUnavailable(
                        f"the nanny of kernel {self.kernel_id[:8]} missed {MISSED_HEARTBEATS} heartbeats"
                    )
        finally:
            future.cancel()


class _NannyExited(Exception):
    """The nanny said ``nanny_exiting`` while a follower waited for more (internal to ``follow``)."""


class BlockingManagerClient(BlockingTwin):
    """:class:`ManagerClient` with blocking methods, on a private background loop.

    Event handlers run in that background thread.
    """

    _thread_name = "kernel-nanny-manager"

    def __init__(self, connection_info: Mapping[str, Any], *, timeout: float = NANNY_REQUEST_TIMEOUT) -> None:
        super().__init__(ManagerClient(connection_info, timeout=timeout))

    @classmethod
    def from_connection_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> BlockingManagerClient:
        """A manager client for the nanny whose connection file is at ``path``."""
        return cls(load_connection_info(path), **kwargs)

    @property
    def kernel_id(self) -> str:
        return self._async.kernel_id  # type: ignore[no-any-return]

    def add_event_handler(self, handler: EventHandler) -> None:
        self._loop.call(self._async.add_event_handler, handler)

    def remove_event_handler(self, handler: EventHandler) -> None:
        self._loop.call(self._async.remove_event_handler, handler)

    subscribe = blocking(ManagerClient.subscribe)
    request = blocking(ManagerClient.request)
    info = blocking(ManagerClient.info)
    is_alive = blocking(ManagerClient.is_alive)
    interrupt = blocking(ManagerClient.interrupt)
    signal = blocking(ManagerClient.signal)
    kill = blocking(ManagerClient.kill)
    restart = blocking(ManagerClient.restart)
    shutdown = blocking(ManagerClient.shutdown)
    wait = blocking(ManagerClient.wait)
