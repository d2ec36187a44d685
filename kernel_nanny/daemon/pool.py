"""The daemon's kernel pool: kernels started ahead of time, handed to launches in milliseconds.

Each ``[pool."<kernel type>"]`` keeps ``size`` ready kernels of its type, each
behind its own nanny like any kernel, started with the daemon's defaults and
the pool's ``cwd``, ``env`` and ``transport``. A launch takes one when it
asks for what the pool holds: the same *pool key* (:func:`pool_key`: the kernel's
resolved command, transport, encryption, restart policy and journal; not its
name, owner, directory or environment), and either the pool's directory and
environment or a kernel that can take the launch's while it runs
(:mod:`kernel_nanny.launch.binding`). Otherwise the launch starts a kernel as
without a pool; the reply says which (``pool``: ``hit`` or ``miss``).

A taken kernel is refilled in the background. A pooled kernel that died, was
restarted or ran anyone's code is *disturbed* (its nanny says so): it is
retired and replaced, never handed out. Pooled kernels are nannies like any
other, so they outlive the daemon, which finds them again at start (their
nannies publish their pool key) and keeps those its configuration still
describes. Listings leave them out (``ps --all`` shows them), culling spares them,
and ``max_kernels`` does not count them until they are taken.

Limits: ``[pool] max_kernels`` for all pools together, ``max_memory`` for
their resident memory; a pool whose kernels fail to start backs off
(``POOL_RETRY_FIRST`` doubling to ``POOL_RETRY_MAX``) and logs why.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .._backoff import backoff_delay
from .._exceptions import KernelNannyError, LaunchError
from .._tasks import TaskGroup
from ..client.kernel import KernelClient
from ..client.manager import ManagerClient
from ..defaults import POOL_BIND_TIMEOUT, POOL_RETRY_FIRST, POOL_RETRY_MAX
from ..discovery.resolved import ResolvedKernel
from ..launch.binding import can_bind, ipykernel_binding, start_only_variables
from ..launch.connection import choose_transport, supports_curve
from ..launch.request import LaunchRequest
from ..protocol import load_connection_info
from .pool_settings import PoolLimits, PoolSettings
from .state import KernelRecord

__all__ = ["KernelPool", "PoolHost", "pool_key"]

log = logging.getLogger("kernel_nanny.daemon")

#: A pool holding all its kernels (not a limit: nothing to report).
_FULL = "full"


class PoolHost(Protocol):
    """What the pool needs of the daemon."""

    kernels: dict[str, KernelRecord]

    def pool_request(self, settings: PoolSettings) -> LaunchRequest: ...
    def resolve(self, request: LaunchRequest) -> ResolvedKernel: ...
    async def start_indexed(self, request: LaunchRequest, resolved: ResolvedKernel) -> KernelRecord: ...
    def nanny(self, kernel_id: str) -> AbstractAsyncContextManager[ManagerClient]: ...
    def update_record(self, record: KernelRecord) -> None: ...
    async def retire(self, record: KernelRecord, reason: str) -> None: ...


def pool_key(request: LaunchRequest, resolved: ResolvedKernel) -> str:
    """What a launch and a pooled kernel must share for the kernel to serve the launch.

    Everything a running kernel cannot change: its resolved command (a changed
    kernelspec is another pool), transport, encryption as it comes out, restart
    policy, journal. Not its name, owner, directory or environment (bound at take time, or compared).
    """
    document = request.to_dict()
    for name in ("cwd", "name", "owner", "owner_start_time", "pool"):
        document.pop(name)
    params = document["params"]
    for name in ("env", "startup_timeout", "echo_output", "connection_file"):
        params.pop(name)
    command = resolved.command
    if command is not None:
        document["command"] = command.to_dict()
        params["transport"] = choose_transport(params["transport"], command.metadata, command.argv)
        curve = params["transport"] == "tcp" and (
            params["encryption"] == "required" or (params["encryption"] == "auto" and supports_curve(command.metadata))
        )
        params["encryption"] = "curve" if curve else "none"
        if params["transport"] == "ipc":
            params.pop("ip")
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Pool:
    settings: PoolSettings
    request: LaunchRequest
    #: What the request runs, resolved once: every refill starts the same.
    resolved: ResolvedKernel
    key: str
    bindable: bool
    starting: int = 0
    #: Failed starts in a row, and the last one's error (the pool backs off meanwhile).
    failures: int = 0
    error: str | None = None
    #: Why the pool is not being filled now (logged once per cause).
    held: str | None = None
    #: Set when the pool may have to be filled again (a kernel taken, retired, gone).
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Take:
    """How a launch can be served from a pool: the pool, and the binding its kernel needs (None: none)."""

    pool: _Pool
    binding: dict[str, Any] | None = None


class KernelPool:
    """The configured pools: kept full in the background, taken from by launches."""

    def __init__(self, host: PoolHost, pools: tuple[PoolSettings, ...], limits: PoolLimits) -> None:
        self._host = host
        self._settings = pools
        self.limits = limits
        self._pools: dict[str, _Pool] = {}
        #: Set while every pool is settled: full, held by a limit, or backing off after a failure.
        self._settled = asyncio.Event()
        self._taking: set[str] = set()
        self._kernel_pids: dict[str, int | None] = {}
        self._tasks = TaskGroup(log)

    def __repr__(self) -> str:
        return f"<KernelPool pools={len(self._pools)} kernels={len(self.members())}>"

    # -- lifetime ---------------------------------------------------------

    async def start(self) -> None:
        """Resolve the pools, retire the pooled kernels no pool describes any more, start filling."""
        for settings in self._settings:
            request = self._host.pool_request(settings)
            try:
                resolved = self._host.resolve(request)
            except KernelNannyError as exc:
                log.error("pool %s is not filled: %s", settings.kernel_type, exc)
                continue
            key = pool_key(request, resolved)
            pool = _Pool(settings, replace(request, pool=key), resolved, key, can_bind(resolved.command))
            self._pools[key] = pool
        for record in self.members():
            if record.pool not in self._pools:
                await self._host.retire(record, "its pool is no longer configured (or its kernel changed)")
        kept = self.members()
        for record in kept:
            await self._note_pid(record)
        if self._pools:
            log.info("pool: %d pool(s), %d pooled kernel(s) kept from before", len(self._pools), len(kept))
        self._check_settled()
        for pool in self._pools.values():
            self._tasks.spawn(self._fill(pool), name=f"pool-{pool.settings.kernel_type}")

    async def close(self) -> None:
        """Stop filling (pooled kernels keep running: the next daemon takes them over)."""
        await self._tasks.cancel_all()

    def changed(self) -> None:
        """A pooled kernel was taken, retired or went away: the pools are checked again."""
        self._settled.clear()  # until each filler has looked again
        for pool in self._pools.values():
            pool.wakeup.set()

    async def settled(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every pool is full, held by a limit, or backing off
        after a failure; whether they are."""
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _check_settled(self) -> None:
        if all(p.held is not None or p.failures for p in self._pools.values()):
            self._settled.set()
        else:
            self._settled.clear()

    # -- members ----------------------------------------------------------

    def members(self, pool: _Pool | None = None) -> list[KernelRecord]:
        """The pooled kernels (of ``pool``), oldest first, except those being taken."""
        records = [
            r
            for r in self._host.kernels.values()
            if r.pool is not None and (pool is None or r.pool == pool.key) and r.kernel_id not in self._taking
        ]
        return sorted(records, key=lambda r: (r.created, r.kernel_id))

    def status(self) -> list[dict[str, Any]]:
        """Each pool's type, size and ready kernels (the daemon's info)."""
        return [
            {
                "kernel_type": p.settings.kernel_type,
                "size": p.settings.size,
                "ready": len(self.members(p)),
                "starting": p.starting,
                "held": None if p.held == _FULL else p.held,
                "failures": p.failures,
                "error": p.error,
            }
            for p in self._pools.values()
        ]

    # -- filling ----------------------------------------------------------

    async def _fill(self, pool: _Pool) -> None:
        while True:
            pool.wakeup.clear()  # before the check: a change from now on wakes the wait below
            held = self._hold(pool)
            if held is not None:
                if held != pool.held and held != _FULL:
                    log.info("pool %s not refilled: %s", pool.settings.kernel_type, held)
                pool.held = held
                self._check_settled()
                await pool.wakeup.wait()
                continue
            pool.held = None
            self._check_settled()
            pool.starting += 1
            try:
                record = await self._host.start_indexed(pool.request, pool.resolved)
            except (KernelNannyError, OSError) as exc:
                pool.failures += 1
                pool.error = str(exc)
                delay = backoff_delay(pool.failures, POOL_RETRY_FIRST, POOL_RETRY_MAX)
                log.error(
                    "pool %s: a kernel failed to start (%s); trying again in %g s",
                    pool.settings.kernel_type,
                    exc,
                    delay,
                )
                self._check_settled()
                await asyncio.sleep(delay)
                continue
            finally:
                pool.starting -= 1
            pool.failures, pool.error = 0, None
            await self._note_pid(record)
            log.debug("pool %s: kernel %s ready", pool.settings.kernel_type, record.kernel_id[:12])

    def _hold(self, pool: _Pool) -> str | None:
        """Why ``pool`` must not start another kernel now, or None."""
        if len(self.members(pool)) + pool.starting >= pool.settings.size:
            return _FULL
        total = len(self.members()) + sum(p.starting for p in self._pools.values())
        if total >= self.limits.max_kernels:
            return f"{total} pooled kernels (max_kernels = {self.limits.max_kernels})"
        if self.limits.max_memory:
            used = self._memory()
            if used >= self.limits.max_memory:
                return f"pooled kernels use {used >> 20} MiB (max_memory = {self.limits.max_memory >> 20} MiB)"
        return None

    async def _note_pid(self, record: KernelRecord) -> None:
        """Remember a pooled kernel's pid, which only the memory limit reads (a round trip to its nanny)."""
        if not self.limits.max_memory:
            return
        try:
            async with self._host.nanny(record.kernel_id) as manager:
                self._kernel_pids[record.kernel_id] = (await manager.info()).get("pid")
        except KernelNannyError:
            self._kernel_pids[record.kernel_id] = None

    def _memory(self) -> int:
        """Resident bytes of the pooled kernels and their nannies."""
        total = 0
        for record in self.members():
            for pid in (record.nanny_pid, self._kernel_pids.get(record.kernel_id)):
                if pid is not None:
                    total += _resident_bytes(pid)
        return total

    # -- taking -----------------------------------------------------------

    def match(self, request: LaunchRequest, resolved: ResolvedKernel) -> _Take | str:
        """How a pool can serve ``request``, or why none can (a miss)."""
        pool = self._pools.get(pool_key(request, resolved))
        if pool is None:
            if any(p.settings.kernel_type == request.kernel_type for p in self._pools.values()):
                return "the launch asks for other settings than the pool's (transport, encryption, policy, journal)"
            return "no pool for this kernel type"
        env = dict(request.params.env or {})
        if request.cwd == pool.settings.cwd and env == dict(pool.settings.env):
            return _Take(pool)
        if not pool.bindable:
            return "its kernels cannot take another directory or environment while they run"
        unset = [name for name in pool.settings.env if name not in env]
        changed = {n: v for n, v in env.items() if pool.settings.env.get(n) != v}
        start_only = start_only_variables({**changed, **dict.fromkeys(unset, "")})
        if start_only:
            return f"{', '.join(start_only)} take effect only when a kernel starts"
        cwd = request.cwd or os.getcwd()
        return _Take(pool, {"cwd": cwd, "env": changed, "unset": unset, "started_in": pool.settings.cwd or os.getcwd()})

    async def take(self, request: LaunchRequest, take: _Take) -> KernelRecord | None:
        """A pooled kernel claimed for ``request`` (its name and owner) and bound to it; None if none was left."""
        pool = take.pool
        for record in self.members(pool):
            self._taking.add(record.kernel_id)
            try:
                claimed = await self._claim(record, request)
                if claimed is None:
                    continue
                if take.binding is not None:
                    try:
                        await _bind(claimed, take.binding)
                    except (KernelNannyError, OSError) as exc:
                        await self._host.retire(claimed, f"it could not take the launch's directory ({exc})")
                        raise LaunchError(f"the pooled {request.kernel_type} kernel could not be bound: {exc}") from exc
                return claimed
            finally:
                self._taking.discard(record.kernel_id)
                self.changed()
        return None

    async def _claim(self, record: KernelRecord, request: LaunchRequest) -> KernelRecord | None:
        content = {"name": request.name, "owner": request.owner, "owner_start_time": request.owner_start_time}
        try:
            async with self._host.nanny(record.kernel_id) as manager:
                await manager.request("claim", content)
        except (KernelNannyError, OSError) as exc:
            await self._host.retire(record, f"it cannot be handed out: {exc}")
            return None
        claimed = replace(record, pool=None, name=request.name, created=time.time())
        self._kernel_pids.pop(record.kernel_id, None)
        self._host.update_record(claimed)
        return claimed


async def _bind(record: KernelRecord, binding: dict[str, Any]) -> None:
    """Run the binding code in the claimed kernel; an error reply is raised as a LaunchError.

    The client is not entered (``async with`` would also follow the kernel's output): the request
    connects the shell channel alone.
    """
    client = KernelClient(load_connection_info(record.connection_file))
    try:
        reply = await client.execute(
            ipykernel_binding(**binding), silent=True, store_history=False, timeout=POOL_BIND_TIMEOUT
        )
    finally:
        client.close()
        await client.wait_closed()
    if reply.content.get("status") != "ok":
        raise LaunchError(f"{reply.content.get('ename')}: {reply.content.get('evalue')}")


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
