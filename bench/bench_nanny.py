"""Kernels behind a nanny process: control round trips, death notice, restarts, interrupts, memory.

A nanny (``python -m kernel_nanny.nanny``, started by ``start_kernel``, supervised) is a detached process that owns
one kernel and answers a :class:`~kernel_nanny.ManagerClient` on ``nanny_control`` / ``nanny_events``.
These benchmarks time what the nanny adds, next to:

* our kernels without a nanny (``launch_local``: the kernel is our own child, which is also what the
  nanny runs inside), and
* jupyter_client (``AsyncKernelManager``, or ``AsyncIOLoopKernelManager`` where its restarter is
  needed), where it has the same operation.

Every kernel type is ``pyimport/kernel``, i.e. ``sys.executable -m ipykernel_launcher``, the same command
as the ``kn-bench-python`` kernelspec jupyter_client starts. Every nanny is registered with
``_common.REGISTRY`` and shut down in a ``finally`` (``shutdown(now=True)``, ``cleanup()``, then we wait
until the nanny process is gone); the runner also looks for any process of the run that outlived its
benchmark, detached nannies included. The issue's goals are reported next to the figures; nothing here
asserts on a timing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from _common import (
    BENCH_KERNEL_NAME,
    REGISTRY,
    Config,
    Row,
    fmt_bytes,
    fmt_time,
    measure_interleaved,
    orders,
    ratio_ci,
    round_order,
    summarize,
)
from _sides import (
    READY_TIMEOUT,
    REPLY_TIMEOUT,
    Nanny,
    Ours,
    Theirs,
    drain_theirs,
    our_first_execute_ok,
    stop_all,
    their_first_execute_ok,
    time_our_interrupt,
    time_their_interrupt,
)

from kernel_nanny import KernelClient, ManagerClient, Message, RestartPolicy, Session

#: For the benchmarks that SIGKILL a kernel again and again: every automatic restart immediate. (The
#: default policy restarts the first crash at once, then backs off 0.5 s, 1 s, 2 s... within 60 s.)
NO_BACKOFF = RestartPolicy(max_restarts=1000, window=60.0, backoff=0.0)
MiB = 2**20

GOAL_IS_ALIVE_P50 = 0.5e-3
#: Silence before each "sporadic" nanny_control request (s).
SPORADIC_GAP = 0.05
GOAL_DEATH_P50 = 50e-3
GOAL_RESTART_MARGIN = 50e-3
GOAL_INTERRUPT_RATIO = 1.2
GOAL_NANNY_RSS = 30 * MiB


# -- events ------------------------------------------------------------------------------------------------


class EventLog:
    """A ManagerClient's lifecycle events with their arrival times (``perf_counter``, in its handler)."""

    def __init__(self, manager: ManagerClient) -> None:
        self.seen: list[tuple[float, Message]] = []
        self._changed = asyncio.Event()
        manager.add_event_handler(self._on_event)

    def _on_event(self, event: Message) -> None:
        if event.msg_type not in ("heartbeat", "stream"):
            self.seen.append((time.perf_counter(), event))
            self._changed.set()

    async def next(self, kind: str, start: int, timeout: float) -> tuple[float, Message]:
        """The first ``kind`` event from index ``start`` on: ``(arrival time, event)``."""

        async def find() -> tuple[float, Message]:
            while True:
                for when, event in self.seen[start:]:
                    if event.msg_type == kind:
                        return when, event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)


def _goal_row(row: Row, goal: str, met: bool | None, detail: str) -> Row:
    """``row`` with an issue's goal; ``met=None``: not judged by this run (e.g. --quick's smaller N)."""
    row.goal, row.goal_met, row.goal_detail = goal, met, detail
    return row


def _median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


# -- 1. nanny_control round trip ------------------------------------------------------------------------------

#: A bare ROUTER echo (no signing, no parsing) in its own process: the zmq round-trip floor. Reads its
#: endpoints as one JSON line on stdin, prints the tcp ports it bound, and exits when stdin closes.
ECHO_SERVER = r"""
import json, sys, zmq
specs = json.loads(sys.stdin.readline())
ctx = zmq.Context()
poller = zmq.Poller()
bound = {}
for name, spec in specs.items():
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    if spec.get("secret"):
        sock.curve_secretkey = spec["secret"].encode()
        sock.curve_publickey = spec["public"].encode()
        sock.curve_server = True
    if spec["url"].startswith("tcp://"):
        bound[name] = sock.bind_to_random_port(spec["url"])
    else:
        sock.bind(spec["url"])
        bound[name] = None
    poller.register(sock, zmq.POLLIN)
poller.register(sys.stdin.fileno(), zmq.POLLIN)
print(json.dumps(bound), flush=True)
while True:
    for sock, _ in poller.poll():
        if sock == sys.stdin.fileno():
            sys.exit(0)
        sock.send_multipart(sock.recv_multipart())
"""


