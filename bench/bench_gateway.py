"""The daemon's Jupyter Kernel Gateway API behind jupyter_server, next to jupyter_server's own kernels.

Two real ``jupyter server`` processes run side by side: one in **gateway mode** against the gateway of a
real daemon (``python -m kernel_nanny serve --config FILE`` with ``[gateway] address = "127.0.0.1:0"``,
started as ``bench_daemon.DaemonHome`` starts it; ``--gateway-url`` is the ``gateway_url`` of its info,
``--GatewayClient.auth_token`` its gateway token, and the kernel and session manager classes the how-to
configures, ``kernel_nanny.jupyter.gateway``), and one with its **local kernels**. Both start the runner's
kernelspec ``kn-bench-python`` (``sys.executable -m ipykernel_launcher``; the daemon lists it as
``spec/kn-bench-python``). One client drives both, as JupyterLab does, with the REST and WebSocket
helpers of ``tests/jupyter_api.py`` (jupyter_server's own frame (de)serializers): it offers the v1
WebSocket subprotocol, which jupyter_server accepts for its local kernels and refuses in gateway mode
(it proxies legacy JSON frames).

1. **Round trip**: ``execute_request`` of ``pass`` / ``1+1`` over the kernel WebSocket until both its
   ``execute_reply`` and its ``status: idle`` have arrived, back to back, variants in batches whose order
   turns every round. Info variants: legacy JSON to the local kernels too (the same wire format as
   gateway mode); straight to the gateway (no jupyter_server); and TCP_NODELAY on jupyter_server's
   WebSocket to the client (a jupyter_server config file given here sets it when the URL says
   ``nodelay=1``: without it, a server's second small frame waits for the client's delayed ACK). Then
   the CPU time per round trip of each process involved (jupyter_server, daemon, nanny, kernel, client).
2. **New kernel**: ``POST /api/sessions`` (as JupyterLab opens a notebook) until the kernel answers a
   ``kernel_info_request`` over its WebSocket; then (untimed) ``DELETE`` the session, which shuts the
   kernel down. Info: the same straight to the gateway (``POST /api/kernels``).
3. **Memory**: ``VmRSS`` (``/proc/<pid>/status``) of two fresh daemons after 1 s idle: one with the
   gateway, N = 20 kernels started through it (``POST /api/kernels``), then one WebSocket open to each
   (one execution each), then closed; one without the gateway, N kernels by ``DaemonClient.launch``.

Isolation: the run's ``JUPYTER_RUNTIME_DIR`` (so the runner's safety net finds every process); a temp
dir of this benchmark for ``JUPYTER_CONFIG_DIR``, ``JUPYTER_DATA_DIR``, ``XDG_RUNTIME_DIR``,
``XDG_STATE_HOME``, ``XDG_CONFIG_HOME`` of the jupyter_servers, and the jupyter_servers' root dir; each
daemon its own home (``DaemonHome``). Clean-up, also on failure: WebSockets closed, servers stopped
(SIGTERM, jupyter_server's clean stop: the local one shuts its kernels down; SIGKILL if one hangs), every
daemon home cleaned up (``kernel-nanny stop --all --now``, SIGTERM, nannies checked gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

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
    sample_interleaved,
    summarize,
)
from bench_daemon import DaemonHome, _ci, _empty_runtime, _launch_many
from bench_nanny import _goal_row, cpu_seconds, memory
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from kernel_nanny.daemon.keys import DaemonKeys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the Jupyter API client of the tests
from tests.jupyter_api import V1, Channels, JupyterAPI, JupyterServer  # noqa: E402

MiB = 2**20
#: Both sides start this kernelspec (the runner's): the daemon lists it as ``spec/kn-bench-python``.
KERNELSPEC = BENCH_KERNEL_NAME
GATEWAY_CONFIG = '[gateway]\naddress = "127.0.0.1:0"\n'
CODES = ("pass", "1+1")

GOAL_ROUNDTRIP_RATIO = 1.15
GOAL_NEW_KERNEL_RATIO = 1.0
GOAL_RSS = 60 * MiB

#: A jupyter_server configuration file (python): TCP_NODELAY on a kernel WebSocket whose URL has
#: ``nodelay=1``, through the ``kernel_websocket_connection_class`` of its mode. Nothing else changes.
NODELAY_CONFIG = """\
from jupyter_server.gateway.connections import GatewayWebSocketConnection
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


