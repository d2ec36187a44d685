"""The async Jupyter client: one object, five channels, replies routed by msg_id.

Each channel socket is created when first needed and read by one background
task. Replies (shell, control) resolve the future of the request they answer;
iopub messages go to watchers registered for their parent request and to
global handlers; input requests on stdin go to the hook of the request that
asked. Nothing is read by polling and no message is dropped because somebody
else was waiting for a different one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from .._exceptions import ClientClosed, ConnectionInfoError
from .._lifetime import Lifetime
from .._tasks import TaskGroup, wait_for
from ..defaults import CLIENT_LINGER_MS, DEFAULT_STARTUP_TIMEOUT, HEARTBEAT_TIMEOUT, IOPUB_CONFIRM_INTERVAL
from ..protocol import Message, Session, channel_url, load_connection_info, normalize_connection_info
from ..protocol.nanny import NANNY_PROTOCOL_VERSION, journal_end
from ._sockets import Replies, connect, read_messages, within
from .manager import ManagerClient

__all__ = ["ExecutionResult", "KernelClient", "PendingExecution"]

log = logging.getLogger("kernel_nanny.client")

OutputHook = Callable[[Message], None]
StdinHook = Callable[[Message], "str | Awaitable[str]"]

_SOCKET_TYPES = {
    "shell": zmq.DEALER,
    "control": zmq.DEALER,
    "stdin": zmq.DEALER,
    "iopub": zmq.SUB,
    "hb": zmq.REQ,
}


@dataclass
class ExecutionResult:
    """What one execution produced: its ``execute_reply`` and its iopub output, in order."""

    reply: Message
    outputs: list[Message] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``ok``, ``error`` or ``aborted``, from the reply."""
        return str(self.reply.content.get("status", "error"))

    @property
    def ok(self) -> bool:
        """True when the code ran without raising."""
        return self.status == "ok"

    @property
    def execution_count(self) -> int | None:
        """The kernel's execution counter for this run (``In [n]``)."""
        return self.reply.content.get("execution_count")

    @property
    def error(self) -> dict[str, Any] | None:
        """``ename``, ``evalue`` and ``traceback`` when the code raised, else None."""
        if self.ok:
            return None
        content = self.reply.content
        return {key: content.get(key) for key in ("ename", "evalue", "traceback")}

    def stream_text(self, name: str = "stdout") -> str:
        """All text the code wrote to ``stdout`` or ``stderr``, concatenated."""
        return "".join(
            m.content.get("text", "") for m in self.outputs if m.msg_type == "stream" and m.content.get("name") == name
        )


class PendingExecution:
    """An ``execute_request`` sent by :meth:`KernelClient.submit_execute`: its outputs gather as they come."""

    def __init__(self, client: KernelClient, msg_id: str, output_hook: OutputHook | None) -> None:
        self.msg_id = msg_id
        self.outputs: list[Message] = []
        self._client = client
        self._output_hook = output_hook
        self._idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reply: asyncio.Future[Message] | None = None

    def _collect(self, out: Message) -> None:
        if out.msg_type == "status":
            if out.content.get("execution_state") == "idle" and not self._idle.done():
                self._idle.set_result(None)
            return
        if out.msg_type == "execute_input":
            return
        self.outputs.append(out)
        if self._output_hook is not None:
            self._output_hook(out)

    async def result(self, timeout: float | None = None) -> ExecutionResult:
        """The reply and the outputs, once the kernel is idle after this request.

        Raises :class:`KernelTimeout` after ``timeout`` seconds (the request
        stays with the kernel; its outputs are no longer gathered).
        """
        assert self._reply is not None

        async def reply_then_idle() -> Message:
            assert self._reply is not None
            reply = await self._reply
            await self._idle
            return reply

        try:
            reply: Message = await within(reply_then_idle(), timeout, "the execution")
        finally:
            self._forget()
        return ExecutionResult(reply, self.outputs)

    def discard(self) -> None:
        """Stop gathering this execution's outputs (it stays with the kernel)."""
        self._forget()

    def _forget(self) -> None:
        self._client._iopub_watchers.pop(self.msg_id, None)
        self._client._stdin_hooks.pop(self.msg_id, None)
        self._client._replies.forget(self.msg_id)