class EchoServer:
    """The echo process and the endpoints it serves (``name -> url``)."""

    def __init__(self, process: asyncio.subprocess.Process, urls: dict[str, str], token: int, ipc_file: Path) -> None:
        self.process = process
        self.urls = urls
        self.token = token
        self.ipc_file = ipc_file

    @classmethod
    async def start(cls, ipc_file: Path, curve_public: bytes, curve_secret: bytes) -> EchoServer:
        specs = {
            "ipc": {"url": f"ipc://{ipc_file}"},
            "tcp": {"url": "tcp://127.0.0.1"},
            "tcp+curve": {"url": "tcp://127.0.0.1", "public": curve_public.decode(), "secret": curve_secret.decode()},
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            ECHO_SERVER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )

        async def kill() -> None:
            if process.returncode is None:
                process.kill()
                await process.wait()
            ipc_file.unlink(missing_ok=True)

        token = REGISTRY.add(f"zmq echo server pid={process.pid}", kill)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(specs).encode() + b"\n")
        await process.stdin.drain()
        bound = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        urls = {
            name: spec["url"] if bound[name] is None else f"{spec['url']}:{bound[name]}" for name, spec in specs.items()
        }
        return cls(process, urls, token, ipc_file)

    async def stop(self) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()  # EOF: the echo loop exits
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
            self.ipc_file.unlink(missing_ok=True)
        finally:
            REGISTRY.discard(self.token)


def _dealer(context: Any, url: str, server_key: bytes | None) -> Any:
    """A DEALER of ``context`` (sync or asyncio) connected to ``url``, CurveZMQ if given a server key."""
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    if server_key is not None:
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
        sock.curve_serverkey = server_key
    sock.connect(url)
    return sock


