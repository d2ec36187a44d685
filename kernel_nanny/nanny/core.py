"""KernelNanny: the supervisor that owns one kernel.

A nanny launches its kernel through a provider, then:

* watches the kernel process and learns of its death from the exit itself;
* restarts it in place (same connection info) after an unexpected death, within
  its :class:`~kernel_nanny.config.RestartPolicy`;
* captures the kernel process's own stdout/stderr into a bounded log file and
  ``stream`` events;
* answers requests on ``nanny_control`` (ROUTER) and publishes what happens on
  ``nanny_events`` (XPUB), both signed with the kernel's key.

Every death goes through one place, :meth:`KernelNanny._supervise`, which reads
the *intent* recorded by whoever caused it (a kill, a restart, a shutdown, the
kernel's own shutdown_request from a client) and carries out what
:mod:`~kernel_nanny.nanny.supervision` decides: what to publish and whether to restart.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import enum
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import zmq
import zmq.asyncio

from .. import __version__
from .._exceptions import InvalidRequest, KernelNotRunning, LaunchError, NannyStopping
from .._logging import KernelLogAdapter
from .._serving import BufferedReply, Handler, RequestServer, bind
from .._tasks import TaskGroup
from ..client.running import ProcessIdentity
from ..defaults import DEFAULT_HEARTBEAT_INTERVAL, REPLAY_MAX_BYTES, REPLAY_MAX_WAIT, SERVER_LINGER_MS
from ..discovery.resolved import ResolvedKernel
from ..launch.connection import write_connection_file
from ..launch.request import LaunchRequest, valid_kernel_name
from ..launch.spawn import StartedKernel
from ..paths import nanny_state_dir, public_connection_file
from ..protocol import (
    NANNY_PROTOCOL_VERSION,
    ConnectionInfo,
    ExitStatus,
    KernelManager,
    Message,
    Session,
    endpoint_port,
    endpoint_url,
    ipc_socket_paths,
    parse_signal,
)
from ..protocol.nanny import HeartbeatContent, JournalInfo, KernelDiedContent, NannyInfo
from .journal import Journal
from .oom import OomCounter
from .output_log import DEFAULT_LOG_MAX_BYTES, OutputLog
from .owner import OwnerWatch
from .recorder import IopubRecorder
from .restarts import RestartBudget
from .startup import kernel_params
from .supervision import Decision, Intent, Next, after_death, after_failed_restart, restart_superseded

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "KernelNanny", "NannyState"]

log = logging.getLogger("kernel_nanny.nanny")

#: The kernel's iopub messages the nanny acts on (it journals them all, see .recorder): status and shutdown
#: replies, which ipykernel publishes as ``kernel.<id>.status``/``kernel.<id>.shutdown`` (other kernels: ``status``).
IOPUB_TOPICS = (b"kernel.", b"status", b"shutdown")
#: Nanny events that also go into the journal, as markers in the output's sequence.
JOURNAL_MARKERS = frozenset({"kernel_started", "kernel_died", "kernel_restarted", "restart_failed"})
#: What a client may ask a pooled kernel without disturbing it (its start-up, readiness probes): anything
#: else it answers on iopub (code run, a comm opened, a completion) means it is no longer fresh.
_UNDISTURBING = frozenset({None, "", "kernel_info_request"})
#: ipc "ports" of the nanny sockets (the kernel's channels use 1-5 under the same prefix).
_IPC_CONTROL, _IPC_EVENTS = 6, 7


class NannyState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    DEAD = "dead"
    STOPPING = "stopping"


class KernelNanny:
    """Owns one kernel: launches, supervises, restarts, captures output, answers requests."""

    def __init__(
        self,
        kernel_id: str,
        request: LaunchRequest,
        resolved: ResolvedKernel,
        *,
        log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
        started: StartedKernel | None = None,
    ) -> None:
        self.kernel_id = kernel_id
        self._log = KernelLogAdapter(log, kernel_id, pid=self._kernel_pid)
        #: What to run and how (validated by the starter; see :mod:`kernel_nanny.nanny.startup`).
        self.request = request
        #: The kernel's command or provider, resolved by the starter: the nanny never looks a type up.
        self.resolved = resolved
        #: The command's launch, already begun before the nanny's heavy imports (``python -m kernel_nanny.nanny``).
        self._started = started
        self.type_id = request.kernel_type
        self.name = request.name
        #: The daemon pool the kernel waits in until a launch claims it (see :meth:`_on_claim`).
        self.pool = request.pool
        #: Why a pooled kernel can no longer be handed out as a fresh one (None while it can).
        self.disturbed: str | None = None
        self.cwd = request.cwd
        self.restart_policy = request.restart_policy
        self.heartbeat_interval = request.heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL
        self.log_max_bytes = log_max_bytes
        self.state = NannyState.STARTING
        self.restart_count = 0
        self.started_at = time.time()
        self.kernel_started_at: float | None = None
        self.execution_state = "starting"
        self.execution_state_since = time.time()
        self.last_activity = time.time()
        self.last_exit: ExitStatus | None = None
        self.connection_info: ConnectionInfo = {}
        self.connection_file: Path | None = None
        self.manager: KernelManager | None = None
        self._state_dir = nanny_state_dir(kernel_id)
        self._file_names = (b"", b"")  # (private, public) connection file, set at start (see _start)
        self._budget = RestartBudget(self.restart_policy)
        self._intent: Intent | None = None
        self._lifecycle = asyncio.Lock()
        self._generation = 0
        self._generation_changed = asyncio.Condition()
        self._stopped = asyncio.Event()
        self._stop_reason = "shutdown requested"
        self._owner: OwnerWatch | None = None
        self._tasks = TaskGroup(log)
        self._session: Session | None = None
        self._control: zmq.asyncio.Socket | None = None
        self._events: zmq.asyncio.Socket | None = None
        self._output_log: OutputLog | None = None
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
        self._oom: OomCounter | None = None
        self._journal: Journal | None = None
        self._recorder: IopubRecorder | None = None
        self._handlers: dict[str, Handler] = {
            "is_alive_request": self._on_is_alive,
            "interrupt_request": self._on_interrupt,
            "signal_request": self._on_signal,
            "kill_request": self._on_kill,
            "restart_request": self._on_restart,
            "shutdown_request": self._on_shutdown,
            "info_request": self._on_info,
            "replay_request": self._on_replay,
            "claim_request": self._on_claim,
        }

    def __repr__(self) -> str:
        pid = getattr(self.manager, "pid", None)
        limit = self.restart_policy.max_restarts
        return (
            f"<KernelNanny kernel={self.type_id} pid={pid} state={self.state.value} "
            f"restarts={self._budget.used}/{limit}>"
        )

    @property
    def log_path(self) -> Path:
        return self._state_dir / "output.log"

    # -- lifetime -----------------------------------------------------------

    async def run(self, on_ready: Callable[[Path], None] | None = None) -> None:
        """Launch the kernel, serve until stopped, then tear everything down.

        A stop during the launch (SIGTERM from a starter that gave up) cancels
        the launch, so the provider undoes what it began (a queued job is cancelled).
        """
        starting = asyncio.ensure_future(self._start())
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                raise LaunchError(f"{self.type_id} was not started: {self._stop_reason}")
            starting.result()
        except BaseException:
            starting.cancel()
            await self._teardown()
            raise
        finally:
            stopped.cancel()
        assert self.connection_file is not None
        if on_ready is not None:
            on_ready(self.connection_file)
        await self._stopped.wait()
        await self._teardown()

    def stop(self, reason: str) -> None:
        """Shut the kernel down and exit (from a signal handler or a request)."""
        self._stop_reason = reason
        self._stopped.set()

    async def _start(self) -> None:
        if self.request.owner is not None:  # held from the start: the owner may end while the kernel starts
            assert self.request.owner_start_time is not None  # the request reads it where it is made
            self._owner = OwnerWatch.open(self.request.owner, self.request.owner_start_time)
        self._output_log = OutputLog(self.log_path, self.log_max_bytes)
        request = replace(self.request, params=kernel_params(self.kernel_id, self.request.params))
        # The kernel only knows its private connection file; what it prints about it (ipykernel's
        # "--existing .../kernel.json") is shown with the file clients use.
        assert request.params.connection_file is not None
        self._file_names = (request.params.connection_file.encode(), bytes(public_connection_file(self.kernel_id)))
        started, self._started = self._started, None
        self.connection_info, self.manager = await self.resolved.launch(request, started=started)
        if self.manager is None:
            raise LaunchError(f"provider of {self.type_id} gave no manager: a nanny cannot supervise it")
        self._session = Session(self.connection_info["key"], self.connection_info["signature_scheme"])
        add_listener = getattr(self.manager, "add_output_listener", None)
        if add_listener is not None:
            add_listener(self._on_output)
        self._bind_sockets()
        self.connection_file = write_connection_file(self._public_info(), self.kernel_id)
        # Our own reader of the kernel's iopub, into the journal: a small replay window keeps the nanny lean.
        kernel_session = Session(
            self.connection_info["key"], self.connection_info["signature_scheme"], replay_window=4096
        )
        limits = self.request.journal
        if not limits.off:
            self._journal = Journal(self._state_dir, memory_bytes=limits.memory, disk_bytes=limits.disk)
        self._recorder = IopubRecorder(
            self.connection_info, kernel_session, self._journal, self._on_kernel_iopub, IOPUB_TOPICS
        )
        self._kernel_running()
        self._publish("kernel_started", {"pid": self._kernel_pid()})
        self._tasks.spawn(self._supervise(), name="nanny-supervise")
        assert self._control is not None
        server = RequestServer(
            self._control,
            self._session,
            self._handlers,
            log=log,
            label="nanny_control",
            tasks=self._tasks,
            after_reply=self._stop_after_shutdown,
        )
        self._tasks.spawn(server.serve(), name="nanny-control")
        self._tasks.spawn(self._watch_subscriptions(), name="nanny-subscriptions")
        self._tasks.spawn(self._beat(), name="nanny-heartbeat")
        if self._owner is not None:
            self._tasks.spawn(self._stop_with_owner(self._owner), name="nanny-owner")
        self._log.info("%s ready: %s", self.type_id, self.connection_file)

    async def _stop_with_owner(self, owner: OwnerWatch) -> None:
        """The kernel is its owner's: when that process ends (an owner gone already: at once), so does the kernel."""
        await owner.ended()
        self._log.info("owner process %d ended: shutting the kernel down", owner.pid)
        self.stop(f"its owner, process {owner.pid}, ended")

    def _bind_sockets(self) -> None:
        context = zmq.asyncio.Context.instance()
        self._control = context.socket(zmq.ROUTER)
        self._events = context.socket(zmq.XPUB)
        self._events.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscription, not just the first
        info = self.connection_info
        curve = (
            (info["curve_publickey"].encode(), info["curve_secretkey"].encode())
            if info.get("curve_secretkey")
            else None
        )
        for sock, key, ipc_port in (
            (self._control, "nanny_control_port", _IPC_CONTROL),
            (self._events, "nanny_events_port", _IPC_EVENTS),
        ):
            sock.linger = SERVER_LINGER_MS
            port = ipc_port if info["transport"] == "ipc" else "*"  # tcp: any free port
            endpoint = bind(sock, endpoint_url(info["transport"], info["ip"], port), curve_keypair=curve)
            info[key] = endpoint_port(endpoint)

    def _public_info(self) -> dict[str, Any]:
        return {
            **self.connection_info,
            "kernel_id": self.kernel_id,
            "kernel_type": self.type_id,
            "name": self.name,
            "pool": self.pool,
            "nanny_pid": os.getpid(),
            # With the pid, the proof that a process is this nanny (a pid alone may pass to another program).
            "nanny_start_time": ProcessIdentity.of(os.getpid()).start_time,
            "nanny_host": socket.gethostname(),
            "heartbeat_interval": self.heartbeat_interval,
            "nanny_protocol_version": NANNY_PROTOCOL_VERSION,
            # Whether clients can follow the journal instead of the kernel's iopub (see KernelClient).
            "nanny_journal": not self.request.journal.off,
        }

    async def _teardown(self) -> None:
        self.state = NannyState.STOPPING
        self._intent = "shutdown"
        await self._tasks.cancel_all()
        if self._owner is not None:
            self._owner.close()
        if self._recorder is not None:
            await self._recorder.close()
        if self.manager is not None:
            alive = await self.manager.is_alive()
            try:
                async with self._lifecycle:
                    await self.manager.shutdown()
            except Exception:
                self._log.exception("shutting the kernel down failed")
            if alive:
                self.last_exit = await self.manager.wait()
                self._publish_death(self.last_exit, restarting=False, requested=True)
        if self._journal is not None:
            self._journal.close()  # the record is complete: followers waiting for more are answered
        if self._output_log is not None:
            self._output_log.close()
        # The files go first: once a client hears nanny_exiting, the kernel is gone from listings and disk.
        if self.connection_file is not None:
            self.connection_file.unlink(missing_ok=True)
        shutil.rmtree(self._state_dir, ignore_errors=True)
        self._log.info("nanny exiting: %s", self._stop_reason)
        self._publish("nanny_exiting", {"reason": self._stop_reason})
        for sock in (self._control, self._events):
            if sock is not None:
                sock.close(linger=SERVER_LINGER_MS)
        for path in ipc_socket_paths(self.connection_info):  # ours; the kernel's went with it
            path.unlink(missing_ok=True)

    # -- supervision ------------------------------------------------------

    def _kernel_pid(self) -> int | None:
        return getattr(self.manager, "pid", None)

    def _kernel_running(self) -> None:
        """A (re)started kernel process is ready: a new generation begins."""
        self.state = NannyState.RUNNING
        self.kernel_started_at = self.last_activity = self.execution_state_since = time.time()
        # Ready means it answered kernel_info: it is idle, whether or not our iopub reader saw that status.
        self.execution_state = "idle"
        self._intent = None
        pid = self._kernel_pid()
        self._oom = OomCounter(pid) if pid else None

    async def _new_generation(self) -> None:
        self._kernel_running()
        async with self._generation_changed:
            self._generation += 1
            self._generation_changed.notify_all()

    async def _supervise(self) -> None:
        """The one place where kernel deaths are observed, reported and acted on (as :mod:`.supervision` decides)."""
        assert self.manager is not None
        while True:
            generation = self._generation
            status = self._classify(await self.manager.wait())
            self.last_exit = status
            decision = after_death(
                self._intent,
                budget_allows=self._budget.allows_another(),
                backoff=self._budget.next_delay(),
                final=status.final,
            )
            if decision.kernel_died is not None:
                died = decision.kernel_died
                self._publish_death(status, restarting=died.restarting, requested=died.requested)
            if decision.next is Next.LEAVE_TO_TEARDOWN:
                return
            if decision.next is Next.STOP_NANNY:
                self.stop("the kernel was shut down by a client")
                return
            await self._recover(decision)
            async with self._generation_changed:
                await self._generation_changed.wait_for(lambda g=generation: self._generation != g)  # type: ignore[misc]

    def _classify(self, status: ExitStatus) -> ExitStatus:
        if status.reason == "killed" and self._oom is not None and self._oom.increased():
            return ExitStatus(exit_code=status.exit_code, signal=status.signal, reason="oom")
        return status

    async def _recover(self, decision: Decision) -> None:
        """Carry out what a death calls for: restart (retrying failed launches), stay dead, or give up."""
        assert self.manager is not None
        last_error = ""
        while decision.next is Next.RESTART:
            self.state = NannyState.RESTARTING
            if decision.delay:
                await asyncio.sleep(decision.delay)  # back-off between restarts: a deliberate pause, not a poll
            async with self._lifecycle:
                if restart_superseded(self._intent) or self.state is not NannyState.RESTARTING:
                    return  # a request (restart, kill, shutdown) took over meanwhile
                if decision.counted:
                    self._budget.record()
                try:
                    await self.manager.restart(now=True)
                except LaunchError as exc:
                    self._log.warning("restart failed: %s", exc)
                    last_error = f"; last error: {exc}"
                    decision = after_failed_restart(
                        budget_allows=self._budget.allows_another(), backoff=self._budget.next_delay()
                    )
                    continue
                self.restart_count += 1
                await self._new_generation()
                self._publish("kernel_restarted", {"pid": self._kernel_pid(), "restart_count": self.restart_count})
                return
        if decision.next in (Next.STAY_DEAD, Next.GIVE_UP):
            self.state = NannyState.DEAD
        if decision.next is Next.GIVE_UP:
            policy = self.restart_policy
            reason = f"{self._budget.used} automatic restarts within {policy.window:g} s (max {policy.max_restarts})"
            self._publish("restart_failed", {"reason": reason + last_error, "restart_count": self.restart_count})
            self._log.warning("giving up: %s", reason)

    def _disturb(self, why: str) -> None:
        self.disturbed = why
        self._log.info("pooled kernel disturbed (it will not be handed out): %s", why)

    def _publish_death(self, status: ExitStatus, *, restarting: bool, requested: bool) -> None:
        self._log.info("died: %s", status)
        if self.pool is not None and self.disturbed is None:
            self._disturb(f"it died while pooled ({status})")
        content: KernelDiedContent = {**status.to_dict(), "restarting": restarting, "requested": requested}
        self._publish("kernel_died", content)

    # -- what the kernel says -------------------------------------------------

    def _on_output(self, name: str, data: bytes) -> None:
        data = data.replace(*self._file_names)
        if self._output_log is not None:
            self._output_log.write(data)
        text = self._decoders[name].decode(data)
        if text:
            self._publish("stream", {"name": name, "text": text})

    def _on_kernel_iopub(self, msg: Message) -> None:
        """Track activity, notice a client asking the kernel itself to shut down, and a pooled kernel used."""
        self.last_activity = time.time()
        if self.pool is not None and self.disturbed is None:
            cause = msg.parent_header.get("msg_type") if isinstance(msg.parent_header, dict) else None
            if cause not in _UNDISTURBING:
                self._disturb(f"a client sent it a {cause} while it was pooled")
        if msg.msg_type == "status":
            state = msg.content.get("execution_state", self.execution_state)
            if state != self.execution_state:
                self.execution_state, self.execution_state_since = state, self.last_activity
        elif msg.msg_type == "shutdown_reply" and self._intent is None:
            self._intent = "kernel-restart" if msg.content.get("restart") else "kernel-shutdown"

    # -- events -----------------------------------------------------------------

    def _publish(self, event: str, content: Mapping[str, Any]) -> None:
        if event in JOURNAL_MARKERS and self._journal is not None:
            self._journal.mark(event, dict(content))  # in the output's sequence, where it happened
        if self._events is None or self._session is None or self._events.closed:
            return
        msg = self._session.msg(event, dict(content))
        sent = self._events.send_multipart(self._session.serialize(msg, [event.encode()]), flags=zmq.NOBLOCK)
        cast("asyncio.Future[Any]", sent).add_done_callback(_report_send_failure)

    def _heartbeat_content(self) -> HeartbeatContent:
        return {"state": self.state.value, "pid": self._kernel_pid(), "restart_count": self.restart_count}

    async def _beat(self) -> None:
        while True:
            self._publish("heartbeat", self._heartbeat_content())
            self._republish_if_deleted()
            await asyncio.sleep(self.heartbeat_interval)

    def _republish_if_deleted(self) -> None:
        """Publish the nanny again if its connection file was deleted with the runtime directory (a tmp
        cleaner, logind at logout, ``rm -rf``): one stat per heartbeat, as the stdlib has no such event.

        The nanny's ipc sockets are bound again at their paths, then the file is written, so listings,
        ``stop`` and the daemon find the kernel again. The kernel's own ipc sockets cannot be: clients
        already connected keep working, new ones can connect once the kernel is restarted.
        """
        if self.connection_file is None or self.connection_file.exists():
            return
        nanny_state_dir(self.kernel_id)  # the runtime directory and ours, 0700
        info = self.connection_info
        if info["transport"] == "ipc":
            for sock, key in ((self._control, "nanny_control_port"), (self._events, "nanny_events_port")):
                assert sock is not None
                url = endpoint_url("ipc", info["ip"], info[key])
                with contextlib.suppress(zmq.ZMQError):  # its file is gone; the socket still listens on it
                    sock.unbind(url)
                bind(sock, url)
        self.connection_file = write_connection_file(self._public_info(), self.kernel_id)
        kernel_sockets = " (new clients reach the kernel after a restart)" if info["transport"] == "ipc" else ""
        self._log.warning("connection file deleted: published it again%s", kernel_sockets)

    async def _watch_subscriptions(self) -> None:
        """Greet each new subscriber with a heartbeat, so it knows its subscription is live."""
        assert self._events is not None
        while True:
            frame = await self._events.recv()
            if frame[:1] == b"\x01":
                self._publish("heartbeat", self._heartbeat_content())

    # -- requests ---------------------------------------------------------------

    def _stop_after_shutdown(self, msg: Message, content: dict[str, Any]) -> None:
        if msg.msg_type == "shutdown_request" and content["status"] == "ok":
            self.stop("shutdown requested")

    def _require_kernel(self) -> KernelManager:
        if self.manager is None or self.state in (NannyState.DEAD, NannyState.STOPPING, NannyState.RESTARTING):
            ended = self.state is NannyState.DEAD and self.last_exit is not None and self.last_exit.final
            raise KernelNotRunning.named(self.name or self.kernel_id[:12], "ended" if ended else self.state.value)
        return self.manager

    async def _on_is_alive(self, msg: Message) -> dict[str, Any]:
        alive = self.manager is not None and await self.manager.is_alive()
        return {"alive": alive, "state": self.state.value}

    async def _on_interrupt(self, msg: Message) -> dict[str, Any]:
        await self._require_kernel().interrupt()
        return {}

    async def _on_signal(self, msg: Message) -> dict[str, Any]:
        if "signum" not in msg.content:
            raise InvalidRequest("signal_request needs 'signum' (a number or a name like 'SIGTERM')")
        signum = parse_signal(msg.content["signum"])  # its ValueError crosses as InvalidRequest
        await self._require_kernel().signal(signum)
        return {"signum": signum}

    async def _on_kill(self, msg: Message) -> dict[str, Any]:
        assert self.manager is not None
        async with self._lifecycle:
            self._intent = "kill"  # also cancels an automatic restart waiting out its back-off
            if await self.manager.is_alive():
                await self.manager.kill()
            elif self.state is NannyState.RESTARTING:
                self.state = NannyState.DEAD
        return {}

    async def _on_restart(self, msg: Message) -> dict[str, Any]:
        assert self.manager is not None
        now = bool(msg.content.get("now", False))
        async with self._lifecycle:
            if self.state is NannyState.STOPPING:
                raise NannyStopping("the nanny is shutting down")
            self._intent = "restart"
            self.state = NannyState.RESTARTING
            try:
                await self.manager.restart(now=now)
            except LaunchError as exc:
                self.state = NannyState.DEAD
                self._publish("restart_failed", {"reason": str(exc), "restart_count": self.restart_count})
                raise
            self.restart_count += 1
            await self._new_generation()
        self._publish("kernel_restarted", {"pid": self._kernel_pid(), "restart_count": self.restart_count})
        return {"restart_count": self.restart_count, "pid": self._kernel_pid()}

    async def _on_shutdown(self, msg: Message) -> dict[str, Any]:
        assert self.manager is not None
        now = bool(msg.content.get("now", False))
        async with self._lifecycle:
            self._intent = "shutdown"
            self.state = NannyState.STOPPING
            alive = await self.manager.is_alive()
            await self.manager.shutdown(now=now)
            if alive:
                self.last_exit = await self.manager.wait()
                self._publish_death(self.last_exit, restarting=False, requested=True)
        return {}

    async def _on_replay(self, msg: Message) -> BufferedReply:
        """Journal entries after ``since`` (a page of at most ``max_bytes``): their frames as the reply's buffers.

        With ``wait``, a request that finds nothing new is answered when something is
        appended (or after ``wait`` seconds, empty): how a client follows the output live.
        """
        content = msg.content
        since, last, max_bytes, wait = (content.get(key) for key in ("since", "last", "max_bytes", "wait"))
        parent = content.get("parent_msg_id")
        if not isinstance(since, int) or since < 0:
            raise InvalidRequest(f"replay needs 'since', a sequence number >= 0 (0: from the start), got {since!r}")
        if last is not None and (not isinstance(last, int) or last < 0):
            raise InvalidRequest(f"'last' must be a whole number >= 0, got {last!r}")
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes <= 0):
            raise InvalidRequest(f"'max_bytes' must be a positive whole number, got {max_bytes!r}")
        if parent is not None and not isinstance(parent, str):
            raise InvalidRequest(f"'parent_msg_id' must be a message id, got {parent!r}")
        if wait is not None and (
            isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < float("inf")
        ):
            raise InvalidRequest(f"'wait' must be a number of seconds >= 0, got {wait!r}")
        if self._journal is None:
            if self.request.journal.off:
                raise InvalidRequest(
                    f"kernel {self.name or self.kernel_id[:12]} keeps no journal (its nanny was started with journal "
                    "memory and disk 0): there is no recorded output to replay"
                )
            raise KernelNotRunning.named(self.name or self.kernel_id[:12], self.state.value)
        journal = self._journal
        limit = min(max_bytes or REPLAY_MAX_BYTES, REPLAY_MAX_BYTES)
        batch = journal.read(since, parent_msg_id=parent, last=last, max_bytes=limit)
        if wait and last is None:
            deadline = asyncio.get_running_loop().time() + min(wait, REPLAY_MAX_WAIT)
            while not batch.entries and not batch.lost and not journal.closed:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                appended = journal.appended()
                await asyncio.wait({appended}, timeout=remaining)
                appended.cancel()
                batch = journal.read(since, parent_msg_id=parent, max_bytes=limit)
        entries = [
            {"seq": e.seq, "received": e.received, "kind": e.kind, "frames": len(e.frames)} for e in batch.entries
        ]
        reply = {
            "entries": entries,
            "lost": batch.lost,
            "more": batch.more,
            "first_seq": journal.first_seq,
            "last_seq": journal.last_seq,
        }
        return BufferedReply(reply, [frame for entry in batch.entries for frame in entry.frames])

    async def _on_claim(self, msg: Message) -> dict[str, Any]:
        """A launch takes this pooled kernel: it leaves the pool, with the launch's name and owner.

        Refused for a kernel that is not pooled, was disturbed while pooled, or is not running: the
        daemon then retires it and starts another, and the launch gets a kernel that never ran code.
        """
        content = msg.content
        name, owner, start_time = content.get("name"), content.get("owner"), content.get("owner_start_time")
        if name is not None and not valid_kernel_name(name):
            raise InvalidRequest(f"claim: 'name' must be non-empty and contain no '/', got {name!r}")
        if owner is not None and not (isinstance(owner, int) and isinstance(start_time, int)):
            raise InvalidRequest("claim: 'owner' and 'owner_start_time' must be a process id and its start time")
        if self.pool is None:
            raise InvalidRequest(f"kernel {self.kernel_id} is not pooled: it was claimed already, or never pooled")
        if self.disturbed is not None:
            raise InvalidRequest(f"pooled kernel {self.kernel_id} cannot be handed out: {self.disturbed}")
        if self.state is not NannyState.RUNNING or self.manager is None or not await self.manager.is_alive():
            raise KernelNotRunning(f"pooled kernel {self.kernel_id} is not running ({self.state.value})")
        if isinstance(owner, int) and isinstance(start_time, int):  # checked above: both, or no owner
            self._owner = OwnerWatch.open(owner, start_time)
            self._tasks.spawn(self._stop_with_owner(self._owner), name="nanny-owner")
        self.pool, self.name = None, name
        self.connection_file = write_connection_file(self._public_info(), self.kernel_id)
        self._log.info("claimed from the pool%s", f" as {name!r}" if name else "")
        return {"kernel_id": self.kernel_id, "name": self.name}

    async def _on_info(self, msg: Message) -> NannyInfo:
        alive = self.manager is not None and await self.manager.is_alive()
        return {
            "nanny_protocol_version": NANNY_PROTOCOL_VERSION,
            "nanny_version": __version__,
            "kernel_id": self.kernel_id,
            "kernel_type": self.type_id,
            "name": self.name,
            "pid": self._kernel_pid(),
            "nanny_pid": os.getpid(),
            "alive": alive,
            "state": self.state.value,
            "execution_state": self.execution_state,
            "execution_state_since": self.execution_state_since,
            "last_activity": self.last_activity,
            "started": self.started_at,
            "kernel_started": self.kernel_started_at,
            "restart_count": self.restart_count,
            "restart_policy": self.restart_policy.to_dict(),
            "last_exit": None if self.last_exit is None else self.last_exit.to_dict(),
            "log_file": str(self.log_path),
            "heartbeat_interval": self.heartbeat_interval,
            "placement": placement() if (placement := getattr(self.manager, "placement", None)) else None,
            "journal": None if self._journal is None else self._journal_info(self._journal),
            "pool": self.pool,
            "disturbed": self.disturbed,
        }

    @staticmethod
    def _journal_info(journal: Journal) -> JournalInfo:
        return {
            "first_seq": journal.first_seq,
            "last_seq": journal.last_seq,
            "memory_bytes": journal.memory_bytes,
            "memory_used": journal.memory_used,
            "disk_bytes": journal.disk_bytes,
            "disk_used": journal.disk_used,
            "disk_enabled": journal.disk_enabled,
        }


def _report_send_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("an event was not published: %s", future.exception())