class KernelClient(Lifetime):
    """Speaks the Jupyter messaging protocol to one kernel (asyncio).

    Build it from connection info (a dict) or :meth:`from_connection_file`, use
    it as ``async with`` (or call :meth:`close`), and await requests::

        async with KernelClient(info) as kc:
            await kc.wait_for_ready()
            result = await kc.execute_interactive("print(6 * 7)")

    **Where iopub comes from.** A kernel's iopub is a PUB socket, which drops
    messages for a subscriber that falls behind. A kernel behind a nanny has
    a journal of all of them (:meth:`ManagerClient.follow
    <kernel_nanny.ManagerClient.follow>`), and with ``journal=True`` (the
    default when ``connection_info`` names such a nanny) the client reads
    iopub from there instead: every message exactly once, in order, however
    slow the reader, each with its sequence number (``msg.seq``;
    :attr:`last_seq` is the last one handled). ``since`` resumes after a
    ``seq`` remembered from an earlier client, so a client that went away
    gets exactly what it missed, then the rest live; by default the client
    starts at the journal's end. Entries the bounded journal dropped before
    they were read are counted in :attr:`lost` and logged, never skipped in
    silence. ``journal=False`` subscribes to the kernel's socket.

    ``iopub_topics`` limits the kernel-socket subscription to messages whose
    topic starts with one of them (default: everything). A watcher that needs
    only some messages should say which: a kernel whose iopub is an XPUB
    socket (ipykernel 7) greets each *new* subscription with
    ``iopub_welcome``, and a catch-all subscription taken first would keep the
    next client's from being new. Giving topics implies ``journal=False``.
    """

    def __init__(
        self,
        connection_info: Mapping[str, Any],
        *,
        session: Session | None = None,
        context: zmq.asyncio.Context | None = None,
        iopub_topics: Sequence[bytes] = (b"",),
        journal: bool | None = None,
        since: int | None = None,
    ) -> None:
        self.connection_info = normalize_connection_info(connection_info)
        self.iopub_topics = tuple(iopub_topics)
        self.journal = _journal_wanted(self.connection_info, journal, self.iopub_topics, since)
        #: The journal's seq of the last iopub message (or marker) handled: ``since`` for a later client.
        self.last_seq: int | None = since
        #: How many journal entries were dropped (by the bounded journal) before this client read them.
        self.lost = 0
        self._journal_reader: ManagerClient | None = None
        self.session = session or Session(self.connection_info["key"], self.connection_info["signature_scheme"])
        self._context = context or zmq.asyncio.Context.instance()
        self._sockets: dict[str, zmq.asyncio.Socket] = {}
        self._tasks = TaskGroup(log)
        self._replies = Replies()
        self._iopub_watchers: dict[str, OutputHook] = {}
        self._iopub_handlers: list[OutputHook] = []
        self._reply_handlers: list[OutputHook] = []
        self._stdin_hooks: dict[str, StdinHook] = {}
        self._iopub_confirmed = False
        self._hb_lock: asyncio.Lock | None = None

    @classmethod
    def from_connection_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> KernelClient:
        """A client for the kernel described by a connection file (errors name the file)."""
        return cls(load_connection_info(path), **kwargs)

    def __repr__(self) -> str:
        info = self.connection_info
        where = f"{info['transport']}://{info['ip']}"
        return f"<{type(self).__name__} {where} shell={info['shell_port']} state={self.state.value}>"

    # -- lifetime ---------------------------------------------------------

    async def __aenter__(self) -> KernelClient:
        await super().__aenter__()
        await self.start()
        return self

    async def start(self) -> None:
        """Connect the shell, stdin, control and iopub channels (idempotent).

        Requests connect the channel they need on their own; calling this first
        subscribes to iopub early so that no broadcast is missed.
        """
        self._start_iopub()
        for channel in ("shell", "control"):
            self._socket(channel)

    def _begin_closing(self) -> None:
        """Fail pending requests, stop the readers, close the sockets."""
        self._replies.fail_all(ClientClosed("the client was closed while waiting for a reply"))
        self._iopub_watchers.clear()
        self._stdin_hooks.clear()
        self._tasks.cancel()
        for sock in self._sockets.values():
            sock.close(linger=CLIENT_LINGER_MS)
        self._sockets.clear()

    async def _finish_closing(self) -> None:
        await self._tasks.cancel_all()  # the readers have stopped
        if self._journal_reader is not None:
            self._journal_reader.close()

    # -- sockets ----------------------------------------------------------

    def _start_iopub(self) -> None:
        """Make sure iopub is read: from the kernel's socket, or from the nanny's journal."""
        if not self.journal:
            self._socket("iopub")
        elif self._journal_reader is None:
            self._check_open()
            self._journal_reader = ManagerClient(self.connection_info, context=self._context)
            self._tasks.spawn(self._follow_journal(self._journal_reader), name="kernel-client-journal")

    async def _follow_journal(self, manager: ManagerClient) -> None:
        if self.last_seq is None:
            self.last_seq = journal_end(await manager.info())
        async for entry in manager.follow(self.last_seq):
            if entry.kind == "lost":
                self.lost += entry.content["count"]
                log.warning(
                    "%d iopub messages of kernel %s were dropped from its journal before this client read them "
                    "(it keeps the most recent; raise [journal] memory/disk for more)",
                    entry.content["count"],
                    manager.kernel_id[:8],
                )
                continue
            self.last_seq = entry.seq
            if entry.message is not None:
                self._on_iopub(entry.message)

    def _socket(self, channel: str) -> zmq.asyncio.Socket:
        self._check_open()
        sock = self._sockets.get(channel)
        if sock is not None:
            return sock
        # The kernel routes input_request to the stdin socket that shares the
        # identity of the shell socket that sent the execute_request.
        identity = self.session.session_id.encode() if channel in ("shell", "stdin") else None
        url = channel_url(self.connection_info, channel)
        sock = connect(
            self._context,
            _SOCKET_TYPES[channel],
            url,
            self.connection_info,
            identity=identity,
            topics=self.iopub_topics,
        )
        self._sockets[channel] = sock
        if channel != "hb":
            handler = {"shell": self._on_reply, "control": self._on_reply, "iopub": self._on_iopub}.get(
                channel, self._on_stdin
            )
            self._tasks.spawn(read_messages(sock, self.session, handler, channel), name=f"kernel-client-{channel}")
        if channel == "shell":
            self._socket("stdin")
        return sock

    def _on_reply(self, msg: Message) -> None:
        if self._replies.resolve(msg):
            return
        if not self._reply_handlers:
            log.debug("reply %s to %s had no waiter", msg.msg_type, msg.parent_id)
        for hook in self._reply_handlers:
            try:
                hook(msg)
            except Exception:
                log.exception("reply handler %r failed on %s", hook, msg.msg_type)

    def _on_iopub(self, msg: Message) -> None:
        watcher = self._iopub_watchers.get(msg.parent_id or "")
        for hook in ([watcher] if watcher else []) + self._iopub_handlers:
            try:
                hook(msg)
            except Exception:
                log.exception("iopub handler %r failed on %s", hook, msg.msg_type)

    def _on_stdin(self, msg: Message) -> None:
        if msg.msg_type != "input_request":
            log.debug("ignored %s on stdin", msg.msg_type)
            return
        hook = self._stdin_hooks.get(msg.parent_id or "")
        if hook is None:
            log.warning("the kernel asked for input but no stdin hook is registered: %s", msg.content.get("prompt"))
            return
        self._tasks.spawn(self._answer_input(hook, msg), name="kernel-client-input")

    async def _answer_input(self, hook: StdinHook, request: Message) -> None:
        value = hook(request)
        if inspect.isawaitable(value):
            value = await value
        await self.input(str(value), parent=request)

    # -- requests ---------------------------------------------------------

    async def _send(self, channel: str, msg: Message) -> None:
        await self._socket(channel).send_multipart(self.session.serialize(msg))

    async def request(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        *,
        channel: str = "shell",
        timeout: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """Send any request on ``channel`` and return its reply.

        Raises :class:`KernelTimeout` if no reply comes within ``timeout``
        seconds (None waits for ever), :class:`ClientClosed` if the client is
        closed meanwhile.
        """
        msg = self.session.msg(msg_type, content, metadata=metadata)
        return await self._roundtrip(channel, msg, timeout)

    async def _roundtrip(self, channel: str, msg: Message, timeout: float | None) -> Message:
        future = self._replies.expect(msg.msg_id)
        try:
            await self._send(channel, msg)
            reply: Message = await within(future, timeout, f"the reply to {msg.msg_type}")
            return reply
        finally:
            self._replies.forget(msg.msg_id)

    async def send(self, msg_type: str, content: dict[str, Any] | None = None, *, channel: str = "shell") -> str:
        """Send a request without waiting for its reply; returns its msg_id.

        Its reply goes to the reply handlers (:meth:`add_reply_handler`).
        """
        msg = self.session.msg(msg_type, content)
        await self._send(channel, msg)
        return msg.msg_id

    def send_nowait(self, msg_type: str, content: dict[str, Any] | None = None, *, channel: str = "shell") -> str:
        """Queue a request for sending and return its msg_id at once (call it on the client's loop).

        For callers that cannot await, such as jupyter_client-style code
        (``msg_id = kc.execute(code)``). Requests queued one after the other
        are sent in that order; the reply goes to the reply handlers.
        """
        msg = self.session.msg(msg_type, content)
        self._tasks.spawn(self._send(channel, msg), name=f"kernel-client-send-{msg_type}")
        return msg.msg_id

    def add_reply_handler(self, handler: OutputHook) -> None:
        """Call ``handler(reply)`` for each shell or control reply that no request awaits.

        Those are the replies to :meth:`send` and :meth:`send_nowait`; the
        reply methods (:meth:`execute`, :meth:`request`...) keep theirs.
        """
        self._reply_handlers.append(handler)

    def remove_reply_handler(self, handler: OutputHook) -> None:
        """Stop calling ``handler`` (added with :meth:`add_reply_handler`)."""
        self._reply_handlers.remove(handler)

    async def kernel_info(self, *, timeout: float | None = None) -> Message:
        """The kernel's ``kernel_info_reply``: language, versions, protocol version."""
        return await self.request("kernel_info_request", timeout=timeout)

    async def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool = False,
        stop_on_error: bool = True,
        timeout: float | None = None,
    ) -> Message:
        """Run ``code`` and return the ``execute_reply`` (outputs go to iopub handlers)."""
        content = _execute_content(code, silent, store_history, user_expressions, allow_stdin, stop_on_error)
        return await self.request("execute_request", content, timeout=timeout)

    async def complete(self, code: str, cursor_pos: int | None = None, *, timeout: float | None = None) -> Message:
        """Completions at ``cursor_pos`` (default: the end of ``code``)."""
        content = {"code": code, "cursor_pos": len(code) if cursor_pos is None else cursor_pos}
        return await self.request("complete_request", content, timeout=timeout)

    async def inspect(
        self, code: str, cursor_pos: int | None = None, detail_level: int = 0, *, timeout: float | None = None
    ) -> Message:
        """Documentation of the object at ``cursor_pos``; ``detail_level=1`` asks for the source too."""
        content = {
            "code": code,
            "cursor_pos": len(code) if cursor_pos is None else cursor_pos,
            "detail_level": detail_level,
        }
        return await self.request("inspect_request", content, timeout=timeout)

    async def history(
        self,
        *,
        raw: bool = True,
        output: bool = False,
        hist_access_type: str = "range",
        timeout: float | None = None,
        **options: Any,
    ) -> Message:
        """Search the history; ``options`` are the access type's fields.

        ``session``, ``start``, ``stop`` (range), ``n`` (tail, search), ``pattern``, ``unique`` (search).
        """
        if hist_access_type == "tail":
            options.setdefault("n", 10)
        content = {"raw": raw, "output": output, "hist_access_type": hist_access_type, **options}
        return await self.request("history_request", content, timeout=timeout)

    async def is_complete(self, code: str, *, timeout: float | None = None) -> Message:
        """Whether ``code`` is complete, incomplete (with an indent to continue) or invalid."""
        return await self.request("is_complete_request", {"code": code}, timeout=timeout)

    async def comm_info(self, target_name: str | None = None, *, timeout: float | None = None) -> Message:
        """The kernel's open comms, optionally only those of ``target_name``."""
        content = {} if target_name is None else {"target_name": target_name}
        return await self.request("comm_info_request", content, timeout=timeout)

    async def shutdown(self, restart: bool = False, *, timeout: float | None = None) -> Message:
        """Ask the kernel to shut down (control channel) and return its reply."""
        return await self.request("shutdown_request", {"restart": restart}, channel="control", timeout=timeout)

    async def interrupt(self, *, timeout: float | None = None) -> Message:
        """Send ``interrupt_request`` on the control channel (for ``interrupt_mode: message`` kernels)."""
        return await self.request("interrupt_request", {}, channel="control", timeout=timeout)

    async def input(self, value: str, *, parent: Message | None = None) -> None:
        """Answer an ``input_request`` on the stdin channel."""
        msg = self.session.msg("input_reply", {"value": value}, parent=parent)
        await self._send("stdin", msg)

    # -- iopub --------------------------------------------------------------

    def add_iopub_handler(self, handler: OutputHook) -> None:
        """Call ``handler(msg)`` for every iopub message (in the client's event loop)."""
        self._start_iopub()
        self._iopub_handlers.append(handler)

    def remove_iopub_handler(self, handler: OutputHook) -> None:
        """Stop calling ``handler`` (added with :meth:`add_iopub_handler`)."""
        self._iopub_handlers.remove(handler)

    async def execute_interactive(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        stop_on_error: bool = True,
        output_hook: OutputHook | None = None,
        stdin_hook: StdinHook | None = None,
        timeout: float | None = None,
    ) -> ExecutionResult:
        """Run ``code`` and gather everything it publishes until the kernel is idle.

        ``output_hook(msg)`` sees each output as it arrives (to stream it);
        ``stdin_hook(input_request)`` answers ``input()`` calls and may be async.
        Without a stdin hook the kernel is told stdin is unavailable.
        """
        loop = asyncio.get_running_loop()
        began = loop.time()
        submitted = self.submit_execute(
            code,
            silent=silent,
            store_history=store_history,
            user_expressions=user_expressions,
            stop_on_error=stop_on_error,
            output_hook=output_hook,
            stdin_hook=stdin_hook,
        )
        pending: PendingExecution = await within(submitted, timeout, "the execution")
        return await pending.result(None if timeout is None else max(0.0, timeout - (loop.time() - began)))

    async def submit_execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
        stop_on_error: bool = True,
        output_hook: OutputHook | None = None,
        stdin_hook: StdinHook | None = None,
    ) -> PendingExecution:
        """Send an ``execute_request`` now and return at once; :meth:`PendingExecution.result` waits for it.

        :meth:`execute_interactive` in two steps, so that several executions
        can be queued in the kernel before the first ends (the kernel runs
        them in order, and with ``stop_on_error`` aborts the rest after an error).
        """
        self._start_iopub()
        if not self._iopub_confirmed:
            # Until iopub is proven subscribed, output (and the idle status
            # awaited) could be lost: confirm it first, once.
            await self.wait_for_ready(timeout=None)
        content = _execute_content(code, silent, store_history, user_expressions, stdin_hook is not None, stop_on_error)
        msg = self.session.msg("execute_request", content)
        pending = PendingExecution(self, msg.msg_id, output_hook)
        self._iopub_watchers[msg.msg_id] = pending._collect
        if stdin_hook is not None:
            self._stdin_hooks[msg.msg_id] = stdin_hook
        reply = self._replies.expect(msg.msg_id)
        try:
            await self._send("shell", msg)
        except BaseException:
            pending._forget()
            raise
        pending._reply = reply
        return pending

    async def wait_for_ready(self, timeout: float | None = DEFAULT_STARTUP_TIMEOUT) -> Message:
        """Wait until the kernel answers ``kernel_info`` and iopub is known to be connected.

        iopub is proven connected by a message that this call caused: ipykernel's
        ``iopub_welcome`` (sent when a subscription arrives) or the status every
        kernel publishes for our ``kernel_info_request``. Until then the request
        is repeated, so no output is lost to a late subscription, also after the
        kernel restarted under a connected client. No fixed sleep. Returns the
        ``kernel_info_reply``.
        """
        asked: set[str] = set()
        confirmed = asyncio.Event()

        def proves_subscription(msg: Message) -> None:
            if msg.msg_type == "iopub_welcome" or msg.parent_id in asked:
                confirmed.set()

        async def ready() -> Message:
            while True:
                request = self.session.msg("kernel_info_request")
                asked.add(request.msg_id)
                reply = await self._roundtrip("shell", request, None)
                try:
                    await wait_for(confirmed.wait(), IOPUB_CONFIRM_INTERVAL)
                    return reply
                except asyncio.TimeoutError:
                    log.debug("iopub not confirmed yet; asking kernel_info again")

        self.add_iopub_handler(proves_subscription)
        try:
            info_reply: Message = await within(ready(), timeout, "kernel readiness")
        finally:
            self.remove_iopub_handler(proves_subscription)
        self._iopub_confirmed = True
        return info_reply

    # -- heartbeat ----------------------------------------------------------

    async def heartbeat(self, timeout: float = HEARTBEAT_TIMEOUT) -> bool:
        """Ping the kernel's heartbeat channel; True if it echoed within ``timeout``."""
        if self._hb_lock is None:
            self._hb_lock = asyncio.Lock()
        async with self._hb_lock:
            sock = self._socket("hb")
            payload = os.urandom(8)
            try:
                await sock.send(payload)
                return await wait_for(sock.recv(), timeout) == payload
            except asyncio.TimeoutError:
                # A REQ socket that missed its reply is stuck: replace it.
                sock.close(linger=0)
                del self._sockets["hb"]
                return False


