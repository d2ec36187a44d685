"""DaemonClient: talk to a kernel-nanny daemon, local or remote.

Locally, :meth:`DaemonClient.find` reads the daemon's discovery file (pid,
endpoint, API key; readable only by its user). Remotely, a *client connection
file* made by ``kernel-nanny keys new`` holds the tcp endpoint, the daemon's
public key, the client's key pair and the API key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import zmq.asyncio

from .._exceptions import ConnectionInfoError, DaemonNotRunning, DaemonUnavailable, KernelNannyError
from .._lifetime import Lifetime
from .._loop import BlockingTwin, blocking
from .._tasks import TaskGroup
from ..config import JournalLimits, RestartPolicy
from ..defaults import (
    DAEMON_LAUNCH_TIMEOUT,
    DEFAULT_DAEMON_TIMEOUT,
    DEFAULT_STARTUP_TIMEOUT,
    LAUNCH_REPORT_MARGIN_MAX,
    REPLAY_MAX_WAIT,
)
from ..paths import daemon_discovery_file
from ..protocol import Session
from ..protocol.daemon import KernelEntry
from ..protocol.manager import DaemonLaunch
from ._requests import RequestChannel
from ._sockets import log
from .manager import BlockingManagerClient, ManagerClient
from .running import pid_alive

__all__ = ["BlockingDaemonClient", "DaemonClient"]


class DaemonClient(Lifetime):
    """Requests to a daemon (asyncio): kernel types, launch, list, get, shut down, info."""

    def __init__(self, connection: Mapping[str, Any], *, timeout: float = DEFAULT_DAEMON_TIMEOUT) -> None:
        if "endpoint" not in connection or "key" not in connection:
            raise ConnectionInfoError("daemon connection info needs 'endpoint' and 'key'")
        self.connection = dict(connection)
        self.endpoint = str(connection["endpoint"])
        self.timeout = timeout
        self._tasks = TaskGroup(log)
        self._channel: RequestChannel | None = None

    def _requests(self) -> RequestChannel:
        self._check_open()
        if self._channel is None:
            connection = self.connection
            keypair = None
            if connection.get("client_secret_key"):
                keypair = (connection["client_public_key"].encode(), connection["client_secret_key"].encode())
            server_key = connection.get("server_public_key") if self.endpoint.startswith("tcp://") else None
            self._channel = RequestChannel(
                zmq.asyncio.Context.instance(),
                self.endpoint,
                Session(connection["key"], connection.get("signature_scheme", "hmac-sha256")),
                label="daemon",
                tasks=self._tasks,
                unavailable=lambda why: DaemonUnavailable(f"the daemon at {self.endpoint}: {why}"),
                curve={"curve_publickey": server_key} if server_key else None,
                client_keypair=keypair,
            )
        return self._channel

    @classmethod
    def find(cls, **kwargs: Any) -> DaemonClient:
        """The local daemon of this user; :class:`DaemonNotRunning` if there is none."""
        return cls(read_discovery_file(), **kwargs)

    @classmethod
    def running(cls, **kwargs: Any) -> DaemonClient | None:
        """The local daemon's client, or None when no daemon runs (for code that works either way)."""
        try:
            return cls.find(**kwargs)
        except DaemonNotRunning:
            return None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> DaemonClient:
        """A client for the daemon described by a client connection file (``kernel-nanny keys new``)."""
        return cls(read_client_file(path), **kwargs)

    def __repr__(self) -> str:
        return f"<DaemonClient {self.endpoint} state={self.state.value}>"

    # -- lifetime (close() closes the connection; the daemon and its kernels keep running) --

    def _begin_closing(self) -> None:
        if self._channel is not None:
            self._channel.close("the daemon client was closed while waiting for a reply")
        self._tasks.cancel()

    async def _finish_closing(self) -> None:
        await self._tasks.cancel_all()

    async def request(
        self, name: str, content: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send ``<name>_request``; the reply's content, or the error a refusal names, or :class:`DaemonUnavailable`."""
        return await self._requests().call(name, content, self.timeout if timeout is None else timeout)

    async def info(self) -> dict[str, Any]:
        """Version, server id, pid, endpoints, number of kernels, limits."""
        return await self.request("daemon_info")

    async def list_kernel_types(self) -> list[dict[str, Any]]:
        """The kernel types this daemon offers (``id`` plus attributes)."""
        types: list[dict[str, Any]] = (await self.request("list_kernel_types"))["kernel_types"]
        return types

    async def list_kernels(self, *, info: bool = False, pooled: bool = False) -> list[KernelEntry]:
        """The daemon's kernels, each with its connection info.

        ``info=True`` also asks each kernel's nanny for its ``info`` (state,
        pid, restarts...; None if unresponsive), at the cost of one round trip
        per kernel, made concurrently. ``pooled=True`` lists the pooled kernels too
        (their ``pool`` is set), which wait for a launch to take them.
        """
        content = {"info": info, "pooled": pooled}
        return cast("list[KernelEntry]", (await self.request("list_kernels", content))["kernels"])

    async def list_launches(self) -> list[dict[str, Any]]:
        """The launches under way, oldest first: ``type_id``, ``name``, ``since`` (Unix time), and the last
        ``event`` and its ``content`` (a queued Slurm job's ``kernel_pending``: its job id, state and reason)."""
        launches: list[dict[str, Any]] = (await self.request("list_launches"))["launches"]
        return launches

    async def cancel_launches(self) -> list[dict[str, Any]]:
        """Cancel every launch under way (what each made is removed: a queued job cancelled); the ones cancelled."""
        cancelled: list[dict[str, Any]] = (await self.request("cancel_launches"))["cancelled"]
        return cancelled

    async def get_kernel(self, kernel: str) -> KernelEntry:
        """One kernel, by id, id prefix or name (with its nanny's ``info``)."""
        return cast(KernelEntry, (await self.request("get_kernel", {"kernel": kernel}))["kernel"])

    async def launch(
        self,
        type_id: str,
        *,
        cwd: str | None = None,
        launch_params: Mapping[str, Any] | None = None,
        name: str | None = None,
        restart_policy: RestartPolicy | None = None,
        journal: JournalLimits | None = None,
        owner: int | None = None,
        owner_start_time: int | None = None,
        argv: Sequence[str] | None = None,
        switches: Sequence[str] = (),
        on_event: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> DaemonLaunch:
        """Launch a kernel behind its own nanny; ``(connection_info, ManagerClient)`` once it is ready.

        A pooled kernel serves the launch when one fits (see the "Fast starts" how-to); the
        result's ``pool`` says whether one did (``"hit"``) or not (``"miss"``).
        ``restart_policy`` and ``journal`` left None are the daemon's own (its configuration's).
        ``owner`` (a pid on the daemon's machine, with ``owner_start_time`` read from its
        ``/proc/<pid>/stat``) ties the kernel to that process, as
        :attr:`LaunchRequest.owner <kernel_nanny.LaunchRequest>` does. ``argv`` launches the type
        only if it runs exactly this command line (a kernelspec's, as the caller resolved it), else
        raises :exc:`~kernel_nanny.NoSuchKernelType`: for callers that must run what they describe.
        ``switches`` are added to the type's command line (``--HistoryManager.hist_file=:memory:``).
        ``on_event(event, content)`` hears what the launch reports while it waits, as it changes
        (``kernel_pending`` with a queued Slurm job's state and reason).
        """
        content: dict[str, Any] = {"type_id": type_id, "cwd": cwd, "name": name}
        if launch_params:
            content["launch_params"] = dict(launch_params)
        if restart_policy is not None:
            content["restart_policy"] = restart_policy.to_dict()
        if journal is not None:
            content["journal"] = journal.to_dict()
        if owner is not None:
            content.update(owner=owner, owner_start_time=owner_start_time)
        if argv is not None:
            content["argv"] = list(argv)
        if switches:
            content["switches"] = list(switches)
        await self.info()  # an unreachable daemon fails within the client's timeout, not the launch's
        # A long start-up timeout (a Slurm job waiting in the queue) is the daemon's to use: wait as long.
        startup = (launch_params or {}).get("startup_timeout")
        if not isinstance(startup, (int, float)) or startup <= 0:
            startup = DEFAULT_STARTUP_TIMEOUT
        timeout = max(DAEMON_LAUNCH_TIMEOUT, float(startup) + LAUNCH_REPORT_MARGIN_MAX)
        content["launch_id"] = launch_id = uuid.uuid4().hex
        following = (
            self._tasks.spawn(self._follow_progress(launch_id, on_event), name="daemon-launch-progress")
            if on_event
            else None
        )
        try:
            reply = await self.request("launch", content, timeout=timeout)
        except (asyncio.CancelledError, DaemonUnavailable):
            await self._abandon(launch_id)
            raise
        finally:
            if following is not None:
                following.cancel()
        info = reply["kernel"]["connection_info"]
        result = DaemonLaunch(info, ManagerClient(info))
        result.pool = str(reply.get("pool", "miss"))
        return result

    async def _follow_progress(self, launch_id: str, on_event: Callable[[str, Mapping[str, Any]], None]) -> None:
        """Pass on each event the daemon's launch reports (a queued Slurm job's state), as it comes."""
        seen = 0
        while True:
            try:
                state = await self.request(
                    "launch_progress",
                    {"launch_id": launch_id, "after": seen, "wait": REPLAY_MAX_WAIT},
                    timeout=self.timeout + REPLAY_MAX_WAIT,
                )
            except KernelNannyError as exc:  # an older daemon, or one gone: the launch's own reply tells
                log.debug("launch %s: no progress from the daemon (%s)", launch_id, exc)
                return
            if state["count"] > seen:
                seen = state["count"]
                on_event(state["event"], state["content"])
            if state["done"]:
                return

    async def _abandon(self, launch_id: str) -> None:
        """Have the daemon cancel a launch this client gave up on (Ctrl-C, no reply in time), so that nothing
        it started stays behind: a Slurm job waiting in the queue for a client that has gone."""
        with contextlib.suppress(Exception):
            cancelled = await self.request("cancel_launch", {"launch_id": launch_id}, timeout=DAEMON_LAUNCH_TIMEOUT)
            if cancelled.get("cancelled"):
                log.info("the daemon cancelled launch %s, which this client gave up on", launch_id)

    async def pools(self, *, wait: float = 0) -> dict[str, Any]:
        """The daemon's pools (``pools``: each type's size, ready and starting kernels, what holds it back).

        ``wait`` seconds at most for every pool to settle (full, held by a limit, or backing off after a
        failure): ``settled`` says whether they did. For scripts and tests that need a warm pool.
        """
        return await self.request("pools", {"wait": wait}, timeout=self.timeout + wait)

    async def shutdown_kernel(self, kernel: str, *, now: bool = False) -> None:
        """Shut a kernel down (its nanny exits) and drop it from the daemon's index."""
        await self.request("shutdown_kernel", {"kernel": kernel, "now": now}, timeout=DAEMON_LAUNCH_TIMEOUT)


class BlockingDaemonClient(BlockingTwin):
    """:class:`DaemonClient` with blocking methods, on a private background loop."""

    _thread_name = "kernel-nanny-daemon-client"

    def __init__(self, connection: Mapping[str, Any], *, timeout: float = DEFAULT_DAEMON_TIMEOUT) -> None:
        super().__init__(DaemonClient(connection, timeout=timeout))

    @classmethod
    def find(cls, **kwargs: Any) -> BlockingDaemonClient:
        """The local daemon of this user; :class:`DaemonNotRunning` if there is none."""
        return cls(read_discovery_file(), **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> BlockingDaemonClient:
        """A client for the daemon described by a client connection file."""
        return cls(read_client_file(path), **kwargs)

    @property
    def connection_info(self) -> dict[str, Any]:
        return dict(self._async.connection)

    @classmethod
    def running(cls, **kwargs: Any) -> BlockingDaemonClient | None:
        """The local daemon's client, or None when no daemon runs."""
        try:
            return cls.find(**kwargs)
        except DaemonNotRunning:
            return None

    def launch(self, type_id: str, **kwargs: Any) -> tuple[dict[str, Any], BlockingManagerClient]:
        """Launch a kernel behind its own nanny; ``(connection_info, BlockingManagerClient)`` once ready."""
        info, manager = self._loop.run(self._async.launch(type_id, **kwargs))
        assert isinstance(manager, ManagerClient)
        self._loop.run(manager.cleanup())
        return info, BlockingManagerClient(info)

    request = blocking(DaemonClient.request)
    info = blocking(DaemonClient.info)
    list_kernel_types = blocking(DaemonClient.list_kernel_types)
    list_kernels = blocking(DaemonClient.list_kernels)
    get_kernel = blocking(DaemonClient.get_kernel)
    shutdown_kernel = blocking(DaemonClient.shutdown_kernel)
    list_launches = blocking(DaemonClient.list_launches)
    cancel_launches = blocking(DaemonClient.cancel_launches)


def read_discovery_file() -> dict[str, Any]:
    """The local daemon's discovery file; :class:`DaemonNotRunning` if it is missing or stale."""
    path = daemon_discovery_file()
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise DaemonNotRunning(
            f"no kernel-nanny daemon is running (no {path}); start one: 'kernel-nanny serve'"
        ) from None
    except (OSError, ValueError) as exc:
        raise DaemonNotRunning(f"cannot read the daemon's discovery file {path}: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int) or not pid_alive(info["pid"]):
        raise DaemonNotRunning(f"the daemon that wrote {path} is no longer running")
    return info


def read_client_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A client connection file made by ``kernel-nanny keys new``, with errors that name it."""
    try:
        info = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConnectionInfoError(f"cannot read daemon connection file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConnectionInfoError(f"daemon connection file {path} is not valid JSON: {exc}") from None
    if not isinstance(info, dict):
        raise ConnectionInfoError(f"daemon connection file {path} must hold a JSON object")
    return info
