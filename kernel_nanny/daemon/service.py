"""The daemon: launches kernels behind nannies on request and keeps an index of them.

It owns no kernel. Each kernel lives in its own nanny process, so a daemon
restart or crash touches none of them; the daemon is an index (a record per
nanny in its state directory) and a launcher. On start it re-adopts every live
nanny, from its records and from the nanny files in the runtime directory, and
prunes the dead.

Clients reach it on a local ipc socket (0600, in the runtime directory) and,
if configured, on a tcp endpoint that requires CurveZMQ with an allow-listed
client key. Every request is signed with the daemon's API key.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import fnmatch
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from .. import __version__
from .._backoff import backoff_delay
from .._exceptions import (
    AmbiguousKernel,
    ConfigError,
    ConnectionInfoError,
    DaemonAlreadyRunning,
    InvalidRequest,
    KernelNannyError,
    KernelTypeNotAllowed,
    LaunchError,
    MaxKernels,
    NannyUnavailable,
    NoSuchKernel,
    NoSuchKernelType,
    UnknownRequest,
)
from .._logging import KernelLogAdapter
from .._serving import Handler, PeerCheck, RequestServer, bind
from .._tasks import TaskGroup
from ..client.manager import ManagerClient
from ..client.running import RunningKernel, list_running_kernels, match_kernels, unresponsive_nanny
from ..defaults import (
    CULL_CHECK_MAX_INTERVAL,
    CULL_CHECK_MIN_INTERVAL,
    MAX_POOL_WAIT,
    NANNY_PROBE_TIMEOUT,
    POOL_RETRY_FIRST,
    POOL_RETRY_MAX,
    REPLAY_MAX_WAIT,
    RUNTIME_DIR_CHECK_INTERVAL,
    SERVER_LINGER_MS,
    TCP_ACCEPT_BACKLOG,
    TCP_HANDSHAKE_TIMEOUT_MS,
)
from ..discovery import KernelFinder
from ..discovery.resolved import ResolvedKernel
from ..launch import LaunchParams
from ..launch.progress import listening
from ..launch.request import LaunchRequest
from ..nanny.forkserver import ForkServer
from ..paths import daemon_discovery_file, open_private_file, public_connection_file, runtime_dir, write_private_file
from ..protocol import DEFAULT_SIGNATURE_SCHEME, ExitStatus, Message, Session, load_connection_info, new_id
from ..protocol.daemon import DAEMON_PROTOCOL_VERSION, DAEMON_REQUESTS, KernelEntry
from ..protocol.nanny import NannyInfo
from ..start import launch_resolved
from .config import DaemonConfig
from .keys import DaemonKeys
from .launch_progress import LaunchProgress
from .nannies import NannyConnections
from .pool import KernelPool
from .pool_settings import PoolSettings
from .sdnotify import SystemdNotifier
from .state import KernelRecord, StateStore
from .tcp_guard import AllowListCheck, TcpConnectionGuard, raise_open_file_limit

if TYPE_CHECKING:
    from ..gateway.server import Gateway

__all__ = ["DaemonAlreadyRunning", "NannyDaemon"]

log = logging.getLogger("kernel_nanny.daemon")

#: The ZAP domain of the tcp endpoint; the allow-list is registered for it.
_ZAP_DOMAIN = "kernel-nanny"
#: Signatures of recent API requests remembered against replays.
API_REPLAY_WINDOW = 16384


class NannyDaemon:
    """One per user and runtime directory (enforced with a lock file)."""

    def __init__(
        self, config: DaemonConfig, finder: KernelFinder | None = None, notifier: SystemdNotifier | None = None
    ) -> None:
        self.config = config
        self.notifier = notifier or SystemdNotifier()
        self.finder = finder or KernelFinder.from_entrypoints()
        self.server_id = new_id()
        self.started = time.time()
        self.kernels: dict[str, KernelRecord] = {}
        #: One connection per indexed nanny, kept while it is indexed (listings ask them all).
        self._nannies = NannyConnections(timeout=NANNY_PROBE_TIMEOUT)
        #: One task per indexed kernel that logs its deaths, restarts and stop, whoever caused them.
        self._lifecycle_logs: dict[str, asyncio.Task[None]] = {}
        self.store = StateStore(config.state_dir)
        self.keys = DaemonKeys(config.state_dir, config.allowed_client_keys)
        # CurveZMQ already refuses replays on tcp and the ipc socket is the user's own:
        # a smaller window than the default keeps a long-running daemon lean.
        self.session = Session(self.keys.api_key(), DEFAULT_SIGNATURE_SCHEME, replay_window=API_REPLAY_WINDOW)
        self.discovery_file = daemon_discovery_file()
        self.ipc_path = runtime_dir() / "kernel-nanny-daemon.sock"
        self.endpoints: list[str] = []
        self._tasks = TaskGroup(log)
        #: Launches under way, with what they start and report (a queued Slurm job's state): they count against
        #: max_kernels, hold their names, show in ps, and a stop request naming one (or stop --all) cancels it
        #: (a Slurm job can wait in the queue for hours before its kernel is indexed).
        self._launching: dict[asyncio.Task[dict[str, Any]], LaunchProgress] = {}
        #: Launches by the id their client gave them, so that it can follow its own, and cancel it if it gives up.
        self._launch_ids: dict[str, asyncio.Task[dict[str, Any]]] = {}
        #: Launches cancelled on request, and by whom (the rest were cancelled by the daemon stopping).
        self._stopped_launches: dict[asyncio.Task[dict[str, Any]], str] = {}
        self._sockets: list[zmq.asyncio.Socket] = []
        #: The local ipc socket (bound again if the runtime directory is deleted).
        self._local: zmq.asyncio.Socket | None = None
        #: The locks that make this daemon the only one: in the runtime directory, and in the state directory.
        self._lock_fd: int | None = None
        self._state_lock_fd: int | None = None
        self._stopped = asyncio.Event()
        self._authenticator: AsyncioAuthenticator | None = None
        #: The Jupyter Kernel Gateway API, when ``[gateway]`` turns it on (tornado is imported only then).
        self.gateway: Gateway | None = None
        self._tcp_context: zmq.asyncio.Context | None = None
        #: Ready kernels for launches to take (``[pool]``): filled once the daemon serves.
        self.pool = KernelPool(self, config.pools, config.pool_limits)
        #: The process that forks this daemon's nannies (and this user's other starters'), while it runs.
        self.fork_server: ForkServer | None = None
        #: One handler per request of the API (``_on_<name>`` for ``<name>_request``): the list is the protocol's.
        self._handlers: dict[str, Handler] = {
            f"{name}_request": getattr(self, f"_on_{name}") for name in DAEMON_REQUESTS
        }

    def __repr__(self) -> str:
        return f"<NannyDaemon pid={os.getpid()} kernels={len(self.kernels)} endpoints={','.join(self.endpoints)}>"

    # -- lifetime ---------------------------------------------------------

    async def run(self, on_ready: Callable[[NannyDaemon], None] | None = None) -> None:
        """Lock, adopt, bind, publish the discovery file, serve until :meth:`stop`."""
        self._lock()
        # sd_notify(3): children must not inherit the notification socket.
        for variable in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(variable, None)
        raise_open_file_limit()  # before any socket: clients, nannies and files share the budget
        try:
            # After the limit is raised: the fork server serves starters whose limits are its own.
            self._tasks.spawn(self._keep_fork_server(), name="daemon-fork-server")
            self._tasks.spawn(self._remove_strays(), name="daemon-strays")
            await self.adopt()
            self._bind()
            self._serve_gateway()
            self._write_discovery_file()
            await self.pool.start()
            self._tasks.spawn(self._watch_runtime_dir(), name="daemon-runtime-dir")
            if self._culling_enabled():
                self._tasks.spawn(self._cull(), name="daemon-culling")
            if self.notifier.watchdog_interval:
                self._tasks.spawn(self._feed_watchdog(self.notifier.watchdog_interval), name="daemon-watchdog")
            log.info("%s", self._status())
            self.notifier.ready(self._status())
            if on_ready is not None:
                on_ready(self)
            await self._stopped.wait()
            self.notifier.stopping()
        finally:
            await self._teardown()

    async def _keep_fork_server(self) -> None:
        """Run the nanny fork server, and start another if it dies (until then, nannies are spawned: slower, no
        kernel lost). A server that cannot start is tried again, backing off as the pools do."""
        failures = 0
        while True:
            try:
                self.fork_server = await ForkServer.start(log_level=self.config.log_level)
            except LaunchError as exc:
                failures += 1
                delay = backoff_delay(failures, POOL_RETRY_FIRST, POOL_RETRY_MAX)
                log.warning(
                    "no nanny fork server (nannies are spawned meanwhile): %s; trying again in %g s", exc, delay
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            status = await self.fork_server.wait()
            log.warning("the nanny fork server exited (status %s): starting another", status)

    async def _remove_strays(self) -> None:
        """Let each provider remove what kernels of a crashed owner left behind (in the background:
        an engine that is slow or down must not delay serving)."""
        for provider in self.finder.providers.values():
            try:
                await provider.remove_strays()
            except Exception as exc:
                log.warning("kernel provider %r could not remove stray kernels: %s", provider.id, exc)

    def _status(self) -> str:
        pooled = len(self.kernels) - len(self._claimed())
        extra = f" (and {pooled} pooled)" if pooled else ""
        return f"serving {len(self._claimed())} kernel(s){extra} on {', '.join(self._addresses())}"

    def _addresses(self) -> list[str]:
        return [*self.endpoints, *([self.gateway.url] if self.gateway else [])]

    async def _feed_watchdog(self, interval: float) -> None:
        """WATCHDOG=1 from the event loop itself: if the loop hangs, systemd notices."""
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def stop(self, reason: str = "stop requested") -> None:
        """Stop serving. The kernels and their nannies keep running."""
        log.info("stopping: %s (kernels keep running)", reason)
        self._stopped.set()

    def _lock(self) -> None:
        """Lock the state directory (its records; this lock outlives a deleted runtime directory), then
        the runtime directory (its socket and discovery file): another daemon on either exits at once."""
        self._state_lock_fd = self._take_lock(self.store.state_dir / "daemon.lock")
        try:
            self._lock_fd = self._take_lock(runtime_dir() / "kernel-nanny-daemon.lock")
        except DaemonAlreadyRunning:
            os.close(self._state_lock_fd)
            self._state_lock_fd = None
            raise

    def _take_lock(self, path: Path) -> int:
        """Lock ``path`` and write our pid in it, for the message another daemon gives."""
        fd = open_private_file(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = _read_pid(path)
            raise DaemonAlreadyRunning(
                f"a kernel-nanny daemon is already running for this user (pid {pid or 'unknown'}, "
                f"runtime directory {self.discovery_file.parent}, state directory {self.store.state_dir}); "
                "stop it first, or use it: 'kernel-nanny ps'"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid()}).encode(), 0)
        return fd

    def _bind(self) -> None:
        """Bind the local socket and the tcp endpoint; one that cannot be bound stops the daemon with the reason."""
        local = self._local = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        local.linger = SERVER_LINGER_MS
        self._sockets.append(local)  # closed by the teardown even if binding fails
        self.endpoints = [self._bind_local(local)]
        self._serve(local, "daemon-ipc")
        if self.config.tcp_endpoint:
            # A context of its own: its ZAP handler must vet only this socket's clients.
            self._tcp_context = zmq.asyncio.Context()
            self._authenticator = AsyncioAuthenticator(self._tcp_context)
            self._authenticator.start()
            self._authenticator.configure_curve_callback(_ZAP_DOMAIN, credentials_provider=self.keys)
            remote = self._tcp_context.socket(zmq.ROUTER)
            remote.linger = SERVER_LINGER_MS
            remote.handshake_ivl = TCP_HANDSHAKE_TIMEOUT_MS  # a stranger holding a connection is dropped
            remote.backlog = TCP_ACCEPT_BACKLOG  # bounds a flood's overshoot of the guard's limit
            self._sockets.append(remote)  # an open socket would hang the context's term() in the teardown
            guard = TcpConnectionGuard(remote)  # before binding: it must see every accepted connection
            self._sockets.append(guard.monitor)
            keypair = self.keys.server_keypair()
            try:
                endpoint = bind(remote, self.config.tcp_endpoint, curve_keypair=keypair, zap_domain=_ZAP_DOMAIN)
            except zmq.ZMQError as exc:
                reason = f"cannot listen on {self.config.tcp_endpoint}: {_bind_failure(exc)}"
                raise self.config.error("daemon", "tcp_endpoint", reason) from exc
            self.endpoints.append(endpoint)
            guard.bound(endpoint)
            self._tasks.spawn(guard.watch(), name="daemon-tcp-guard")
            self._serve(remote, "daemon-tcp", peers=AllowListCheck(self.keys, guard))

    def _serve_gateway(self) -> None:
        settings = self.config.gateway
        if not settings.on:
            return
        from ..gateway.server import Gateway

        self.gateway = Gateway(self, settings, self.keys.gateway_token())
        try:
            self.gateway.start()
        except OSError as exc:
            self.gateway = None
            raise self.config.error("gateway", "address", f"cannot listen on {settings.url}: {exc.strerror}") from exc

    def _bind_local(self, sock: zmq.asyncio.Socket) -> str:
        """Bind the 0600 ipc socket in the runtime directory (again, after the directory was deleted)."""
        self.ipc_path.unlink(missing_ok=True)  # a socket file left by a crashed daemon (we hold the lock)
        try:
            return bind(sock, f"ipc://{self.ipc_path}")
        except zmq.ZMQError as exc:
            raise ConfigError(
                f"the daemon cannot listen on {self.ipc_path}: {_bind_failure(exc)} "
                "(its runtime directory is set by JUPYTER_RUNTIME_DIR)"
            ) from exc

    def _serve(self, sock: zmq.asyncio.Socket, label: str, peers: PeerCheck | None = None) -> None:
        server = RequestServer(sock, self.session, self._handlers, log=log, label=label, tasks=self._tasks, peers=peers)
        self._tasks.spawn(server.serve(), name=label)

    def _write_discovery_file(self) -> None:
        info: dict[str, Any] = {
            "pid": os.getpid(),
            "server_id": self.server_id,
            "protocol_version": DAEMON_PROTOCOL_VERSION,
            "endpoint": self.endpoints[0],
            "tcp_endpoint": self.endpoints[1] if len(self.endpoints) > 1 else None,
            "key": self.session.key.decode(),
            "signature_scheme": self.session.signature_scheme,
            "started": self.started,
            "gateway_url": self.gateway.url if self.gateway else None,
        }
        if self.config.tcp_endpoint:
            info["server_public_key"] = self.keys.server_keypair()[0].decode()
        write_private_file(self.discovery_file, json.dumps(info, indent=2).encode())

    def _published(self) -> tuple[int, int] | None:
        """The runtime directory's identity (device, inode) while the daemon's files are in it, else None."""
        try:
            directory = os.stat(self.discovery_file.parent)
        except FileNotFoundError:
            return None
        if not (self.discovery_file.exists() and self.ipc_path.exists()):
            return None
        return directory.st_dev, directory.st_ino

    async def _watch_runtime_dir(self) -> None:
        """Publish the daemon again when its runtime directory, discovery file or socket is deleted
        (a tmp cleaner, logind at logout, ``rm -rf``), so clients find it and no second daemon starts.

        A timer, not an event: the stdlib has none for a deleted directory, and one replaced by
        another of the same name must be noticed too. The nannies publish themselves again likewise,
        at their heartbeat, and the index keeps them meanwhile (the state directory holds the records).
        """
        published = self._published()
        while True:
            await asyncio.sleep(RUNTIME_DIR_CHECK_INTERVAL)
            if self._published() == published:
                continue
            log.warning(
                "the runtime directory %s or the daemon's files in it were deleted: publishing them again",
                self.discovery_file.parent,
            )
            try:
                self._republish()
            except (KernelNannyError, OSError) as exc:
                log.error("cannot publish the daemon again: %s", exc)
                self.stop(f"its runtime directory cannot be restored ({exc})")
                return
            published = self._published()
            self.notifier.status(f"runtime directory restored; {self._status()}")

    def _republish(self) -> None:
        """Re-create the runtime directory (0700) and its lock, bind the local socket, write the discovery file."""
        lock_path = runtime_dir() / "kernel-nanny-daemon.lock"
        assert self._lock_fd is not None and self._local is not None
        try:
            held = os.path.samestat(os.fstat(self._lock_fd), os.stat(lock_path))
        except FileNotFoundError:
            held = False
        if not held:  # the old lock went with its directory: lock the new one before publishing anything there
            fd = self._take_lock(lock_path)
            os.close(self._lock_fd)
            self._lock_fd = fd
        with contextlib.suppress(zmq.ZMQError):  # the file is gone; the socket still listens on it
            self._local.unbind(self.endpoints[0])
        self.endpoints[0] = self._bind_local(self._local)
        self._write_discovery_file()

    async def _teardown(self) -> None:
        await self.pool.close()
        if self.gateway is not None:
            await self.gateway.stop()
        await self._tasks.cancel_all()  # the requests first: none may see its nanny connection closed
        if self.fork_server is not None:
            self.fork_server.close()  # its nannies live on
            await self.fork_server.wait_closed()
        await self._nannies.close()
        for sock in self._sockets:
            sock.close(linger=SERVER_LINGER_MS)
        if self._authenticator is not None:
            self._authenticator.stop()
        if self._tcp_context is not None:
            self._tcp_context.term()
        if self._lock_fd is not None:
            # Ours while we hold the lock; none written yet if binding failed: leave nothing behind.
            if _read_pid(self.discovery_file) in (os.getpid(), None):
                self.discovery_file.unlink(missing_ok=True)
                self.ipc_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._state_lock_fd is not None:
            os.close(self._state_lock_fd)
            self._state_lock_fd = None

    # -- the index --------------------------------------------------------

    async def adopt(self) -> None:
        """Re-adopt every live nanny (recorded, or found in the runtime dir) and prune the dead."""
        candidates: dict[str, KernelRecord] = {r.kernel_id: r for r in self.store.load()}
        for running in list_running_kernels():
            candidates.setdefault(running.kernel_id, _record_of(running))
        results = await asyncio.gather(*(self._check(record) for record in candidates.values()))
        for record, details in zip(candidates.values(), results, strict=True):
            if details is not None:
                # The nanny is the truth about its name and pool (a claim the last daemon did not record).
                record = dataclasses.replace(record, name=details.get("name"), pool=details.get("pool"))
                self.kernels[record.kernel_id] = record
                self.store.save(record)
                self._log_lifecycle(record)
            else:
                self.store.remove(record.kernel_id)
        log.info("adopted %d kernel(s), pruned %d", len(self.kernels), len(candidates) - len(self.kernels))
        if self.store.set_aside:
            names = ", ".join(path.name for path in self.store.set_aside)
            log.warning("set aside %d unreadable record(s): %s", len(self.store.set_aside), names)

    async def _check(self, record: KernelRecord) -> NannyInfo | None:
        """The nanny's info if the record's nanny runs (the very process that was recorded) and answers as
        that kernel, else None."""
        if not record.nanny.is_nanny():
            return None
        try:
            info = load_connection_info(record.connection_file)
            async with ManagerClient(info, timeout=NANNY_PROBE_TIMEOUT) as manager:
                details = await manager.info()
        except (KernelNannyError, OSError) as exc:
            _kernel_log(record).warning("nanny %d does not answer: %s", record.nanny_pid, exc)
            return None
        return details if details.get("kernel_id") == record.kernel_id else None

    def _refresh(self) -> None:
        """Drop kernels whose nanny exited; adopt nannies started without the daemon.

        A running nanny whose connection file is missing stays (unlisted: see :meth:`_entry`): its
        runtime directory was deleted, and it publishes the file again at its next heartbeat.
        """
        before = set(self.kernels)
        for kernel_id, record in list(self.kernels.items()):
            if not record.nanny.is_nanny():
                self._forget(kernel_id)
        for running in list_running_kernels():
            if running.kernel_id not in self.kernels:
                record = _record_of(running)
                self.kernels[record.kernel_id] = record
                self.store.save(record)
                self._log_lifecycle(record)
        if set(self.kernels) != before:
            self.notifier.status(self._status())

    def _find(self, ref: Any) -> KernelRecord:
        if not isinstance(ref, str) or not ref:
            raise InvalidRequest("give the kernel's id, id prefix or name as 'kernel'")
        self._refresh()
        matches = match_kernels(ref, self.kernels.values())
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NoSuchKernel(f"no running kernel {ref!r}")
        raise AmbiguousKernel(f"{ref!r} matches {len(matches)} kernels; give more of the id")

    async def _entry(self, record: KernelRecord, with_info: bool = True) -> KernelEntry | None:
        """The kernel's public entry, or None if its nanny went away meanwhile."""
        if record.kernel_id not in self.kernels:  # dropped since the caller looked it up
            return None
        try:
            connection_info = load_connection_info(record.connection_file)
        except ConnectionInfoError:
            return None
        entry: KernelEntry = {
            "kernel_id": record.kernel_id,
            "name": record.name,
            "kernel_type": record.kernel_type,
            "connection_file": record.connection_file,
            "nanny_pid": record.nanny_pid,
            "created": record.created,
            "connection_info": connection_info,
            "pool": record.pool,
        }
        if with_info:
            try:
                async with self._nannies.use(record.kernel_id, connection_info) as manager:
                    entry["info"] = await manager.info()
            except NannyUnavailable:
                entry["info"] = None
        return entry

    def _log_lifecycle(self, record: KernelRecord) -> None:
        """Log what happens to an indexed kernel: clients that talk to its nanny directly (``kernel-nanny
        kill``, a crash, a restart) leave no other trace in the daemon's log. The task ends with the nanny
        (``nanny_exiting``, or its heartbeat stopping), or when the daemon stops."""
        if record.kernel_id not in self._lifecycle_logs:
            task = self._tasks.spawn(self._follow_events(record), name=f"daemon-log-{record.kernel_id[:8]}")
            self._lifecycle_logs[record.kernel_id] = task

    async def _follow_events(self, record: KernelRecord) -> None:
        kernel_log = _kernel_log(record)
        try:
            async with ManagerClient(load_connection_info(record.connection_file)) as manager:
                async for event in manager.events():
                    content = event.content
                    if event.msg_type == "kernel_died":
                        then = "; restarting" if content.get("restarting") else ""
                        kernel_log.info("died: %s%s", ExitStatus.from_dict(content), then)
                        current = self.kernels.get(record.kernel_id)
                        if current is not None and current.pool is not None:
                            self._tasks.spawn(self.retire(current, "it died while pooled"), name="daemon-pool-retire")
                    elif event.msg_type == "kernel_restarted":
                        kernel_log.info("restarted (restart %s)", content.get("restart_count"))
                    elif event.msg_type == "restart_failed":
                        kernel_log.warning("restart failed: %s", content.get("reason"))
                    elif event.msg_type == "nanny_exiting":
                        kernel_log.info("stopped: %s", content.get("reason"))
        except (KernelNannyError, OSError) as exc:
            kernel_log.debug("no longer following its events: %s", exc)
        finally:
            self._lifecycle_logs.pop(record.kernel_id, None)

    def _forget(self, kernel_id: str) -> None:
        """Drop a kernel from the index (its record and our connection to its nanny)."""
        self.kernels.pop(kernel_id, None)
        self.store.remove(kernel_id)
        self._nannies.drop(kernel_id)
        self.pool.changed()

    # -- in-process clients (the gateway) ---------------------------------

    async def call(self, name: str, content: Mapping[str, Any]) -> dict[str, Any]:
        """Run API request ``name`` in this process: the checks, limits and errors of the socket API."""
        handler = self._handlers.get(f"{name}_request")
        if handler is None:
            raise UnknownRequest(f"the daemon has no request {name!r}")
        return dict(await handler(self.session.msg(f"{name}_request", dict(content))))

    def nanny(self, kernel_id: str) -> AbstractAsyncContextManager[ManagerClient]:
        """The daemon's connection to an indexed kernel's nanny (NoSuchKernel if none has this exact id)."""
        record = self.kernels.get(kernel_id)
        if record is None:
            raise NoSuchKernel(f"no running kernel {kernel_id!r}")
        return self._nannies.use(kernel_id, load_connection_info(record.connection_file))

    # -- requests ---------------------------------------------------------

    async def _on_daemon_info(self, msg: Message) -> dict[str, Any]:
        self._refresh()
        return {
            "protocol_version": DAEMON_PROTOCOL_VERSION,
            "version": __version__,
            "server_id": self.server_id,
            "pid": os.getpid(),
            "started": self.started,
            "endpoints": self.endpoints,
            "gateway_url": self.gateway.url if self.gateway else None,
            "kernels": len(self._claimed()),
            "pools": self.pool.status(),
            "max_kernels": self.config.max_kernels,
            "allowed_types": list(self.config.allowed_types),
            "state_dir": str(self.config.state_dir),
        }

    async def _on_pools(self, msg: Message) -> dict[str, Any]:
        wait = msg.content.get("wait", 0)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_POOL_WAIT:
            raise InvalidRequest(f"'wait' must be seconds from 0 to {MAX_POOL_WAIT:g}, got {wait!r}")
        settled = await self.pool.settled(wait)
        return {"pools": self.pool.status(), "settled": settled}

    def _allowed(self, type_id: str) -> bool:
        return any(fnmatch.fnmatchcase(type_id, pattern) for pattern in self.config.allowed_types)

    async def _on_list_kernel_types(self, msg: Message) -> dict[str, Any]:
        types = [{"id": tid, **attrs} for tid, attrs in self.finder.find_kernels() if self._allowed(tid)]
        return {"kernel_types": types}

    async def _on_launch(self, msg: Message) -> dict[str, Any]:
        content = msg.content
        type_id = content.get("type_id")
        if not isinstance(type_id, str) or "/" not in type_id:
            raise InvalidRequest("launch needs 'type_id', a kernel type id like 'spec/python3'")
        if not self._allowed(type_id):
            raise KernelTypeNotAllowed(f"kernel type {type_id!r} is not allowed by this daemon")
        self._refresh()
        limit = self.config.max_kernels
        running = len(self._claimed()) + len(self._launching)
        if limit and running >= limit:
            raise MaxKernels(f"{running} kernels are running or starting (max_kernels = {limit})")
        request = self._launch_request(type_id, content)
        resolved = self.resolve(request)
        expected = content.get("argv")
        if expected is not None:
            expected = [*expected, *request.switches] if isinstance(expected, list) else expected
            if resolved.command is None or resolved.command.argv != expected:
                runs = "a provider's kernel" if resolved.command is None else resolved.command.argv
                raise NoSuchKernelType(f"this daemon's {type_id} runs {runs}, not {expected}")
        name = request.name
        taken = any(under_way.name == name for under_way in self._launching.values()) or any(
            r.name == name for r in self.kernels.values()
        )
        if name is not None and taken:
            raise LaunchError(f"the name {name!r} is taken by another kernel")
        launch_id = content.get("launch_id")
        if launch_id is not None and (not isinstance(launch_id, str) or launch_id in self._launch_ids):
            raise InvalidRequest(f"'launch_id' must be a string no other launch under way uses, got {launch_id!r}")
        progress = LaunchProgress(type_id, name)
        with listening(progress.report):  # the launch task copies this context: its reports reach `progress`
            launch = asyncio.ensure_future(self._launch(request, resolved))
        self._launching[launch] = progress
        if launch_id is not None:
            self._launch_ids[launch_id] = launch
        try:
            return await launch
        except asyncio.CancelledError:
            by = self._stopped_launches.get(launch)
            if by is None:  # the daemon is stopping
                raise
            what = f"{type_id} as {name!r}" if name else type_id
            raise LaunchError(f"the launch of {what} was cancelled by {by} before the kernel was ready") from None
        finally:
            del self._launching[launch]
            progress.finish()
            if launch_id is not None:
                del self._launch_ids[launch_id]
            self._stopped_launches.pop(launch, None)

    async def _cancel(self, launch: asyncio.Task[dict[str, Any]], by: str) -> None:
        """Cancel a launch under way and return once what it made is gone (a queued Slurm job cancelled)."""
        if launch.done():  # it finished meanwhile: its kernel is indexed, and nothing is left to cancel
            return
        self._stopped_launches[launch] = by
        launch.cancel()
        await asyncio.wait([launch])

    async def _on_launch_progress(self, msg: Message) -> dict[str, Any]:
        """The last event of a launch under way once it has more than ``after`` events (a long poll of at most
        ``wait`` seconds); ``done`` once it has ended (its ``launch`` reply says how)."""
        content = msg.content
        after, wait = content.get("after", 0), content.get("wait", 0)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise InvalidRequest(f"'after' must be a whole number >= 0, got {after!r}")
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= REPLAY_MAX_WAIT:
            raise InvalidRequest(f"'wait' must be a number of seconds from 0 to {REPLAY_MAX_WAIT:g}, got {wait!r}")
        launch = self._launch_ids.get(str(content.get("launch_id")))
        progress = self._launching.get(launch) if launch is not None else None
        if progress is None:
            return {"count": after, "event": "", "content": {}, "done": True}
        return await progress.after(after, float(wait))

    async def _on_cancel_launch(self, msg: Message) -> dict[str, Any]:
        """A client that gave up on its launch (Ctrl-C, its own timeout) cancels it: nothing it asked for stays."""
        launch = self._launch_ids.get(str(msg.content.get("launch_id")))
        if launch is None or launch.done():
            return {"cancelled": False}  # finished meanwhile: the client shuts the kernel down if it wants to
        log.info("launch %s cancelled by its client", msg.content["launch_id"])
        await self._cancel(launch, "its client")
        return {"cancelled": True}

    async def _on_list_launches(self, msg: Message) -> dict[str, Any]:
        """The launches under way (a Slurm job in the queue), oldest first: ``ps`` shows them beside the kernels."""
        return {"launches": [under_way.to_dict() for under_way in self._launching.values()]}  # in request order

    async def _on_cancel_launches(self, msg: Message) -> dict[str, Any]:
        """Cancel every launch under way (``stop --all``); what each made is removed (a queued job cancelled)."""
        launches = [(launch, under_way) for launch, under_way in self._launching.items() if not launch.done()]
        for _, under_way in launches:
            log.info("launch of %s cancelled by a stop request for all kernels", under_way.type_id)
        await asyncio.gather(*(self._cancel(launch, "a stop request for all kernels") for launch, _ in launches))
        return {"cancelled": [under_way.to_dict() for _, under_way in launches]}

    def _claimed(self) -> list[KernelRecord]:
        """The kernels launches asked for: every indexed kernel but the pooled ones."""
        return [record for record in self.kernels.values() if record.pool is None]

    def _launch_request(self, type_id: str, content: dict[str, Any]) -> LaunchRequest:
        """The API's launch content as a request, this daemon's defaults under the client's parameters.

        The daemon launches kernel types only: its clients cannot make it run a program of their choosing.
        """
        params = content.get("launch_params")
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise LaunchError(f"'launch_params' must be an object, got {params!r}")
        cwd = content.get("cwd")
        if cwd is not None and (not isinstance(cwd, str) or not os.path.isabs(cwd)):
            raise LaunchError(f"'cwd' must be an absolute path (the daemon's directory is not yours), got {cwd!r}")
        policy = content.get("restart_policy")
        journal = content.get("journal")
        owner = content.get("owner")
        return LaunchRequest(
            kernel_type=type_id,
            switches=content.get("switches") or (),
            cwd=cwd,
            params=LaunchParams.from_mapping(
                {"transport": self.config.kernel_transport, "ip": self.config.kernel_ip, **params}
            ),
            name=content.get("name"),
            restart_policy=self.config.restart_policy if policy is None else policy,
            journal=self.config.journal if journal is None else journal,
            supervised=True,
            owner=owner,
            owner_start_time=content.get("owner_start_time") if owner is not None else None,
        )

    async def _launch(self, request: LaunchRequest, resolved: ResolvedKernel) -> dict[str, Any]:
        """A kernel from the pool when one fits (``pool: hit``), else a new one (``pool: miss``)."""
        served = self.pool.match(request, resolved)
        record = None
        if not isinstance(served, str):
            record = await self.pool.take(request, served)
            if record is None:
                served = "its kernels are all taken (it is being refilled)"
        if record is not None:
            _kernel_log(record).info(
                "launched %s from the pool%s", request.kernel_type, f" as {request.name!r}" if request.name else ""
            )
        else:
            pooled_type = any(p.kernel_type == request.kernel_type for p in self.config.pools)
            log.log(
                logging.INFO if pooled_type else logging.DEBUG,
                "launching %s without the pool: %s",
                request.kernel_type,
                served,
            )
            record = await self.start_indexed(request, resolved)
        entry = await self._entry(record, with_info=False)
        if entry is None:
            raise LaunchError(f"kernel {record.kernel_id[:12]} went away as soon as it started")
        return {"kernel": entry, "pool": "miss" if isinstance(served, str) else "hit"}

    # -- what the pool needs ----------------------------------------------

    def pool_request(self, settings: PoolSettings) -> LaunchRequest:
        """The launch that makes a kernel for pool ``settings``: the daemon's defaults, the pool's own."""
        params: dict[str, Any] = {"env": dict(settings.env)}
        for name in ("transport", "encryption"):
            if (value := getattr(settings, name)) is not None:
                params[name] = value
        content = {"cwd": settings.cwd, "launch_params": params, "switches": list(settings.switches)}
        return self._launch_request(settings.kernel_type, content)

    def resolve(self, request: LaunchRequest) -> ResolvedKernel:
        return self.finder.resolve(request)  # an unknown type's error lists the known ones

    async def start_indexed(self, request: LaunchRequest, resolved: ResolvedKernel) -> KernelRecord:
        """Start a kernel (``request``, as :meth:`resolve` found it) behind a nanny and index it (its record saved,
        its events logged)."""
        type_id, name = request.kernel_type, request.name
        info, manager = await launch_resolved(request, resolved, self.finder)
        assert isinstance(manager, ManagerClient)
        await manager.cleanup()
        record = KernelRecord(
            kernel_id=info["kernel_id"],
            kernel_type=type_id,
            connection_file=str(public_connection_file(info["kernel_id"])),
            nanny_pid=info["nanny_pid"],
            name=name,
            created=time.time(),
            nanny_start_time=info.get("nanny_start_time"),
            pool=request.pool,
        )
        self.kernels[record.kernel_id] = record
        self._log_lifecycle(record)
        try:
            self.store.save(record)
        except LaunchError:  # no room for the record (a full disk): a kernel no next daemon could adopt is half-made
            with contextlib.suppress(KernelNannyError):
                await self._shutdown(record, now=True)
            raise
        self.notifier.status(self._status())
        what = "for the pool" if request.pool else f"as {name!r}" if name else ""
        _kernel_log(record).info("launched %s%s", type_id, f" {what}" if what else "")
        return record

    def update_record(self, record: KernelRecord) -> None:
        self.kernels[record.kernel_id] = record
        self.store.save(record)

    async def retire(self, record: KernelRecord, reason: str) -> None:
        """Shut a pooled kernel down: ``reason`` says why it is not handed out."""
        _kernel_log(record).info("retiring pooled kernel: %s", reason)
        try:
            await self._shutdown(record, now=True)
        except KernelNannyError as exc:
            _kernel_log(record).warning("retiring the pooled kernel failed: %s", exc)
        self.pool.changed()

    async def _on_list_kernels(self, msg: Message) -> dict[str, Any]:
        self._refresh()
        shown = self.kernels.values() if msg.content.get("pooled") else self._claimed()
        records = sorted(shown, key=lambda r: (r.created, r.kernel_id))
        with_info = bool(msg.content.get("info", False))
        entries = await asyncio.gather(*(self._entry(r, with_info=with_info) for r in records))
        return {"kernels": [entry for entry in entries if entry is not None]}

    async def _on_get_kernel(self, msg: Message) -> dict[str, Any]:
        ref = msg.content.get("kernel")
        entry = await self._entry(self._find(ref))
        if entry is None:
            raise NoSuchKernel(f"kernel {ref!r} has just gone away")
        return {"kernel": entry}

    async def _on_shutdown_kernel(self, msg: Message) -> dict[str, Any]:
        ref = msg.content.get("kernel")
        launching = [task for task, under_way in self._launching.items() if ref is not None and under_way.name == ref]
        if launching and not any(record.name == ref for record in self.kernels.values()):
            # Still starting (a Slurm job waiting in the queue): cancel the launch, which removes what it made.
            log.info("stop request for %r while it starts: cancelling its launch", ref)
            await self._cancel(launching[0], "a stop request")
            return {"cancelled_launch": True}
        record = self._find(ref)
        await self._shutdown(record, now=bool(msg.content.get("now", False)))
        return {}

    async def _shutdown(self, record: KernelRecord, now: bool) -> None:
        if record.kernel_id not in self.kernels:  # another shutdown, or its exit, dropped it meanwhile
            return
        async with self._nannies.use(record.kernel_id, load_connection_info(record.connection_file)) as manager:
            try:
                await manager.shutdown(now=now)
            except NannyUnavailable as exc:
                if record.nanny.is_nanny():  # it runs but does not answer: say so, and what to do
                    raise unresponsive_nanny(record.name or record.kernel_id[:12], record.nanny) from exc
                raise
        self._forget(record.kernel_id)
        self.notifier.status(self._status())

    # -- idle culling -----------------------------------------------------

    def _culling_enabled(self) -> bool:
        return self.config.idle_timeout > 0 or self.config.busy_timeout > 0

    async def _cull(self) -> None:
        """Shut down kernels idle or busy for longer than the configured timeouts.

        A deadline, not an event: it is checked at a tenth of the shortest
        timeout (between 1 and 60 s), with activity as the nanny saw it.
        """
        timeouts = [t for t in (self.config.idle_timeout, self.config.busy_timeout) if t > 0]
        interval = min(CULL_CHECK_MAX_INTERVAL, max(CULL_CHECK_MIN_INTERVAL, min(timeouts) / 10))
        while True:
            await asyncio.sleep(interval)
            self._refresh()
            for record in self._claimed():  # pooled kernels wait idle on purpose
                entry = await self._entry(record)
                reason = self._cull_reason(entry.get("info") if entry else None)
                if reason:
                    _kernel_log(record).info("culling: %s", reason)
                    try:
                        await self._shutdown(record, now=False)
                    except KernelNannyError as exc:
                        _kernel_log(record).warning("culling failed: %s", exc)

    def _cull_reason(self, info: NannyInfo | None) -> str | None:
        if not info or not info.get("alive"):
            return None
        now = time.time()
        state = info.get("execution_state")
        if state == "busy":
            busy_for = now - info.get("execution_state_since", now)
            if self.config.busy_timeout and busy_for > self.config.busy_timeout:
                return f"busy for {busy_for:.0f} s (busy_timeout = {self.config.busy_timeout:g} s)"
            return None
        idle_for = now - info.get("last_activity", now)
        if self.config.idle_timeout and idle_for > self.config.idle_timeout:
            return f"idle for {idle_for:.0f} s (idle_timeout = {self.config.idle_timeout:g} s)"
        return None