async def bench_nanny_control(cfg: Config) -> list[Row]:
    """``ManagerClient.is_alive()`` round trips to a nanny, next to a bare zmq DEALER/ROUTER echo.

    Variants are measured in batches, the batch order turning each round, so they share the noise.
    """
    per_variant = cfg.n(2000, 300)
    batch = cfg.n(100, 50)
    rounds = max(1, per_variant // batch)
    nannies: list[Nanny] = []
    theirs: Theirs | None = None
    subscribed: ManagerClient | None = None
    echo: EchoServer | None = None
    sockets: list[zmq.Socket[Any]] = []
    sync_context: zmq.Context[Any] | None = None
    try:
        nannies = list(
            await asyncio.gather(Nanny.start("ipc"), Nanny.start("tcp", "auto"), Nanny.start("tcp", "disabled"))
        )
        ipc_nanny, curve_nanny, tcp_nanny = nannies
        assert curve_nanny.info.get("curve_publickey") and not tcp_nanny.info.get("curve_publickey")
        subscribed = ManagerClient(ipc_nanny.info)
        await subscribed.subscribe()
        theirs = await Theirs.launch("tcp")
        km = theirs.km

        public, secret = zmq.curve_keypair()
        ipc_file = Path(os.environ["JUPYTER_RUNTIME_DIR"]) / f"echo-{uuid.uuid4().hex[:12]}"
        echo = await EchoServer.start(ipc_file, public, secret)
        # The floor sends what ManagerClient sends: a signed is_alive_request, six frames of the same size.
        session = Session(ipc_nanny.info["key"], ipc_nanny.info["signature_scheme"])
        frames = session.serialize(session.msg("is_alive_request", {}))
        async_context = zmq.asyncio.Context.instance()
        sync_context = zmq.Context()
        keys = {"ipc": None, "tcp": None, "tcp+curve": public}
        async_dealers = {n: _dealer(async_context, echo.urls[n], keys[n]) for n in ("ipc", "tcp", "tcp+curve")}
        sync_dealers = {n: _dealer(sync_context, echo.urls[n], keys[n]) for n in ("ipc", "tcp")}
        sockets += [*async_dealers.values(), *sync_dealers.values()]

        def nanny_op(manager: ManagerClient) -> Callable[[], Awaitable[Any]]:
            return manager.is_alive

        def async_floor(sock: zmq.asyncio.Socket) -> Callable[[], Awaitable[Any]]:
            async def op() -> None:
                await sock.send_multipart(frames)
                await sock.recv_multipart()

            return op

        def sync_floor(sock: zmq.Socket[Any]) -> Callable[[], None]:
            def op() -> None:
                sock.send_multipart(frames)
                sock.recv_multipart()

            return op

        # name -> (operation, is it a coroutine function)
        variants: dict[str, tuple[Callable[[], Any], bool]] = {
            "ipc": (nanny_op(ipc_nanny.manager), True),
            "ipc-subscribed": (nanny_op(subscribed), True),
            "tcp+curve": (nanny_op(curve_nanny.manager), True),
            "tcp": (nanny_op(tcp_nanny.manager), True),
            "floor-async-ipc": (async_floor(async_dealers["ipc"]), True),
            "floor-async-tcp": (async_floor(async_dealers["tcp"]), True),
            "floor-async-tcp+curve": (async_floor(async_dealers["tcp+curve"]), True),
            "floor-sync-ipc": (sync_floor(sync_dealers["ipc"]), False),
            "floor-sync-tcp": (sync_floor(sync_dealers["tcp"]), False),
            "jc-is-alive": (km.is_alive, True),
        }
        for manager in (ipc_nanny.manager, subscribed, curve_nanny.manager, tcp_nanny.manager):
            assert await manager.is_alive() is True
        samples = await measure_interleaved(variants, rounds, batch)

        # Sporadic calls, as a UI or a supervisor makes them: each after SPORADIC_GAP of silence, so
        # every thread on the path (zmq I/O threads, event loops, in both processes) starts asleep.
        sporadic_variants = {
            "sporadic-ipc": variants["ipc"][0],
            "sporadic-tcp+curve": variants["tcp+curve"][0],
            "sporadic-floor-async-ipc": variants["floor-async-ipc"][0],
        }
        for name in sporadic_variants:
            samples[name] = []
        for rnd, forward in orders(cfg.n(150, 40)):
            for name in round_order(list(sporadic_variants), rnd, forward):
                await asyncio.sleep(SPORADIC_GAP)
                t0 = time.perf_counter()
                await sporadic_variants[name]()
                samples[name].append(time.perf_counter() - t0)
    finally:
        for sock in sockets:
            sock.close(linger=0)
        if sync_context is not None:
            sync_context.term()
        if echo is not None:
            await echo.stop()
        if subscribed is not None:
            await subscribed.cleanup()
        await stop_all([*nannies, *([theirs] if theirs is not None else [])])

    def goal(row: Row) -> Row:
        s = summarize(row.ours)
        return _goal_row(
            row,
            f"p50 <= {GOAL_IS_ALIVE_P50 * 1e3:g} ms",
            s["median"] <= GOAL_IS_ALIVE_P50,
            f"p50 {fmt_time(s['median'])}, p99 {fmt_time(s['p99'])}",
        )

    over_floor = _median(samples["ipc"]) - _median(samples["floor-async-ipc"])
    rows = [
        goal(
            Row(
                "nanny-control",
                "is_alive round trip: ManagerClient, ipc (default)",
                samples["ipc"],
                notes=[
                    "nanny-control: ManagerClient.is_alive() -> nanny_control (ROUTER) -> is_alive_reply, timed per "
                    "call; the nanny signs, verifies and answers each request in a task. Floors: a bare ROUTER "
                    "echo in another process (no signing, no parsing), sent the same six frames as a signed "
                    f"is_alive_request; the nanny costs {fmt_time(over_floor)} over the asyncio floor on ipc "
                    "(medians). jupyter_client has no such round trip: its km.is_alive() polls its own child "
                    "in-process, so its manager must live in the application's process"
                ],
            )
        ),
        goal(Row("nanny-control", "is_alive: ManagerClient, ipc, subscribed to events", samples["ipc-subscribed"])),
        goal(Row("nanny-control", "is_alive: ManagerClient, tcp + CurveZMQ (tcp default)", samples["tcp+curve"])),
        goal(Row("nanny-control", "is_alive: ManagerClient, tcp, no encryption", samples["tcp"])),
        goal(
            Row(
                "nanny-control",
                f"is_alive, sporadic (after {SPORADIC_GAP * 1e3:g} ms idle): ManagerClient, ipc",
                samples["sporadic-ipc"],
                notes=[
                    f"nanny-control: 'sporadic' rows: each call after {SPORADIC_GAP * 1e3:g} ms of silence, as a UI "
                    "or supervisor polls; all the other rows are back-to-back calls, where every thread on the "
                    "path is already awake. The floor rises too: much of the difference is waking threads in "
                    "two processes (this machine is a VM)"
                ],
            )
        ),
        goal(
            Row(
                "nanny-control",
                f"is_alive, sporadic (after {SPORADIC_GAP * 1e3:g} ms idle): ManagerClient, tcp + CurveZMQ",
                samples["sporadic-tcp+curve"],
            )
        ),
        Row("nanny-control", "  floor: zmq DEALER/ROUTER echo, asyncio DEALER, ipc", samples["floor-async-ipc"]),
        Row("nanny-control", "  floor: zmq DEALER/ROUTER echo, asyncio DEALER, tcp", samples["floor-async-tcp"]),
        Row(
            "nanny-control",
            "  floor: zmq DEALER/ROUTER echo, asyncio DEALER, tcp + CurveZMQ",
            samples["floor-async-tcp+curve"],
        ),
        Row("nanny-control", "  floor: zmq DEALER/ROUTER echo, sync DEALER, ipc", samples["floor-sync-ipc"]),
        Row("nanny-control", "  floor: zmq DEALER/ROUTER echo, sync DEALER, tcp", samples["floor-sync-tcp"]),
        Row(
            "nanny-control",
            f"  floor: zmq DEALER/ROUTER echo, asyncio DEALER, ipc, sporadic ({SPORADIC_GAP * 1e3:g} ms idle)",
            samples["sporadic-floor-async-ipc"],
        ),
        Row(
            "nanny-control",
            "  info: jupyter_client await km.is_alive() (in-process poll, no round trip)",
            [],
            samples["jc-is-alive"],
        ),
    ]
    return rows


# -- 2. a kernel SIGKILLed: how soon does its manager know? ------------------------------------------------------


async def _theirs_death_once() -> tuple[float, bool]:
    """jupyter_client: SIGKILL -> the restarter's 'restart' callback. ``(seconds, restart completed)``.

    A fresh ``AsyncIOLoopKernelManager`` per sample (its restarter gives up after 5 restarts that do not
    stay up 10 s, and picks new ports within the first 10 s). The kill lands at a random phase of the
    restarter's ``time_to_dead`` poll.
    """
    from jupyter_client.ioloop.manager import AsyncIOLoopKernelManager

    km = AsyncIOLoopKernelManager(kernel_name=BENCH_KERNEL_NAME)

    async def stop() -> None:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)

    token = REGISTRY.add("jupyter_client kernel (AsyncIOLoopKernelManager)", stop)
    fired: list[float] = []
    event = asyncio.Event()

    def on_restart() -> None:
        fired.append(time.perf_counter())
        event.set()

    try:
        await km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        km.add_restart_callback(on_restart, "restart")
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=READY_TIMEOUT)
        finally:
            kc.stop_channels()
        restarter = km._restarter
        await asyncio.sleep(random.uniform(0, restarter.time_to_dead))
        t0 = time.perf_counter()
        os.kill(km.provisioner.pid, signal.SIGKILL)  # type: ignore[union-attr]
        await asyncio.wait_for(event.wait(), 3 * restarter.time_to_dead + 10)
        elapsed = fired[0] - t0
        # Let its restart_kernel() finish before shutting down (its poll sets _restarting after it).
        deadline = time.monotonic() + READY_TIMEOUT
        while not restarter._restarting and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return elapsed, bool(restarter._restarting)
    finally:
        try:
            await stop()
        finally:
            REGISTRY.discard(token)


