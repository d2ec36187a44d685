"""The Jupyter Kernel Gateway API the daemon serves (``[gateway]``): REST, WebSocket, token, replay.

A real daemon with the gateway on a free loopback port, driven over real
HTTP and WebSockets (frames made and read by jupyter_server's own code).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_nanny.daemon.keys import DaemonKeys
from tests.daemons import GATEWAY_CONFIG
from tests.jupyter_api import JupyterAPI


@pytest.fixture
async def gateway(make_daemon):
    daemon = await make_daemon(GATEWAY_CONFIG)
    async with daemon.client() as client:
        url = (await client.info())["gateway_url"]
    assert url.startswith("http://127.0.0.1:")
    api = JupyterAPI(url, DaemonKeys(daemon.state_dir).gateway_token())
    yield daemon, api
    api.close()


async def test_every_request_needs_the_token_and_a_refused_one_does_nothing(gateway):
    daemon, api = gateway
    assert (await api.request("GET", "/api", token=""))[0] == 401
    status, body = await api.request("POST", "/api/kernels", {"name": "python3"}, token="not-the-token")
    assert status == 403 and "token" in body["message"]
    async with daemon.client() as client:
        assert await client.list_kernels() == []  # nothing was started
    kernel = await api.start_kernel()  # the WebSocket asks the same before any upgrade
    assert (await api.request("GET", f"/api/kernels/{kernel['id']}/channels", token=""))[0] == 401
    assert (await api.request("GET", f"/api/kernels/{kernel['id']}/channels", token="wrong"))[0] == 403
    token_file = daemon.state_dir / "gateway.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    shown = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", "keys", "--gateway-token", "--config", str(daemon.config_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == api.token


async def test_kernel_types_are_kernelspecs(gateway):
    _, api = gateway
    specs = await api.call("GET", "/api/kernelspecs")
    assert specs["default"] == "python3"
    python3 = specs["kernelspecs"]["python3"]
    assert python3["spec"]["language"] == "python"
    assert python3["spec"]["metadata"]["kernel_nanny"]["type_id"] == "spec/python3"
    pyimport = specs["kernelspecs"]["pyimport--kernel"]
    assert pyimport["spec"]["metadata"]["kernel_nanny"]["type_id"] == "pyimport/kernel"
    assert await api.call("GET", "/api/kernelspecs/python3") == python3
    # ipykernel's logos are served where the model says
    logo = python3["resources"]["logo-64x64"]
    status, _ = await api.request("GET", logo)
    assert status == 200
    status, body = await api.request("GET", "/api/kernelspecs/nope")
    assert status == 404 and "nope" in body["message"]


async def test_a_kernel_started_here_is_a_daemon_kernel_through_its_whole_life(gateway):
    daemon, api = gateway
    kernel = await api.start_kernel("python3")
    assert kernel["name"] == "python3" and kernel["execution_state"] in ("idle", "starting")
    assert kernel["connections"] == 0 and kernel["last_activity"].endswith("Z")
    ps = subprocess.run([sys.executable, "-m", "kernel_nanny", "ps"], capture_output=True, text=True, check=True)
    assert kernel["id"].replace("-", "")[:12] in ps.stdout
    assert [k["id"] for k in await api.call("GET", "/api/kernels")] == [kernel["id"]]

    channels = await api.channels(kernel["id"])
    assert (await api.call("GET", f"/api/kernels/{kernel['id']}"))["connections"] == 1
    run = await channels.execute("x = 6 * 7\nprint(x)")
    assert run.stdout == "42\n" and run.reply["content"]["status"] == "ok"

    sleeping = await channels.send(
        "execute_request", {"code": "import time; time.sleep(60)", "silent": False, "allow_stdin": False}
    )
    while (await channels.recv())["msg_type"] != "execute_input":  # the sleep has begun
        pass
    await api.call("POST", f"/api/kernels/{kernel['id']}/interrupt", expect=204)
    interrupted = await channels.until_idle(sleeping)
    assert interrupted.reply["content"]["ename"] == "KeyboardInterrupt"

    restarted = await api.call("POST", f"/api/kernels/{kernel['id']}/restart")
    assert restarted["id"] == kernel["id"]
    run = await channels.execute("print('x' in dir())")  # the same socket works on: the restart is in place
    assert run.stdout == "False\n"

    await api.call("DELETE", f"/api/kernels/{kernel['id']}", expect=204)
    assert (await api.request("GET", f"/api/kernels/{kernel['id']}"))[0] == 404
    while await channels.recv(timeout=30) is not None:  # the server closes the socket of a kernel gone
        pass
    assert channels.ws.close_code == 1000
    async with daemon.client() as client:
        assert await client.list_kernels() == []


@pytest.mark.parametrize("v1", [False, True], ids=["json", "v1"])
async def test_both_websocket_protocols_carry_output_display_data_and_buffers(gateway, v1):
    daemon, api = gateway
    kernel = await api.start_kernel()
    channels = await api.channels(kernel["id"], v1=v1)
    assert channels.v1 == v1
    run = await channels.execute(
        "from IPython.display import HTML, display\n"
        "print('hello')\n"
        "display(HTML('<b>bold</b>'))\n"
        "from ipykernel.comm import Comm\n"
        "Comm(target_name='t', data={'a': 1}, buffers=[b'\\x00\\x01binary'])\n"
    )
    assert run.stdout == "hello\n"
    assert run.of_type("display_data")[0]["content"]["data"]["text/html"] == "<b>bold</b>"
    opened = run.of_type("comm_open")[0]
    assert [bytes(b) for b in opened["buffers"]] == [b"\x00\x01binary"]
    assert {m["channel"] for m in run.messages} == {"iopub", "shell"}
    assert api.token not in daemon.log()  # the WebSocket's URL carries it: no access log line may


async def test_a_client_that_reconnects_gets_the_output_it_missed_once_and_in_order(gateway):
    """What a killed jupyter_server's notebook misses while nobody is connected is replayed on reconnection."""
    daemon, api = gateway
    kernel = await api.start_kernel()
    channels = await api.channels(kernel["id"])
    await channels.execute("import time")
    msg_id = await channels.send(
        "execute_request", {"code": "for i in range(6):\n    print(i, flush=True)\n    time.sleep(0.3)"}
    )
    while (msg := await channels.recv()) is not None:  # the first line arrives, then the client goes away
        if msg["msg_type"] == "stream":
            break
    channels.close()
    async with daemon.client() as client:  # the cell finishes while nobody is connected
        while (await client.get_kernel(kernel["id"].replace("-", "")))["info"]["execution_state"] != "idle":
            await asyncio.sleep(0.2)
    again = await api.channels(kernel["id"])
    rest = await again.until_idle(msg_id)
    lines = rest.stdout.split()
    assert lines == [str(i) for i in range(int(lines[0]), 6)], lines  # the rest, once, in order
    assert int(lines[0]) >= 1  # what the first connection got is not sent again
    assert rest.reply["content"]["status"] == "ok"