def _nodelay(handler):
    if handler.get_query_argument("nodelay", None) == "1":
        handler.set_nodelay(True)


class LocalConnection(ZMQChannelsWebsocketConnection):
    def connect(self):
        _nodelay(self.websocket_handler)
        return super().connect()


class GatewayConnection(GatewayWebSocketConnection):
    async def connect(self):
        _nodelay(self.websocket_handler)
        await super().connect()


c = get_config()  # noqa: F821
c.ServerApp.kernel_websocket_connection_class = GatewayConnection if GATEWAY else LocalConnection
"""


# -- isolation, servers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _jupyter_environment(root: Path) -> Iterator[dict[str, str]]:
    """Private Jupyter/XDG dirs in ``os.environ`` meanwhile (what ``JupyterServer`` starts its process with)."""
    dirs = {
        "JUPYTER_CONFIG_DIR": root / "jupyter-config",
        "JUPYTER_DATA_DIR": root / "jupyter-data",
        "XDG_RUNTIME_DIR": root / "xdg-runtime",
        "XDG_STATE_HOME": root / "xdg-state",
        "XDG_CONFIG_HOME": root / "xdg-config",
    }
    for path in dirs.values():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    saved = {name: os.environ.get(name) for name in dirs}
    os.environ.update({name: str(path) for name, path in dirs.items()})
    try:
        yield {name: str(path) for name, path in dirs.items()}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _gateway_home(runtime: Path, label: str, xdg_runtime: str, gateway: bool) -> DaemonHome:
    home = DaemonHome(runtime, label)
    home.env["XDG_RUNTIME_DIR"] = xdg_runtime
    if gateway:
        home.config_file.write_text(home.config_file.read_text() + GATEWAY_CONFIG)
    return home


async def _gateway_of(home: DaemonHome) -> JupyterAPI:
    """A client of the daemon's gateway itself: its URL from the daemon's info, its token from the state dir."""
    assert home.client is not None
    url = (await home.client.info())["gateway_url"]
    assert url, "the daemon serves no gateway"
    return JupyterAPI(url, DaemonKeys(home.state_dir).gateway_token())


class _JupyterServer(JupyterServer):
    async def stop(self) -> None:
        """SIGTERM, jupyter_server's clean stop (without a terminal, SIGINT is a KeyboardInterrupt that skips its
        clean-up: kernels left to die with their parent, connection and server files left behind)."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        await self._close()


class Server:
    """A ``jupyter server`` (``tests.jupyter_api.JupyterServer``), registered for clean-up while it runs."""

    def __init__(self, label: str, root: Path, *options: str) -> None:
        self.label = label
        config = root / f"nodelay-{label}.py"  # a label without spaces
        config.write_text(f"GATEWAY = {any(o.startswith('--gateway-url') for o in options)}\n{NODELAY_CONFIG}")
        self.server = _JupyterServer(
            root / "notebooks",
            f"--config={config}",
            f"--ServerApp.cookie_secret_file={root / f'cookie-secret-{label}'}",  # not in the runtime dir
            *options,
        )
        self.token = REGISTRY.add(f"jupyter_server ({label})", self.stop)
        self.api: JupyterAPI | None = None

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    async def start(self) -> JupyterAPI:
        self.api = await self.server.start()
        return self.api

    async def stop(self) -> None:
        """The local server shuts its kernels down, the gateway-mode one leaves them (GatewayKernels.persistent);
        SIGKILL if it has not exited after 60 s."""
        try:
            await asyncio.wait_for(self.server.stop(), 60)
        except asyncio.TimeoutError:
            await self.server.kill()
        finally:
            REGISTRY.discard(self.token)


async def _connect(api: JupyterAPI, kernel_id: str, *, v1: bool = True, nodelay: bool = False) -> Channels:
    """The kernel's WebSocket, as JupyterLab opens it (v1 offered, a client session id); ``nodelay``: see
    ``NODELAY_CONFIG``. One function for every variant: the same client code on every side."""
    url = api.base_url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    query = f"?token={api.token}&session_id={uuid.uuid4()}" + ("&nodelay=1" if nodelay else "")
    ws = await websocket_connect(HTTPRequest(url + query, request_timeout=60), subprotocols=[V1] if v1 else None)
    channels = Channels(ws, v1=ws.selected_subprotocol == V1)
    api._opened.append(channels)  # closed with the client (JupyterAPI.close)
    return channels