async def bench_nanny_death(cfg: Config) -> list[Row]:
    """SIGKILL the kernel (from here, by pid) -> the manager knows.

    Ours: the ``kernel_died`` event reaches a subscribed ManagerClient (the nanny sees the exit itself,
    no polling). Theirs: the restarter of an ``AsyncIOLoopKernelManager`` polls ``is_alive()`` every
    ``time_to_dead`` (3 s by default) and calls its 'restart' callbacks; a few samples only.
    """
    ours_n = cfg.n(20, 5)
    theirs_n = cfg.n(5, 2)
    local_n = cfg.n(10, 3)
    local: list[float] = []
    died: list[float] = []
    restarted: list[float] = []
    theirs: list[float] = []
    odd: list[str] = []
    theirs_restart_incomplete = 0
    nanny: Nanny | None = None
    try:
        nanny = await Nanny.start("ipc", restart_policy=NO_BACKOFF)
        log = EventLog(nanny.manager)
        await nanny.manager.subscribe()
        pid = await nanny.kernel_pid()

        async def ours_once() -> None:
            nonlocal pid
            await asyncio.sleep(0.2)  # the restarted kernel settles
            start = len(log.seen)
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            t_died, died_event = await log.next("kernel_died", start, 10)
            t_restarted, restarted_event = await log.next("kernel_restarted", start, READY_TIMEOUT)
            died.append(t_died - t0)
            restarted.append(t_restarted - t0)
            expected = {"signal": 9, "reason": "killed", "restarting": True, "requested": False}
            got = {k: died_event.content.get(k) for k in expected}
            if got != expected:
                odd.append(f"kernel_died {got}")
            pid = int(restarted_event.content["pid"])

        async def local_once() -> None:
            kernel = await Ours.local()
            try:
                await asyncio.sleep(0.2)
                waiter = asyncio.ensure_future(kernel.manager.wait())
                await asyncio.sleep(0.01)  # the waiter is waiting
                t0 = time.perf_counter()
                os.kill(kernel.manager.pid, signal.SIGKILL)
                await asyncio.wait_for(waiter, 30)
                local.append(time.perf_counter() - t0)
            finally:
                await kernel.stop()

        for i, ours_first in orders(max(ours_n, theirs_n, local_n)):
            for side in ("ours", "local", "theirs") if ours_first else ("theirs", "local", "ours"):
                if side == "ours" and i < ours_n:
                    await ours_once()
                elif side == "local" and i < local_n:
                    await local_once()
                elif side == "theirs" and i < theirs_n:
                    elapsed, completed = await _theirs_death_once()
                    theirs.append(elapsed)
                    theirs_restart_incomplete += not completed
    finally:
        if nanny is not None:
            await nanny.stop()
    s = summarize(died)
    notes = [
        "nanny-death: SIGKILL sent from the benchmark process to the kernel's pid; ours = arrival of the "
        "kernel_died event in a subscribed ManagerClient's handler; theirs = AsyncIOLoopKernelManager's "
        "'restart' callback (km.add_restart_callback), its restarter polling is_alive() every time_to_dead "
        "= 3 s; the kill lands at a random phase of that poll, so theirs is ~uniform over 0-3 s. Our nanny "
        "uses RestartPolicy(backoff=0) so every sample restarts at once (default: the first at once, then "
        "0.5 s, 1 s, 2 s... of back-off within 60 s)"
    ]
    if odd:
        notes.append(f"nanny-death: unexpected kernel_died contents: {odd}")
    if theirs_restart_incomplete:
        notes.append(f"nanny-death: jupyter_client's restart did not finish in {theirs_restart_incomplete} samples")
    return [
        _goal_row(
            Row(
                "nanny-death",
                "SIGKILL -> death noticed (ours kernel_died event / theirs restarter callback)",
                died,
                theirs,
                notes=notes,
                extra={"unexpected_events": odd},
            ),
            f"p50 <= {GOAL_DEATH_P50 * 1e3:g} ms",
            s["median"] <= GOAL_DEATH_P50,
            f"p50 {fmt_time(s['median'])}, max {fmt_time(s['max'])}",
        ),
        Row(
            "nanny-death",
            "  floor: SIGKILL -> LocalKernelManager.wait() returns (launch_local, in-process)",
            local,
            notes=[
                "nanny-death floor: the same detection as inside the nanny (asyncio waits on its child), in this "
                "process, without the event hop; it includes the kernel's own exit after SIGKILL"
            ],
        ),
        Row("nanny-death", "  info: SIGKILL -> kernel_restarted event (automatic restart, kernel ready)", restarted),
    ]


# -- 3 + 6. cold starts and restarts -> ready ------------------------------------------------------------------------