async def test_malformed_frames_are_dropped_and_the_connection_works_on(gateway):
    daemon, api = gateway
    kernel = await api.start_kernel()
    channels = await api.channels(kernel["id"])
    for garbage in ("not json", "[1, 2]", json.dumps({"channel": "nowhere", "header": {}}), b"\x00\x01"):
        await channels.ws.write_message(garbage, binary=isinstance(garbage, bytes))
    await channels.ws.write_message(json.dumps({"channel": "shell", "header": {"msg_type": "x"}}))
    run = await channels.execute("print('still here')")
    assert run.stdout == "still here\n"
    assert "dropped a frame" in daemon.log()


async def test_a_non_loopback_address_needs_tls_or_an_explicit_insecure(isolated):
    refused = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", "serve", "--gateway", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "clear text" in refused.stderr and "certfile" in refused.stderr
    insecure = subprocess.run(  # allowed when said: it gets as far as its own configuration check
        [
            sys.executable,
            "-m",
            "kernel_nanny",
            "serve",
            "--gateway",
            "0.0.0.0:0",
            "--gateway-insecure",
            "--gateway-certfile",
            "/nowhere.pem",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "clear text" not in insecure.stderr and "keyfile" in insecure.stderr


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(make_daemon):
    """A client that opens connections and sends nothing (a slowloris) must give the descriptor back, while a
    connection that keeps asking is served. The timeout is configurable ([gateway] idle_timeout)."""
    daemon = await make_daemon(GATEWAY_CONFIG + "idle_timeout = 1\n")
    async with daemon.client() as client:
        url = (await client.info())["gateway_url"]
    api = JupyterAPI(url, DaemonKeys(daemon.state_dir).gateway_token())
    try:
        kernel = await api.start_kernel()
        channels = await api.channels(kernel["id"])  # a WebSocket, quiet while the idle connection times out
        host, port = url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            # The server closes it: end of file, well before the test's own timeout, having sent nothing.
            assert await asyncio.wait_for(reader.read(), 30) == b""
        finally:
            writer.close()
            await writer.wait_closed()
        assert (await channels.execute("print('still here')")).stdout == "still here\n"  # a WebSocket is not idle
    finally:
        api.close()


async def test_with_tls_the_api_is_https_and_its_websockets_wss(make_daemon, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    daemon = await make_daemon(f'[gateway]\naddress = "127.0.0.1:0"\ncertfile = "{cert}"\nkeyfile = "{key}"\n')
    async with daemon.client() as client:
        url = (await client.info())["gateway_url"]
    assert url.startswith("https://")
    api = JupyterAPI(url, DaemonKeys(daemon.state_dir).gateway_token())
    try:
        kernel = await api.start_kernel()
        channels = await api.channels(kernel["id"])
        assert (await channels.execute("print(1)")).stdout == "1\n"
    finally:
        api.close()


def _maps(daemon) -> str:
    return (Path("/proc") / str(daemon.process.pid) / "maps").read_text()


async def test_the_daemon_loads_tornado_only_with_the_gateway_on(make_daemon, gateway):
    """tornado's C extension (loaded with tornado.web) shows in the process's memory map when tornado is imported."""
    with_gateway, _ = gateway
    assert "tornado/speedups" in _maps(with_gateway)
    await with_gateway.stop()
    without = await make_daemon("")
    assert "tornado" not in _maps(without)


async def test_a_kernel_that_dies_is_reported_restarting_then_runs_on(gateway):
    """As jupyter_server tells its clients: an iopub status 'restarting', so a notebook stops waiting on the dead cell."""
    daemon, api = gateway
    kernel = await api.start_kernel()
    channels = await api.channels(kernel["id"])
    pid = int((await channels.execute("import os; print(os.getpid())")).stdout)
    os.kill(pid, signal.SIGKILL)
    while True:
        msg = await channels.recv()
        assert msg is not None
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "restarting":
            break
    assert msg["channel"] == "iopub" and msg["header"]["msg_id"]
    await channels.ready()  # as a client does after a restart (KernelClient.wait_for_ready)
    run = await channels.execute("print(os.getpid() if 'os' in dir() else 'new')", timeout=120)
    assert run.stdout == "new\n"


async def test_bad_requests_get_a_clear_error_and_change_nothing(gateway):
    daemon, api = gateway
    status, body = await api.request("POST", "/api/kernels", {"name": "no-such-kernel"})
    assert status == 404 and "no-such-kernel" in body["message"] and "/api/kernelspecs" in body["message"]
    status, body = await api.request("POST", "/api/kernels", {"name": 7})
    assert status == 400 and "'name'" in body["message"]
    status, body = await api.request("POST", "/api/kernels", {"env": ["not", "a", "map"]})
    assert status == 400 and "'env'" in body["message"]
    status, body = await api.request("GET", f"/api/kernels/{'0' * 8}-0000-0000-0000-{'0' * 12}")
    assert status == 404 and body["reason"] == "NoSuchKernel"
    async with daemon.client() as client:
        assert await client.list_kernels() == []


async def test_a_daemon_that_stops_closes_its_websockets_and_leaves_the_kernels_running(gateway):
    daemon, api = gateway
    kernel = await api.start_kernel()
    channels = await api.channels(kernel["id"])
    await channels.execute("y = 1")
    assert await daemon.stop() == 0
    assert await channels.recv() is None
    assert channels.ws.close_code == 1001
    await daemon.start()  # the next daemon adopts the kernel, and the gateway serves it again
    async with daemon.client() as client:
        api = JupyterAPI((await client.info())["gateway_url"], api.token)
    try:
        again = await api.channels(kernel["id"])
        assert (await again.execute("print(y)")).stdout == "1\n"
    finally:
        api.close()


async def _connections(api: JupyterAPI, kernel_id: str, count: int) -> None:
    """Until the gateway counts ``count`` WebSockets open to the kernel (a close is seen when the server sees it)."""
    while (await api.call("GET", f"/api/kernels/{kernel_id}"))["connections"] != count:
        await asyncio.sleep(0.05)


async def test_a_client_gets_its_replies_back_even_if_an_idle_twin_of_its_connection_closed_after_it(gateway):
    """JupyterLab's first WebSocket attempt leaves jupyter_server with a second, idle connection to the gateway
    under the same session id; when both drop, the one that ran the cell is the one kept for the client."""
    daemon, api = gateway
    kernel = await api.start_kernel()
    idle = await api.channels(kernel["id"], session_id="page")
    active = await api.channels(kernel["id"], session_id="page")
    await active.execute("import time")
    cell = await active.send(
        "execute_request", {"code": "for i in range(4):\n    print(i, flush=True)\n    time.sleep(0.2)"}
    )
    while (msg := await active.recv()) is not None and msg["msg_type"] != "stream":
        pass
    active.close()
    await _connections(api, kernel["id"], 1)
    idle.close()
    await _connections(api, kernel["id"], 0)
    again = await api.channels(kernel["id"], session_id="page")
    rest = await again.until_idle(cell)
    assert rest.reply["content"]["status"] == "ok"
    assert rest.stdout.split() == [str(i) for i in range(int(rest.stdout.split()[0]), 4)]
    other = await api.channels(kernel["id"], session_id="another-page")  # another client starts live
    assert (await other.execute("print('live')")).stdout == "live\n"


async def test_clients_that_never_come_back_leave_a_bounded_number_of_connections(gateway):
    """Every page load is a new client session: reloading a notebook many times must not pile up kernel sockets."""
    daemon, api = gateway
    kernel = await api.start_kernel()
    fds = Path(f"/proc/{daemon.process.pid}/fd")

    async def visit(page: int) -> None:
        channels = await api.channels(kernel["id"], session_id=f"page-{page}")
        await channels.execute("pass")
        channels.close()
        await _connections(api, kernel["id"], 0)

    for page in range(6):  # past the number kept per kernel
        await visit(page)
    settled = len(list(fds.iterdir()))
    for page in range(6, 26):
        await visit(page)
    # Past the bound, each visit's sockets (6 descriptors) are closed: no growth over 20 visits but the odd
    # descriptor of the moment (a zmq reconnection in progress).
    assert len(list(fds.iterdir())) - settled < 6


async def test_kernels_without_a_journal_are_served_live_from_their_own_socket(make_daemon):
    daemon = await make_daemon(GATEWAY_CONFIG + "[journal]\nmemory = 0\ndisk = 0\n")
    async with daemon.client() as client:
        api = JupyterAPI((await client.info())["gateway_url"], DaemonKeys(daemon.state_dir).gateway_token())
    try:
        kernel = await api.start_kernel()
        channels = await api.channels(kernel["id"])
        run = await channels.execute("print('unjournaled')")
        assert run.stdout == "unjournaled\n" and run.reply["content"]["status"] == "ok"
    finally:
        api.close()