def _execute_content(
    code: str,
    silent: bool,
    store_history: bool,
    user_expressions: dict[str, str] | None,
    allow_stdin: bool,
    stop_on_error: bool,
) -> dict[str, Any]:
    return {
        "code": code,
        "silent": silent,
        "store_history": store_history,
        "user_expressions": user_expressions or {},
        "allow_stdin": allow_stdin,
        "stop_on_error": stop_on_error,
    }


def _journal_wanted(
    info: Mapping[str, Any], journal: bool | None, topics: tuple[bytes, ...], since: int | None
) -> bool:
    """Whether a client reads iopub from the nanny's journal (see :class:`KernelClient`)."""
    follows = nanny_follows(info)
    if journal is None:
        journal = follows and topics == (b"",)
    if journal and not follows:
        raise ConnectionInfoError(
            "journal=True needs a kernel behind a nanny of protocol 1.2 or later that keeps a journal (its "
            "connection info names nanny_control_port and nanny_protocol_version, and no nanny_journal: false); "
            f"this one has protocol {info.get('nanny_protocol_version')!r}, nanny_journal {info.get('nanny_journal')!r}"
        )
    if journal and topics != (b"",):
        raise ValueError("iopub_topics filter the kernel's socket: give them with journal=False")
    if since is not None and not journal:
        raise ValueError("since= resumes from the nanny's journal: it needs journal=True (a kernel behind a nanny)")
    if since is not None and (not isinstance(since, int) or since < 0):
        raise ValueError(f"since must be a journal sequence number >= 0, got {since!r}")
    return journal


def nanny_follows(info: Mapping[str, Any]) -> bool:
    """Whether the kernel's nanny answers ``replay`` requests that wait (protocol 1.2)."""
    if not isinstance(info.get("nanny_control_port"), int) or info.get("nanny_journal") is False:
        return False
    major, _, minor = str(info.get("nanny_protocol_version", "")).partition(".")
    ours = NANNY_PROTOCOL_VERSION.split(".")[0]
    return major == ours and minor.isdigit() and int(minor) >= 2