async def bench_nanny_restart(cfg: Config) -> list[Row]:
    """Cold starts and restarts -> ready, interleaved in one loop so that they share the noise.

    * cold start: ``launch_local`` (our kernel as our child), a nanny (``start_kernel``, supervised: the same
      behind a nanny),
      jupyter_client ``start_kernel`` + ``wait_for_ready``;
    * automatic restart: SIGKILL the kernel of a long-lived nanny -> ``kernel_restarted`` event ->
      ``wait_for_ready()`` of the client that was connected before (and, separately, of a new client);
    * requested restart: ``ManagerClient.restart()`` + the connected client's ``wait_for_ready()``;
      jupyter_client ``km.restart_kernel()`` + ``kc.wait_for_ready()``.
    """
    rounds = cfg.n(8, 2)
    check_timeout = 2.0
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "local-cold",
            "nanny-cold",
            "theirs-cold",
            "auto-same",
            "auto-event",
            "auto-new",
            "requested",
            "theirs-restart",
            "nanny-imports",
        )
    }
    checks: dict[str, list[bool]] = {"auto (same client)": [], "auto (new client)": [], "requested": [], "theirs": []}
    kernels: list[Any] = []
    client: KernelClient | None = None
    try:
        nanny, theirs_k = await asyncio.gather(Nanny.start("ipc", restart_policy=NO_BACKOFF), Theirs.launch("tcp"))
        kernels = [nanny, theirs_k]
        log = EventLog(nanny.manager)
        await nanny.manager.subscribe()
        client = KernelClient(nanny.info)
        await client.start()
        await client.wait_for_ready(timeout=READY_TIMEOUT)
        kc = theirs_k.kc
        assert kc is not None
        pid = await nanny.kernel_pid()

        async def cold(key: str, start: Callable[[], Awaitable[Any]]) -> None:
            t0 = time.perf_counter()
            kernel = await start()
            elapsed = time.perf_counter() - t0
            try:
                samples[key].append(elapsed)
            finally:
                await kernel.stop(now=True)

        async def local_cold() -> None:
            await cold("local-cold", Ours.local)

        async def nanny_cold() -> None:
            await cold("nanny-cold", Nanny.start)

        async def theirs_cold() -> None:
            await cold("theirs-cold", Theirs.launch)

        async def auto_restart(new_client: bool) -> None:
            nonlocal pid
            start = len(log.seen)
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            t_event, event = await log.next("kernel_restarted", start, READY_TIMEOUT)
            pid = int(event.content["pid"])
            if new_client:
                async with KernelClient(nanny.info) as fresh:
                    await fresh.wait_for_ready(timeout=READY_TIMEOUT)
                    samples["auto-new"].append(time.perf_counter() - t0)
                    checks["auto (new client)"].append(await our_first_execute_ok(fresh, check_timeout))
            else:
                await client.wait_for_ready(timeout=READY_TIMEOUT)
                samples["auto-same"].append(time.perf_counter() - t0)
                samples["auto-event"].append(t_event - t0)
                checks["auto (same client)"].append(await our_first_execute_ok(client, check_timeout))

        async def auto_same() -> None:
            await auto_restart(new_client=False)

        async def auto_new() -> None:
            await auto_restart(new_client=True)

        async def requested() -> None:
            nonlocal pid
            t0 = time.perf_counter()
            await nanny.manager.restart()
            await client.wait_for_ready(timeout=READY_TIMEOUT)
            samples["requested"].append(time.perf_counter() - t0)
            checks["requested"].append(await our_first_execute_ok(client, check_timeout))
            pid = await nanny.kernel_pid()

        async def nanny_imports() -> None:
            samples["nanny-imports"].append(await _python_start_time(NANNY_IMPORTS_NO_FIND))

        async def theirs_restart() -> None:
            t0 = time.perf_counter()
            await theirs_k.km.restart_kernel()
            await kc.wait_for_ready(timeout=READY_TIMEOUT)
            samples["theirs-restart"].append(time.perf_counter() - t0)
            checks["theirs"].append(await their_first_execute_ok(kc, check_timeout))
            await drain_theirs(kc)

        # One untimed cold start of each kind first: the first start pays for cold disk caches.
        for start in (Ours.local, Nanny.start):
            kernel = await start()
            await kernel.stop()
        jobs = [local_cold, auto_same, nanny_cold, theirs_restart, requested, theirs_cold, auto_new, nanny_imports]
        for _, ours_first in orders(rounds):
            for job in jobs if ours_first else reversed(jobs):
                await asyncio.sleep(0.2)  # let the previous kernel's teardown or start-up settle
                await job()
    finally:
        if client is not None:
            client.close()
            await client.wait_closed()
        await stop_all(kernels)

    local_med = _median(samples["local-cold"])
    nanny_med = _median(samples["nanny-cold"])
    auto_med = _median(samples["auto-same"])
    limit = local_med + GOAL_RESTART_MARGIN
    nanny_limit = nanny_med + GOAL_RESTART_MARGIN
    paired = [n - loc for n, loc in zip(samples["nanny-cold"], samples["local-cold"], strict=True)]
    lo, hi = ratio_ci(samples["nanny-cold"], samples["local-cold"])
    failed = {k: f"{v.count(False)}/{len(v)}" for k, v in checks.items()}
    notes_restart = [
        "nanny-restart: automatic restart = os.kill(kernel pid, SIGKILL) -> the nanny restarts the kernel in "
        "place (same connection info) -> kernel_restarted event (sent once a fresh client in the nanny saw "
        "it ready) -> wait_for_ready() of the KernelClient connected before the kill; RestartPolicy(backoff=0). "
        "theirs = km.restart_kernel() + kc.wait_for_ready() (jupyter_client's automatic restart would first "
        "take up to time_to_dead = 3 s to notice, see nanny-death). First execution after 'ready' lost its "
        f"output or idle (checked, untimed, {check_timeout:.0f} s limit): {failed}",
    ]
    notes_cold = [
        "nanny-restart: cold starts interleaved with the restarts; launch_local = the kernel as our child (what "
        "start_kernel does for an unsupervised request, and what the nanny does inside); a nanny "
        "(start_kernel, supervised) adds the "
        f"nanny process: +{fmt_time(nanny_med - local_med)} (medians), ratio {nanny_med / local_med:.2f}"
        + ("" if lo != lo else f" [{lo:.2f}-{hi:.2f}]")
        + f", paired per round median +{fmt_time(_median(paired))}"
    ]
    return [
        Row(
            "nanny-restart",
            "cold start -> ready: launch_local ipc / jc start_kernel+wait_for_ready tcp",
            samples["local-cold"],
            samples["theirs-cold"],
            notes=notes_cold,
        ),
        Row(
            "nanny-restart",
            "cold start -> ready: nanny (supervised start_kernel) ipc / jc start_kernel+wait_for_ready tcp",
            samples["nanny-cold"],
            samples["theirs-cold"],
        ),
        Row("nanny-restart", "  info: nanny cost = nanny start - launch_local (paired per round)", paired),
        Row(
            "nanny-restart",
            "  floor: python -c 'import the nanny's modules' spawn -> imported",
            samples["nanny-imports"],
            notes=[
                "nanny-restart: the floor row is a fresh python process importing what the nanny imports before "
                "it can launch its kernel (kernel_nanny.nanny.core, zmq, the providers); most of the nanny's cost"
            ],
        ),
        _goal_row(
            Row(
                "nanny-restart",
                "SIGKILL -> auto restart -> ready (same client) / jc restart_kernel -> ready",
                samples["auto-same"],
                samples["theirs-restart"],
                notes=notes_restart,
                extra={"first_execute_ok": checks},
            ),
            "<= cold start + 50 ms",
            auto_med <= limit,
            f"auto restart p50 {fmt_time(auto_med)}; cold start p50: launch_local {fmt_time(local_med)} "
            f"(limit {fmt_time(limit)}), nanny start {fmt_time(nanny_med)} (limit {fmt_time(nanny_limit)}: "
            f"{'met' if auto_med <= nanny_limit else 'not met'})",
        ),
        Row("nanny-restart", "  info: SIGKILL -> kernel_restarted event", samples["auto-event"]),
        Row(
            "nanny-restart",
            "SIGKILL -> auto restart -> ready (new client) / jc restart_kernel -> ready",
            samples["auto-new"],
            samples["theirs-restart"],
        ),
        Row(
            "nanny-restart",
            "requested restart -> ready: manager.restart() / km.restart_kernel()",
            samples["requested"],
            samples["theirs-restart"],
        ),
    ]


