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
kernel's own shutdown_request from a client) to decide what to publish and
whether to restart.
"""

from __future__ import annotations

import asyncio
import codecs
import enum
import logging
import os
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import zmq
import zmq.asyncio

from .. import __version__
from .._exceptions import LaunchError
from .._serving import RequestRefused, RequestServer
from .._tasks import TaskGroup
from ..client.kernel import KernelClient
from ..config import RestartPolicy
from ..discovery import KernelFinder
from ..launch import KernelCommand, launch_local
from ..launch.connection import write_connection_file
from ..launch.spawn import StartedKernel
from ..paths import nanny_state_dir
from ..protocol import (
    NANNY_PROTOCOL_VERSION,
    ConnectionInfo,
    ExitStatus,
    KernelManager,
    Message,
    Session,
    ipc_socket_paths,
    parse_signal,
)
from .kernel_params import kernel_launch_params
from .oom import OomCounter
from .output_log import DEFAULT_LOG_MAX_BYTES, OutputLog
from .restarts import RestartBudget

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "KernelNanny", "NannyState"]

log = logging.getLogger("kernel_nanny.nanny")

#: Seconds between ``heartbeat`` events; clients call a nanny dead after three missed.
DEFAULT_HEARTBEAT_INTERVAL = 1.0
#: The kernel's iopub messages the nanny reads: status and shutdown replies, which ipykernel publishes
#: as ``kernel.<id>.status``/``kernel.<id>.shutdown`` (other kernels: ``status``). Not everything: the
#: first client's catch-all subscription must stay new to the kernel, which greets it with iopub_welcome.
IOPUB_TOPICS = (b"kernel.", b"status", b"shutdown")
#: ipc "ports" of the nanny sockets (the kernel's channels use 1-5 under the same prefix).
_IPC_CONTROL, _IPC_EVENTS = 6, 7
_LINGER_MS = 1000


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
        type_id: str,
        *,
        finder: KernelFinder | None,
        name: str | None = None,
        cwd: str | None = None,
        launch_params: Mapping[str, Any] | None = None,
        restart_policy: RestartPolicy | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        log_max_bytes: int = DEFAULT_LOG_MAX_BYTES,
        command: KernelCommand | None = None,
        started: StartedKernel | None = None,
    ) -> None:
        self.kernel_id = kernel_id
        self.type_id = type_id
        self.name = name
        self.cwd = cwd
        self.finder = finder
        #: An explicit command to run instead of asking the finder for ``type_id`` (see ``start_nanny``).
        self.command = command
        #: The command's launch, already begun before the nanny's heavy imports (``python -m kernel_nanny.nanny``).
        self._started = started
        self.launch_params = dict(launch_params or {})
        self.restart_policy = restart_policy or RestartPolicy()
        self.heartbeat_interval = heartbeat_interval
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
        self._budget = RestartBudget(self.restart_policy)
        self._intent: str | None = None
        self._lifecycle = asyncio.Lock()
        self._generation = 0
        self._generation_changed = asyncio.Condition()
        self._stopped = asyncio.Event()
        self._stop_reason = "shutdown requested"
        self._tasks = TaskGroup(log)
        self._session: Session | None = None
        self._control: zmq.asyncio.Socket | None = None
        self._events: zmq.asyncio.Socket | None = None
        self._output_log: OutputLog | None = None
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")}
        self._oom: OomCounter | None = None
        self._iopub: KernelClient | None = None
        self._handlers: dict[str, Callable[[Message], Awaitable[dict[str, Any]]]] = {
            "is_alive_request": self._on_is_alive,
            "interrupt_request": self._on_interrupt,
            "signal_request": self._on_signal,
            "kill_request": self._on_kill,
            "restart_request": self._on_restart,
            "shutdown_request": self._on_shutdown,
            "info_request": self._on_info,
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
        """Launch the kernel, serve until stopped, then tear everything down."""
        try:
            await self._start()
        except BaseException:
            await self._teardown()
            raise
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
        self._output_log = OutputLog(self.log_path, self.log_max_bytes)
        params = kernel_launch_params(self.kernel_id, self.launch_params)
        if self.command is not None:
            started, self._started = self._started, None
            launched = await launch_local(
                self.command, kernel_name=self.type_id, cwd=self.cwd, launch_params=params, started=started
            )
        else:
            if self.finder is None:
                raise LaunchError(f"a nanny for {self.type_id} needs a kernel finder or a command")
            launched = await self.finder.launch(self.type_id, cwd=self.cwd, launch_params=params)
        self.connection_info, self.manager = launched
        if self.manager is None:
            raise LaunchError(f"provider of {self.type_id} gave no manager: a nanny cannot supervise it")
        self._session = Session(self.connection_info["key"], self.connection_info["signature_scheme"])
        add_listener = getattr(self.manager, "add_output_listener", None)
        if add_listener is not None:
            add_listener(self._on_output)
        self._bind_sockets()
        self.connection_file = write_connection_file(self._public_info(), self.kernel_id)
        # Our own reader of the kernel's iopub: a small replay window keeps the nanny lean.
        kernel_session = Session(
            self.connection_info["key"], self.connection_info["signature_scheme"], replay_window=4096
        )
        self._iopub = KernelClient(self.connection_info, session=kernel_session, iopub_topics=IOPUB_TOPICS)
        self._iopub.add_iopub_handler(self._on_kernel_iopub)
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
        log.info(
            "[kernel=%s pid=%s] %s ready: %s",
            self.kernel_id[:8],
            self._kernel_pid(),
            self.type_id,
            self.connection_file,
        )

    def _bind_sockets(self) -> None:
        context = zmq.asyncio.Context.instance()
        self._control = context.socket(zmq.ROUTER)
        self._events = context.socket(zmq.XPUB)
        self._events.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscription, not just the first
        info = self.connection_info
        for sock, ipc_port in ((self._control, _IPC_CONTROL), (self._events, _IPC_EVENTS)):
            sock.linger = _LINGER_MS
            if info.get("curve_secretkey"):
                sock.curve_secretkey = info["curve_secretkey"].encode()
                sock.curve_publickey = info["curve_publickey"].encode()
                sock.curve_server = True
            key = "nanny_control_port" if sock is self._control else "nanny_events_port"
            if info["transport"] == "ipc":
                sock.bind(f"ipc://{info['ip']}-{ipc_port}")
                info[key] = ipc_port
            else:
                host = f"[{info['ip']}]" if ":" in info["ip"] else info["ip"]
                info[key] = sock.bind_to_random_port(f"tcp://{host}")

    def _public_info(self) -> dict[str, Any]:
        return {
            **self.connection_info,
            "kernel_id": self.kernel_id,
            "kernel_type": self.type_id,
            "name": self.name,
            "nanny_pid": os.getpid(),
            "nanny_host": socket.gethostname(),
            "heartbeat_interval": self.heartbeat_interval,
            "nanny_protocol_version": NANNY_PROTOCOL_VERSION,
        }

    async def _teardown(self) -> None:
        self.state = NannyState.STOPPING
        self._intent = "shutdown"
        await self._tasks.cancel_all()
        if self._iopub is not None:
            self._iopub.close()
            await self._iopub.wait_closed()
        if self.manager is not None:
            alive = await self.manager.is_alive()
            try:
                async with self._lifecycle:
                    await self.manager.shutdown()
            except Exception:
                log.exception("[kernel=%s] shutting the kernel down failed", self.kernel_id[:8])
            if alive:
                self.last_exit = await self.manager.wait()
                self._publish_death(self.last_exit, restarting=False, requested=True)
        # The connection file goes first: once a client hears nanny_exiting, the kernel is gone from listings.
        if self.connection_file is not None:
            self.connection_file.unlink(missing_ok=True)
        self._publish("nanny_exiting", {"reason": self._stop_reason})
        for sock in (self._control, self._events):
            if sock is not None:
                sock.close(linger=_LINGER_MS)
        for path in ipc_socket_paths(self.connection_info):  # ours; the kernel's went with it
            path.unlink(missing_ok=True)
        if self._output_log is not None:
            self._output_log.close()
        shutil.rmtree(self._state_dir, ignore_errors=True)
        log.info("[kernel=%s] nanny exiting: %s", self.kernel_id[:8], self._stop_reason)

    # -- supervision ------------------------------------------------------

    def _kernel_pid(self) -> int | None:
        return getattr(self.manager, "pid", None)

    def _kernel_running(self) -> None:
        """A (re)started kernel process is ready: a new generation begins."""
        self.state = NannyState.RUNNING
        self.kernel_started_at = self.last_activity = self.execution_state_since = time.time()
        self.execution_state = "starting"
        self._intent = None
        pid = self._kernel_pid()
        self._oom = OomCounter(pid) if pid else None

    async def _new_generation(self) -> None:
        self._kernel_running()
        async with self._generation_changed:
            self._generation += 1
            self._generation_changed.notify_all()

    async def _supervise(self) -> None:
        """The one place where kernel deaths are observed, reported and acted on."""
        assert self.manager is not None
        while True:
            generation = self._generation
            status = self._classify(await self.manager.wait())
            self.last_exit = status
            intent = self._intent
            if intent == "shutdown":
                return  # the teardown reports it
            if intent == "kernel-shutdown":
                self._publish_death(status, restarting=False, requested=True)
                self.stop("the kernel was shut down by a client")
                return
            if intent in ("kill", "restart"):
                self._publish_death(status, restarting=intent == "restart", requested=True)
                if intent == "kill":
                    self.state = NannyState.DEAD
            else:
                counted = intent is None
                self._publish_death(
                    status, restarting=not counted or self._budget.allows_another(), requested=not counted
                )
                await self._recover(counted=counted)
            async with self._generation_changed:
                await self._generation_changed.wait_for(lambda g=generation: self._generation != g)  # type: ignore[misc]

    def _classify(self, status: ExitStatus) -> ExitStatus:
        if status.reason == "killed" and self._oom is not None and self._oom.increased():
            return ExitStatus(exit_code=status.exit_code, signal=status.signal, reason="oom")
        return status

    async def _recover(self, counted: bool) -> None:
        """Restart after an unrequested death, within the restart policy."""
        assert self.manager is not None
        last_error = ""
        while True:
            if counted and not self._budget.allows_another():
                self.state = NannyState.DEAD
                policy = self.restart_policy
                reason = (
                    f"{self._budget.used} automatic restarts within {policy.window:g} s (max {policy.max_restarts})"
                )
                self._publish("restart_failed", {"reason": reason + last_error, "restart_count": self.restart_count})
                log.warning("[kernel=%s] giving up: %s", self.kernel_id[:8], reason)
                return
            delay = self._budget.next_delay() if counted else 0.0
            self.state = NannyState.RESTARTING
            if delay:
                await asyncio.sleep(delay)  # back-off between restarts: a deliberate pause, not a poll
            async with self._lifecycle:
                if self._intent not in (None, "kernel-restart") or self.state is not NannyState.RESTARTING:
                    return  # a request (restart, kill, shutdown) took over meanwhile
                if counted:
                    self._budget.record()
                try:
                    await self.manager.restart(now=True)
                except LaunchError as exc:
                    log.warning("[kernel=%s] restart failed: %s", self.kernel_id[:8], exc)
                    last_error, counted = f"; last error: {exc}", True
                    continue
                self.restart_count += 1
                await self._new_generation()
                self._publish("kernel_restarted", {"pid": self._kernel_pid(), "restart_count": self.restart_count})
                return

    def _publish_death(self, status: ExitStatus, *, restarting: bool, requested: bool) -> None:
        log.info("[kernel=%s pid=%s] died: %s", self.kernel_id[:8], self._kernel_pid(), status)
        self._publish(
            "kernel_died",
            {
                "exit_code": status.exit_code,
                "signal": status.signal,
                "reason": status.reason,
                "restarting": restarting,
                "requested": requested,
            },
        )

    # -- what the kernel says -------------------------------------------------

    def _on_output(self, name: str, data: bytes) -> None:
        if self._output_log is not None:
            self._output_log.write(data)
        text = self._decoders[name].decode(data)
        if text:
            self._publish("stream", {"name": name, "text": text})

    def _on_kernel_iopub(self, msg: Message) -> None:
        """Track activity, and notice a client asking the kernel itself to shut down."""
        self.last_activity = time.time()
        if msg.msg_type == "status":
            state = msg.content.get("execution_state", self.execution_state)
            if state != self.execution_state:
                self.execution_state, self.execution_state_since = state, self.last_activity
        elif msg.msg_type == "shutdown_reply" and self._intent is None:
            self._intent = "kernel-restart" if msg.content.get("restart") else "kernel-shutdown"

    # -- events -----------------------------------------------------------------

    def _publish(self, event: str, content: dict[str, Any]) -> None:
        if self._events is None or self._session is None or self._events.closed:
            return
        msg = self._session.msg(event, content)
        sent = self._events.send_multipart(self._session.serialize(msg, [event.encode()]), flags=zmq.NOBLOCK)
        cast("asyncio.Future[Any]", sent).add_done_callback(_report_send_failure)

    def _heartbeat_content(self) -> dict[str, Any]:
        return {"state": self.state.value, "pid": self._kernel_pid(), "restart_count": self.restart_count}

    async def _beat(self) -> None:
        while True:
            self._publish("heartbeat", self._heartbeat_content())
            await asyncio.sleep(self.heartbeat_interval)

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
            raise RequestRefused("KernelNotRunning", f"the kernel is not running (state: {self.state.value})")
        return self.manager

    async def _on_is_alive(self, msg: Message) -> dict[str, Any]:
        alive = self.manager is not None and await self.manager.is_alive()
        return {"alive": alive, "state": self.state.value}

    async def _on_interrupt(self, msg: Message) -> dict[str, Any]:
        await self._require_kernel().interrupt()
        return {}

    async def _on_signal(self, msg: Message) -> dict[str, Any]:
        if "signum" not in msg.content:
            raise RequestRefused("ValueError", "signal_request needs 'signum' (a number or a name like 'SIGTERM')")
        signum = parse_signal(msg.content["signum"])
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
                raise RequestRefused("NannyStopping", "the nanny is shutting down")
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

    async def _on_info(self, msg: Message) -> dict[str, Any]:
        alive = self.manager is not None and await self.manager.is_alive()
        last_exit = self.last_exit
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
            "last_exit": None
            if last_exit is None
            else {"exit_code": last_exit.exit_code, "signal": last_exit.signal, "reason": last_exit.reason},
            "log_file": str(self.log_path),
            "heartbeat_interval": self.heartbeat_interval,
        }


def _report_send_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("an event was not published: %s", future.exception())