def _kernel_log(record: KernelRecord) -> KernelLogAdapter:
    """The daemon's log for lines about one kernel (its nanny knows the kernel's pid; the daemon does not)."""
    return KernelLogAdapter(log, record.kernel_id)


def _record_of(running: RunningKernel) -> KernelRecord:
    return KernelRecord(
        kernel_id=running.kernel_id,
        kernel_type=running.kernel_type,
        connection_file=str(running.connection_file),
        nanny_pid=running.nanny_pid,
        name=running.name,
        created=running.connection_file.stat().st_mtime if running.connection_file.exists() else 0.0,
        nanny_start_time=running.nanny.start_time,
        pool=running.pool,
    )


#: What a failed bind means and what to do, by errno (libzmq says ENODEV for a host name it cannot resolve).
_BIND_FAILURES = {
    errno.EADDRINUSE: "the port is in use (stop what listens there, or choose another port)",
    errno.ENODEV: "no host or network interface of that name (give an IP address, or a name this machine resolves)",
    errno.EADDRNOTAVAIL: "not an address of this machine",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def _bind_failure(exc: zmq.ZMQError) -> str:
    return _BIND_FAILURES.get(exc.errno or 0, str(exc))


def _read_pid(path: Path) -> int | None:
    try:
        pid = json.loads(path.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None