# -- 4. interrupt ----------------------------------------------------------------------------------------------------


async def bench_nanny_interrupt(cfg: Config) -> list[Row]:
    """Interrupt a busy loop: through the nanny, by our own signal, and by jupyter_client."""
    rounds = cfg.n(15, 4)
    kernels: list[Any] = []
    clients: list[KernelClient] = []
    full: dict[str, list[float]] = {"nanny": [], "local": [], "direct": [], "theirs": []}
    call: dict[str, list[float]] = {"nanny": [], "local": [], "direct": []}
    try:
        kernels = list(await asyncio.gather(Nanny.start("ipc"), Ours.local("ipc"), Theirs.launch("tcp")))
        nanny, local, theirs_k = kernels
        for kernel in (nanny, local):
            client = KernelClient(kernel.info)
            clients.append(client)
            await client.start()
            await client.wait_for_ready(timeout=READY_TIMEOUT)
        kc = theirs_k.kc
        await drain_theirs(kc)
        nanny_kernel_pid = await nanny.kernel_pid()  # also its process group (own session)

        async def direct_sigint() -> None:
            os.killpg(nanny_kernel_pid, signal.SIGINT)

        async def ours_once(side: str, client: KernelClient, interrupt: Callable[[], Awaitable[None]]) -> None:
            returned, replied = await time_our_interrupt(client, interrupt)
            full[side].append(replied)
            call[side].append(returned)

        async def theirs_once() -> None:
            full["theirs"].append(await time_their_interrupt(kc, theirs_k.km))

        jobs: list[Callable[[], Awaitable[None]]] = [
            lambda: ours_once("nanny", clients[0], nanny.manager.interrupt),
            lambda: ours_once("local", clients[1], local.manager.interrupt),
            theirs_once,
            lambda: ours_once("direct", clients[0], direct_sigint),
        ]
        for job in jobs:  # warm-up
            await job()
        for side in full.values():
            side.clear()
        for side in call.values():
            side.clear()
        for rnd, forward in orders(rounds):
            for job in round_order(jobs, rnd, forward):
                await job()
    finally:
        for client in clients:
            client.close()
            await client.wait_closed()
        await stop_all(kernels)
    ratio = _median(full["nanny"]) / _median(full["local"])
    lo, hi = ratio_ci(full["nanny"], full["local"])
    same_kernel = _median(full["nanny"]) / _median(full["direct"])
    same_lo, same_hi = ratio_ci(full["nanny"], full["direct"])
    return [
        _goal_row(
            Row(
                "nanny-interrupt",
                "interrupt -> KeyboardInterrupt reply: ManagerClient (nanny) / jc km.interrupt_kernel()",
                full["nanny"],
                full["theirs"],
                notes=[
                    "nanny-interrupt: `while True: pass` running; timed from the interrupt call to the execute_reply "
                    "with ename KeyboardInterrupt. ManagerClient.interrupt() asks the nanny, which sends SIGINT to "
                    "the kernel's process group; LocalKernelManager.interrupt() (a launch_local kernel) sends it "
                    "itself; jupyter_client km.interrupt_kernel() likewise. 'call returned' rows: the interrupt "
                    "call alone (for the nanny: the request round trip, signal included)"
                ],
            ),
            f"<= {GOAL_INTERRUPT_RATIO}x local",
            ratio <= GOAL_INTERRUPT_RATIO,
            f"ManagerClient / LocalKernelManager medians {ratio:.3f} [{lo:.2f}-{hi:.2f}]: "
            f"{fmt_time(_median(full['nanny']))} vs {fmt_time(_median(full['local']))}; on the same kernel, "
            f"ManagerClient / direct os.killpg {same_kernel:.3f} [{same_lo:.2f}-{same_hi:.2f}]",
        ),
        Row(
            "nanny-interrupt",
            "interrupt -> KeyboardInterrupt reply: LocalKernelManager / jc km.interrupt_kernel()",
            full["local"],
            full["theirs"],
        ),
        Row(
            "nanny-interrupt",
            "interrupt -> KeyboardInterrupt reply: os.killpg of the nanny's kernel / jc",
            full["direct"],
            full["theirs"],
            notes=[
                "nanny-interrupt: the os.killpg row signals the very kernel behind the nanny from this process "
                "(no nanny hop), so nanny vs direct compares paths on one kernel process; nanny vs "
                "LocalKernelManager (the goal) compares two kernel processes"
            ],
        ),
        Row("nanny-interrupt", "  info: ManagerClient.interrupt() call returned", call["nanny"]),
        Row("nanny-interrupt", "  info: LocalKernelManager.interrupt() call returned", call["local"]),
    ]