async def _kernel_info(channels: Channels, timeout: float = 120) -> None:
    msg_id = await channels.send("kernel_info_request", {})
    while True:
        msg = await channels.recv(timeout)
        assert msg is not None, "the WebSocket closed before the kernel_info_reply"
        if msg["msg_type"] == "kernel_info_reply" and msg["parent_header"].get("msg_id") == msg_id:
            return


async def _new_session(api: JupyterAPI) -> dict[str, Any]:
    """``POST /api/sessions``, as JupyterLab opens a notebook (the file need not exist)."""
    name = f"bench-{uuid.uuid4().hex[:8]}.ipynb"
    body = {"path": name, "name": name, "type": "notebook", "kernel": {"name": KERNELSPEC}}
    session: dict[str, Any] = await api.call("POST", "/api/sessions", body, expect=201)
    return session


def _rss(pid: int) -> int:
    """``VmRSS`` of ``/proc/<pid>/status`` in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no VmRSS for pid {pid}")


def _maps_tornado(pid: int) -> bool:
    """Has the process imported tornado (``tornado.util`` loads its ``speedups`` extension)?"""
    with open(f"/proc/{pid}/maps") as f:
        return any("tornado/speedups" in line for line in f)


def _track(home: DaemonHome, kernels: list[dict[str, Any]]) -> None:
    """Kernels started through the gateway: their nannies are checked gone at clean-up like the home's own."""
    home.nanny_pids.update(int(k["nanny_pid"]) for k in kernels if k.get("nanny_pid"))


def _log_problems(home: DaemonHome | None) -> list[str]:
    if home is None:
        return []
    lines = [line for line in home.log_since().splitlines() if " WARNING " in line or " ERROR " in line]
    if not lines:
        return []
    shown = "; ".join(line[24:][:200] for line in lines[:5])
    return [f"gateway: daemon ({home.label}) logged {len(lines)} warning/error line(s), e.g.: {shown}"]


def _spread(samples: list[float]) -> str:
    s = summarize(samples)
    return f"p50 {fmt_time(s['median'])} / p90 {fmt_time(s['p90'])}"


def _ratio_goal(row: Row, limit: float) -> Row:
    ours, theirs = statistics.median(row.ours), statistics.median(row.theirs)
    return _goal_row(
        row,
        f"<= {limit:g}x local",
        ours / theirs <= limit,
        f"ratio of medians {ours / theirs:.3f}{_ci(*ratio_ci(row.ours, row.theirs))}; "
        f"gateway mode {_spread(row.ours)}, local {_spread(row.theirs)}",
    )


# -- the benchmark ---------------------------------------------------------------------------------------