# -- 5. memory and CPU of the nanny process -------------------------------------------------------------------------


def memory(pid: int) -> dict[str, int]:
    """``Rss``, ``Pss`` and ``Anonymous`` (private heap etc.) of a process in bytes (``smaps_rollup``)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Rss", "Pss", "Anonymous"):
                out[key.lower()[:4]] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by all threads of ``pid`` (``schedstat``: ns; else ``stat``: clock ticks)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError):
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rfind(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _python_floor(code: str) -> dict[str, int]:
    """RSS/PSS of a python process that ran ``code`` and then waits (for a floor)."""
    script = f"{code}\nimport sys\nsys.stdout.write('ok\\n'); sys.stdout.flush(); sys.stdin.read()"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    token = REGISTRY.add(f"python floor pid={process.pid}", lambda: _kill(process))
    try:
        assert process.stdout is not None and process.stdin is not None
        await asyncio.wait_for(process.stdout.readline(), 60)
        await asyncio.sleep(0.2)
        return memory(process.pid)
    finally:
        try:
            if process.stdin is not None:
                process.stdin.close()
            await asyncio.wait_for(process.wait(), 10)
        finally:
            await _kill(process)
            REGISTRY.discard(token)


async def _python_start_time(code: str) -> float:
    """Seconds from spawning ``python -c code`` until it has run ``code`` (reported on its stdout)."""
    script = f"{code}\nimport sys\nsys.stdout.write('ok\\n'); sys.stdout.flush()"
    t0 = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), 60)
        return time.perf_counter() - t0
    finally:
        await asyncio.wait_for(process.wait(), 30)


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


#: What the nanny process imports before it launches its kernel (kernel_nanny/nanny/__main__.py).
NANNY_IMPORTS_NO_FIND = (
    "import json, asyncio, logging, signal\n"
    "import kernel_nanny.nanny.__main__, kernel_nanny.nanny.core\n"
    "from kernel_nanny.discovery import KernelFinder\n"
    "KernelFinder.from_entrypoints()"
)
#: iopub messages the kernel sends for the steady-state figure: more than a Session's replay window
#: (kernel_nanny.protocol.replay.DEFAULT_REPLAY_WINDOW = 65,536 signatures) holds.
STEADY_STATE_MESSAGES = 70_000
NANNY_IMPORTS = (
    "import kernel_nanny.nanny.__main__, kernel_nanny.nanny.core\n"
    "from kernel_nanny.discovery import KernelFinder\n"
    "list(KernelFinder.from_entrypoints().find_kernels())"
)


async def bench_nanny_memory(cfg: Config) -> list[Row]:
    """RSS and PSS of the nanny process with a running kernel: idle, after 100 executions (and 1000)."""
    count = cfg.n(3, 1)
    idle_seconds = float(cfg.n(3, 1))
    stages = [100, 1000] if not cfg.quick else [100]
    mem: dict[str, list[float]] = {}
    cpu_idle: list[float] = []
    cpu_exec: list[float] = []

    def add(key: str, value: float) -> None:
        mem.setdefault(key, []).append(value)

    for index in range(count):
        nanny = await Nanny.start("ipc")
        try:
            kernel_pid = await nanny.kernel_pid()
            await asyncio.sleep(0.5)  # start-up is over
            c0 = cpu_seconds(nanny.nanny_pid)
            await asyncio.sleep(idle_seconds)
            cpu_idle.append((cpu_seconds(nanny.nanny_pid) - c0) / idle_seconds)
            for key, value in memory(nanny.nanny_pid).items():
                add(f"nanny-{key}-idle", value)
            for key, value in memory(kernel_pid).items():
                add(f"kernel-{key}-idle", value)
            async with KernelClient(nanny.info) as client:
                await client.wait_for_ready(timeout=READY_TIMEOUT)
                done = 0
                for stage in stages:
                    c0 = cpu_seconds(nanny.nanny_pid)
                    for i in range(done, stage):
                        result = await client.execute_interactive(f"print({i})", timeout=REPLY_TIMEOUT)
                        assert result.stream_text() == f"{i}\n"
                    cpu_exec.append((cpu_seconds(nanny.nanny_pid) - c0) / (stage - done))
                    done = stage
                    await asyncio.sleep(0.3)  # the nanny has read the last idle status
                    for key, value in memory(nanny.nanny_pid).items():
                        add(f"nanny-{key}-{stage}", value)
                if index == 0 and not cfg.quick:
                    # Steady state: more iopub messages than any receiver's replay window holds.
                    chunk = 10_000
                    code = f"for i in range({chunk}):\n    print(i, flush=True)"
                    for _ in range(-(-STEADY_STATE_MESSAGES // chunk)):
                        result = await client.execute_interactive(code, timeout=300)
                        assert result.ok and result.stream_text().count("\n") == chunk
                    await asyncio.sleep(0.3)
                    for key, value in memory(nanny.nanny_pid).items():
                        add(f"nanny-{key}-steady", value)
        finally:
            await nanny.stop()
    bare = await _python_floor("pass")
    imports = await _python_floor(NANNY_IMPORTS)

    def rss_goal(row: Row) -> Row:
        worst = max(row.ours)
        return _goal_row(row, f"RSS <= {GOAL_NANNY_RSS // MiB} MiB", worst <= GOAL_NANNY_RSS, f"max {fmt_bytes(worst)}")

    def row(op: str, key: str, **kw: Any) -> Row:
        return Row("nanny-memory", op, mem[key], unit="B", **kw)

    rows = [
        rss_goal(
            row(
                "nanny RSS, idle, kernel running",
                "nanny-rss-idle",
                notes=[
                    "nanny-memory: /proc/<pid>/smaps_rollup of the nanny process (python -m kernel_nanny.nanny, "
                    "ipc); 'executions' = execute_interactive(print(i)) by a client of the kernel, whose iopub "
                    "the nanny also reads. PSS shares the python/libzmq pages with the other python processes. "
                    "jupyter_client has no separate manager process: its AsyncKernelManager lives inside the "
                    "application (e.g. jupyter_server), so there is no figure of theirs to put next to these "
                    "(PERF-BASELINE.md: a manager process with 20 kernels 49.9 MiB RSS)"
                ],
            )
        ),
        row("nanny PSS, idle", "nanny-pss-idle"),
    ]
    for stage in stages:
        rows += [
            rss_goal(row(f"nanny RSS after {stage} executions", f"nanny-rss-{stage}")),
            row(f"nanny PSS after {stage} executions", f"nanny-pss-{stage}"),
        ]
    if "nanny-rss-steady" in mem:
        rows += [
            rss_goal(
                row(
                    f"nanny RSS, steady state: after {STEADY_STATE_MESSAGES:,} more iopub messages",
                    "nanny-rss-steady",
                    notes=[
                        f"nanny-memory: steady state = one nanny, after {STEADY_STATE_MESSAGES:,} flushed prints "
                        "(one iopub message each) on top of the executions: the nanny reads its kernel's iopub, and "
                        "each receiving Session remembers the last 65,536 signatures (replay protection), so its "
                        "memory grows until that window is full"
                    ],
                )
            ),
            row(f"nanny PSS, steady state: after {STEADY_STATE_MESSAGES:,} more iopub messages", "nanny-pss-steady"),
        ]
    anon = {k.removeprefix("nanny-anon-"): fmt_bytes(_median(v)) for k, v in mem.items() if k.startswith("nanny-anon-")}
    rows[0].notes.append(
        f"nanny-memory: the nanny's private anonymous memory (heap), medians: {anon}; floors: bare python RSS "
        f"{fmt_bytes(bare['rss'])} / anon {fmt_bytes(bare['anon'])}, python + the nanny's imports RSS "
        f"{fmt_bytes(imports['rss'])} / PSS {fmt_bytes(imports['pss'])} / anon {fmt_bytes(imports['anon'])} "
        "(a fresh process faults in more shared-library pages than the long-running nanny keeps resident)"
    )
    rows[0].extra["nanny_anonymous_bytes"] = {k: v for k, v in mem.items() if k.startswith("nanny-anon-")}
    rows += [
        row("  info: kernel (ipykernel) RSS, idle", "kernel-rss-idle"),
        row("  info: kernel (ipykernel) PSS, idle", "kernel-pss-idle"),
        Row("nanny-memory", "  floor: bare python RSS", [bare["rss"]], unit="B"),
        Row(
            "nanny-memory",
            "  floor: python + the nanny's imports, RSS (no sockets, no kernel)",
            [imports["rss"]],
            unit="B",
        ),
        Row("nanny-memory", "  floor: python + the nanny's imports, PSS", [imports["pss"]], unit="B"),
        Row(
            "nanny-memory",
            "  info: nanny CPU time per second, idle (1 s heartbeat)",
            cpu_idle,
            notes=[
                "nanny-memory: CPU = sum of /proc/<nanny pid>/task/*/schedstat run times; per execution = "
                "the nanny's CPU while a client ran execute_interactive(print(i)) on its kernel"
            ],
        ),
        Row("nanny-memory", "  info: nanny CPU time per execution", cpu_exec),
    ]
    return rows