async def bench_gateway(cfg: Config) -> list[Row]:
    """Round trip, new kernel and daemon memory: jupyter_server in gateway mode on our gateway vs local."""
    root = Path(tempfile.mkdtemp(prefix="kn-bench-gateway-"))
    homes: list[DaemonHome] = []
    servers: list[Server] = []
    notes: list[str] = []
    runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
    try:
        with _jupyter_environment(root) as env:
            main = _gateway_home(runtime, "gateway", env["XDG_RUNTIME_DIR"], gateway=True)
            homes.append(main)
            await main.start()
            gateway = await _gateway_of(main)
            token = DaemonKeys(main.state_dir).gateway_token()
            (root / "notebooks").mkdir()
            local_server = Server("local", root)
            gateway_server = Server(
                "gateway-mode",
                root,
                f"--gateway-url={gateway.base_url}",
                f"--GatewayClient.auth_token={token}",
                "--ServerApp.kernel_manager_class=kernel_nanny.jupyter.gateway.GatewayKernels",
                "--ServerApp.session_manager_class=kernel_nanny.jupyter.gateway.GatewaySessions",
                f"--SessionManager.database_filepath={root / 'sessions.db'}",
            )
            servers += [local_server, gateway_server]
            local, via_gateway = await asyncio.gather(local_server.start(), gateway_server.start())

            pids = {"gw": gateway_server.pid, "local": local_server.pid, "daemon": main.pid}
            roundtrip = await _roundtrips(cfg, local, via_gateway, gateway, pids, main.client)
            new_kernel = await _new_kernels(cfg, local, via_gateway, gateway)
            _track(main, await main.client.list_kernels() if main.client else [])
            for api in (local, via_gateway, gateway):
                api.close()
            await asyncio.gather(*(server.stop() for server in servers))
            notes += _log_problems(main)
            await main.cleanup()  # the memory daemon serves the same runtime dir: one daemon per dir
            mem = await _memory(cfg, runtime, env["XDG_RUNTIME_DIR"], homes)
    finally:
        try:
            for server in servers:
                await server.stop()
        finally:
            for home in homes[1:]:
                notes += _log_problems(home)
            results = await asyncio.gather(*(home.cleanup() for home in homes), return_exceptions=True)
            shutil.rmtree(root, ignore_errors=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    notes += [note for home in homes for note in home.notes]
    rows = _roundtrip_rows(roundtrip) + _new_kernel_rows(new_kernel) + _memory_rows(mem, cfg)
    rows[0].notes += notes
    return rows


# -- 1. round trips ----------------------------------------------------------------------------------------

#: variant -> (which server, v1 offered, nodelay): ``gw`` the gateway-mode server, ``local`` the local one,
#: ``direct`` the daemon's gateway itself.
ROUNDTRIP_VARIANTS = {
    "gateway": ("gw", True, False),
    "local": ("local", True, False),
    "local-json": ("local", False, False),
    "direct": ("direct", True, False),
    "gateway-nodelay": ("gw", True, True),
    "local-nodelay": ("local", True, True),
}


async def _roundtrips(
    cfg: Config, local: JupyterAPI, via_gateway: JupyterAPI, gateway: JupyterAPI, pids: dict[str, int], daemon: Any
) -> dict[str, Any]:
    """One kernel per variant (none hears another's iopub), opened as JupyterLab does; then interleaved batches;
    then the CPU of every process per round trip. ``pids``: the jupyter_servers' (``gw``, ``local``) and the
    daemon's; ``daemon``: a DaemonClient (for the pids of its kernels and nannies)."""
    apis = {"gw": via_gateway, "local": local, "direct": gateway}

    async def open_variant(name: str) -> tuple[Channels, str]:
        where, v1, nodelay = ROUNDTRIP_VARIANTS[name]
        api = apis[where]
        if where == "direct":
            kernel_id = (await api.start_kernel(KERNELSPEC))["id"]
        else:
            kernel_id = (await _new_session(api))["kernel"]["id"]
        channels = await _connect(api, kernel_id, v1=v1, nodelay=nodelay)
        await _kernel_info(channels)
        return channels, str(kernel_id)

    names = list(ROUNDTRIP_VARIANTS)
    kernels = dict(zip(names, await asyncio.gather(*(open_variant(n) for n in names)), strict=True))
    opened = {name: channels for name, (channels, _) in kernels.items()}
    protocols = {name: "v1" if ch.v1 else "json" for name, ch in opened.items()}
    for name, channels in opened.items():  # untimed: each works, and 1+1 is 2
        run = await channels.execute("1+1")
        assert run.of_type("execute_result")[0]["content"]["data"]["text/plain"] == "2", (name, run.messages)

    def op(channels: Channels, code: str) -> Callable[[], Awaitable[Any]]:
        return lambda: channels.execute(code)

    variants = {f"{name} {code}": (op(ch, code), True) for name, ch in opened.items() for code in CODES}
    samples = await measure_interleaved(variants, cfg.n(15, 3), cfg.n(10, 5))

    # CPU per round trip of each process involved, in batches (the two sides in turn).
    gw_entry = await daemon.get_kernel(kernels["gateway"][1].replace("-", ""))
    processes = {
        "gateway": {
            "jupyter_server": pids["gw"],
            "daemon": pids["daemon"],
            "nanny": int(gw_entry["nanny_pid"]),
            "kernel": int(gw_entry["info"]["pid"]),
        },
        "local": {"jupyter_server": pids["local"], "kernel": _kernel_pid(kernels["local"][1])},
    }
    cpu: dict[str, dict[str, list[float]]] = {side: {} for side in processes}
    per_batch = cfg.n(30, 10)
    for rnd, forward in orders(cfg.n(6, 2)):
        for side in round_order(list(processes), rnd, forward):
            before = {role: cpu_seconds(pid) for role, pid in processes[side].items()}
            mine = time.process_time()
            for _ in range(per_batch):
                await opened[side].execute("pass")
            used = {role: cpu_seconds(pid) - before[role] for role, pid in processes[side].items()}
            used["client"] = time.process_time() - mine
            used["total"] = sum(used.values())
            for role, seconds in used.items():
                cpu[side].setdefault(role, []).append(seconds / per_batch)
    return {"samples": samples, "protocols": protocols, "cpu": cpu}


def _kernel_pid(kernel_id: str) -> int:
    """The pid of jupyter_server's local kernel ``kernel_id``: the process whose command names its connection file."""
    needle = f"kernel-{kernel_id}.json".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        return int(entry)
            except OSError:
                continue
    raise RuntimeError(f"no process runs jupyter_server's kernel {kernel_id}")


def _roundtrip_rows(got: dict[str, Any]) -> list[Row]:
    s, protocols = got["samples"], got["protocols"]
    rows: list[Row] = []
    for code in CODES:
        rows += [
            _ratio_goal(
                Row(
                    "gateway-roundtrip",
                    f"execute '{code}' -> reply + idle over the WebSocket: jupyter_server gateway mode / local kernels",
                    s[f"gateway {code}"],
                    s[f"local {code}"],
                ),
                GOAL_ROUNDTRIP_RATIO,
            ),
            Row(
                "gateway-roundtrip",
                f"  info: '{code}', gateway mode / local kernels with legacy JSON frames too",
                s[f"gateway {code}"],
                s[f"local-json {code}"],
            ),
            Row(
                "gateway-roundtrip",
                f"  info: '{code}', straight to the daemon's gateway (no jupyter_server), {protocols['direct']}",
                s[f"direct {code}"],
            ),
            Row(
                "gateway-roundtrip",
                f"  info: '{code}', TCP_NODELAY on jupyter_server's client WebSocket: gateway mode / local",
                s[f"gateway-nodelay {code}"],
                s[f"local-nodelay {code}"],
            ),
        ]
    spreads = ", ".join(f"{name} {_spread(s[f'{name} pass'])}" for name in ROUNDTRIP_VARIANTS)
    rows[0].notes.append(
        "gateway-roundtrip: one execute_request over a kernel WebSocket until its execute_reply and its idle status "
        "have both arrived, back to back, each variant its own kernel (opened as JupyterLab does: POST "
        "/api/sessions, WebSocket offering v1 with a client session id; 'straight to the gateway': POST "
        f"/api/kernels to the daemon's gateway). Frames negotiated: {protocols}; jupyter_server in gateway mode "
        "refuses v1 to its client and talks legacy JSON to the gateway. Variants in batches, the order turning "
        "each round. TCP_NODELAY: a jupyter_server config file (this benchmark's) sets it on the WebSocket to "
        "the client when the URL has nodelay=1; on the gateway-mode server it does not reach the gateway's own "
        f"WebSocket (the daemon's). 'pass', p50 / p90: {spreads}"
    )
    cpu = got["cpu"]
    whose = {"daemon": "the daemon (gateway mode)", "nanny": "the kernel's nanny (gateway mode)"}
    rows += [
        Row(
            "gateway-roundtrip",
            f"  info: CPU per 'pass' round trip, {whose.get(role, role + ': gateway mode / local')}",
            cpu["gateway"][role],
            cpu["local"].get(role, []),
        )
        for role in ("total", "jupyter_server", "daemon", "nanny", "kernel", "client")
    ]
    rows[-6].notes.append(
        "gateway-roundtrip CPU: CPU time (/proc/<pid>/task/*/schedstat; this process: process_time) of each process "
        "a 'pass' round trip goes through, per round trip, in batches of the same round trips as above (gateway "
        "mode and local in turn): the jupyter_server, the daemon (its gateway), the kernel's nanny (its iopub "
        "journal, which the gateway follows), the kernel, this client. 'total' is their sum: on 2 cores, what "
        "the others cannot use meanwhile"
    )
    direct, nodelay = (statistics.median(s[f"{v} pass"]) for v in ("direct", "local-nodelay"))
    if direct > 4 * nodelay:
        rows[0].notes.append(
            f"gateway-roundtrip: straight to the gateway a 'pass' round trip takes {fmt_time(direct)}, "
            f"{fmt_time(direct - nodelay)} more than jupyter_server's local kernels behind TCP_NODELAY: one "
            "delayed ACK (40 ms on Linux). A server's second small WebSocket frame waits for the ACK of its "
            "first (Nagle) unless the socket has TCP_NODELAY; tornado leaves it off (WebSocketHandler.set_nodelay). "
            "Stock jupyter_server has the same wait towards its client, in both modes: the main rows compare two "
            "such waits"
        )
    return rows


# -- 2. new kernels ------------------------------------------------------------------------------------------

PHASES = ("posted", "open", "total")


async def _new_kernels(
    cfg: Config, local: JupyterAPI, via_gateway: JupyterAPI, gateway: JupyterAPI
) -> dict[str, list[float]]:
    """``POST /api/sessions`` -> WebSocket -> kernel_info_reply, both servers and straight to the gateway."""
    phases: dict[str, list[float]] = {f"{side} {p}": [] for side in ("gateway", "local", "direct") for p in PHASES}

    def job(side: str, api: JupyterAPI) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            t0 = time.perf_counter()
            if side == "direct":
                kernel_id = (await api.start_kernel(KERNELSPEC))["id"]
                session_id = None
            else:
                session = await _new_session(api)
                kernel_id, session_id = session["kernel"]["id"], session["id"]
            posted = time.perf_counter()
            channels = await _connect(api, kernel_id)
            opened = time.perf_counter()
            await _kernel_info(channels)
            done = time.perf_counter()
            channels.close()
            if session_id is None:
                await api.call("DELETE", f"/api/kernels/{kernel_id}", expect=204)
            else:
                await api.call("DELETE", f"/api/sessions/{session_id}", expect=204)  # shuts the kernel down
            for phase, seconds in zip(PHASES, (posted - t0, opened - posted, done - t0), strict=True):
                phases[f"{side} {phase}"].append(seconds)
            return done - t0

        return run

    jobs = {"gateway": job("gateway", via_gateway), "local": job("local", local), "direct": job("direct", gateway)}
    await sample_interleaved(jobs, cfg.n(12, 2), settle=0.3)  # settle: the previous kernel's teardown
    warm = 1  # sample_interleaved's warm-up run of each job is not a sample
    return {key: values[warm:] for key, values in phases.items()}


def _new_kernel_rows(p: dict[str, list[float]]) -> list[Row]:
    rows = [
        _ratio_goal(
            Row(
                "gateway-new-kernel",
                "new kernel: POST /api/sessions -> kernel_info_reply on its WebSocket: gateway mode / local",
                p["gateway total"],
                p["local total"],
                notes=[
                    "gateway-new-kernel: from the client's POST /api/sessions (a new notebook, as JupyterLab opens "
                    "one) to the kernel's kernel_info_reply over its new WebSocket; the session is then deleted "
                    "(untimed; it shuts the kernel down). Gateway mode: jupyter_server POSTs to the gateway, whose "
                    "daemon launches the kernel behind a nanny and answers when it is ready; locally jupyter_server "
                    "answers once the kernel process is spawned and the WebSocket waits for it. The three are "
                    "interleaved, the order turning each round"
                ],
            ),
            GOAL_NEW_KERNEL_RATIO,
        ),
        Row("gateway-new-kernel", "  info: POST /api/sessions answered", p["gateway posted"], p["local posted"]),
        Row("gateway-new-kernel", "  info: then the WebSocket open", p["gateway open"], p["local open"]),
        Row(
            "gateway-new-kernel",
            "  info: straight to the gateway: POST /api/kernels -> kernel_info_reply",
            p["direct total"],
        ),
        Row("gateway-new-kernel", "  info: straight to the gateway: POST /api/kernels answered", p["direct posted"]),
    ]
    return rows


# -- 3. memory -------------------------------------------------------------------------------------------------


async def _post_kernels(api: JupyterAPI, count: int, at_once: int) -> list[str]:
    gate = asyncio.Semaphore(at_once)

    async def one() -> str:
        async with gate:
            return str((await api.start_kernel(KERNELSPEC))["id"])

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _memory(cfg: Config, runtime: Path, xdg_runtime: str, homes: list[DaemonHome]) -> dict[str, Any]:
    """Two fresh daemons at once, gateway on (the run's runtime dir) and off (a dir of its own): their RSS."""
    count = cfg.n(20, 5)
    on = _gateway_home(runtime, "gateway-memory", xdg_runtime, gateway=True)
    off = _gateway_home(_empty_runtime(), "no-gateway", xdg_runtime, gateway=False)
    homes += [on, off]
    await asyncio.gather(on.start(), off.start())
    await asyncio.sleep(1.0)
    got: dict[str, Any] = {"count": count, "on": {}, "off": {}, "pss": {}}
    got["on"]["0"], got["off"]["0"] = _rss(on.pid), _rss(off.pid)
    api = await _gateway_of(on)
    try:
        t0 = time.perf_counter()
        kernel_ids, _ = await asyncio.gather(_post_kernels(api, count, 2), _launch_many(off, count, 2))
        got["launch_seconds"] = time.perf_counter() - t0
        assert on.client is not None
        _track(on, await on.client.list_kernels())
        await asyncio.sleep(1.0)
        got["on"]["n"], got["off"]["n"] = _rss(on.pid), _rss(off.pid)
        got["pss"]["on-n"], got["pss"]["off-n"] = memory(on.pid)["pss"], memory(off.pid)["pss"]
        channels = [await _connect(api, kernel_id) for kernel_id in kernel_ids]
        for ch in channels:
            await ch.execute("pass")
        await asyncio.sleep(1.0)
        got["on"]["ws"] = _rss(on.pid)
        api.close()
        await asyncio.sleep(1.0)
        got["on"]["closed"] = _rss(on.pid)
        got["tornado"] = {"on": _maps_tornado(on.pid), "off": _maps_tornado(off.pid)}
    finally:
        api.close()
    return got


def _memory_rows(got: dict[str, Any], cfg: Config) -> list[Row]:
    n = got["count"]
    judged = n == 20

    def goal(row: Row) -> Row:
        value = row.ours[0]
        detail = f"{value / MiB:.1f} MiB (gateway off: {row.theirs[0] / MiB:.1f} MiB)"
        if not judged:
            detail += f"; {n} kernels, not 20 (--quick): not judged"
        return _goal_row(row, f"RSS <= {GOAL_RSS // MiB} MiB", value <= GOAL_RSS if judged else None, detail)

    on, off = got["on"], got["off"]
    tornado = got["tornado"]
    return [
        Row(
            "gateway-memory",
            "daemon RSS, idle, 0 kernels: gateway on / gateway off",
            [on["0"]],
            [off["0"]],
            unit="B",
            notes=[
                "gateway-memory: VmRSS (/proc/<pid>/status) of two fresh daemons after 1 s without requests, side "
                f"by side: gateway on, {n} kernels started through it (POST /api/kernels, 2 at once), then a "
                "WebSocket opened to each and one execute_request run on it, then those WebSockets closed (the "
                "gateway keeps each kernel's last connection, detached, for the next client); gateway off, "
                f"{n} kernels by DaemonClient.launch (2 at once). Its column is the jupyter_client one: ratio = "
                f"on / off. {2 * n} kernels launched in {got['launch_seconds']:.1f} s; PSS with {n} kernels: on "
                f"{fmt_bytes(got['pss']['on-n'])}, off {fmt_bytes(got['pss']['off-n'])}. tornado loaded (its "
                f"speedups in /proc/<pid>/maps): gateway on {tornado['on']}, gateway off {tornado['off']}"
            ],
        ),
        goal(
            Row(
                "gateway-memory",
                f"daemon RSS, idle, {n} kernels: started through the gateway / by DaemonClient, gateway off",
                [on["n"]],
                [off["n"]],
                unit="B",
            )
        ),
        goal(
            Row(
                "gateway-memory",
                f"daemon RSS, {n} kernels, {n} gateway WebSockets open / gateway off, {n} kernels",
                [on["ws"]],
                [off["n"]],
                unit="B",
            )
        ),
        Row(
            "gateway-memory",
            f"  info: daemon RSS, {n} kernels, after their WebSockets closed (gateway on)",
            [on["closed"]],
            unit="B",
        ),
    ]
