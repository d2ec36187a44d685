"""jupyter_server in gateway mode against the daemon's gateway: real servers, driven as JupyterLab drives them.

``jupyter server --gateway-url=...`` (jupyter_server's own ``GatewayClient``)
in a subprocess, with the classes the how-to configures for kernels that
outlive the server (``kernel_nanny.jupyter.gateway``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from kernel_nanny.daemon.keys import DaemonKeys
from tests.daemons import GATEWAY_CONFIG
from tests.jupyter_api import JupyterServer


@pytest.fixture
async def gateway_mode(make_daemon, tmp_path):
    """``start()`` starts a jupyter_server in gateway mode against a daemon serving the gateway."""
    daemon = await make_daemon(GATEWAY_CONFIG)
    async with daemon.client() as client:
        url = (await client.info())["gateway_url"]
    token = DaemonKeys(daemon.state_dir).gateway_token()
    servers: list[JupyterServer] = []

    def server(*options: str) -> JupyterServer:
        made = JupyterServer(
            tmp_path,
            *options,
            f"--gateway-url={url}",
            f"--GatewayClient.auth_token={token}",
            "--ServerApp.kernel_manager_class=kernel_nanny.jupyter.gateway.GatewayKernels",
            "--ServerApp.session_manager_class=kernel_nanny.jupyter.gateway.GatewaySessions",
            f"--SessionManager.database_filepath={tmp_path / 'sessions.db'}",
        )
        servers.append(made)
        return made

    yield daemon, server
    for made in servers:
        await made.stop()


async def kernel_state(daemon, kernel_id: str) -> str:
    async with daemon.client() as client:
        return str((await client.get_kernel(kernel_id.replace("-", "")))["info"]["execution_state"])


async def test_jupyter_server_lists_starts_runs_interrupts_restarts_and_stops_kernels_here(gateway_mode):
    daemon, server = gateway_mode
    api = await server().start()
    specs = await api.call("GET", "/api/kernelspecs")
    assert specs["kernelspecs"]["python3"]["spec"]["metadata"]["kernel_nanny"]["type_id"] == "spec/python3"
    assert "pyimport--kernel" in specs["kernelspecs"]

    kernel = await api.start_kernel("python3")
    ps = subprocess.run([sys.executable, "-m", "kernel_nanny", "ps"], capture_output=True, text=True, check=True)
    assert kernel["id"].replace("-", "")[:12] in ps.stdout  # a daemon kernel like any other

    channels = await api.channels(kernel["id"])
    run = await channels.execute("from IPython.display import HTML, display\nprint('hi')\ndisplay(HTML('<i>x</i>'))")
    assert run.stdout == "hi\n" and run.of_type("display_data")[0]["content"]["data"]["text/html"] == "<i>x</i>"

    sleeping = await channels.send("execute_request", {"code": "import time; time.sleep(60)", "silent": False})
    while await kernel_state(daemon, kernel["id"]) != "busy":
        await asyncio.sleep(0.05)
    await api.call("POST", f"/api/kernels/{kernel['id']}/interrupt", expect=204)
    assert (await channels.until_idle(sleeping)).reply["content"]["ename"] == "KeyboardInterrupt"

    await api.call("POST", f"/api/kernels/{kernel['id']}/restart")
    assert (await channels.execute("print('time' in dir())")).stdout == "False\n"

    await api.call("DELETE", f"/api/kernels/{kernel['id']}", expect=204)
    async with daemon.client() as client:
        assert await client.list_kernels() == []


async def test_a_notebook_gets_its_kernel_and_the_output_it_missed_after_the_server_was_killed(gateway_mode):
    daemon, server = gateway_mode
    first = server()
    api = await first.start()
    session = await api.call(
        "POST",
        "/api/sessions",
        {"path": "nb.ipynb", "type": "notebook", "name": "nb.ipynb", "kernel": {"name": "python3"}},
        expect=201,
    )
    kernel_id = session["kernel"]["id"]
    channels = await api.channels(kernel_id, session_id=session["id"])
    await channels.execute("import time\nx = 41")
    cell = await channels.send(
        "execute_request", {"code": "for i in range(8):\n    print(i, flush=True)\n    time.sleep(0.25)"}
    )
    while (msg := await channels.recv()) is not None and msg["msg_type"] != "stream":
        pass
    await first.kill()  # mid-cell
    while await kernel_state(daemon, kernel_id) != "idle":  # the cell finishes with nobody connected
        await asyncio.sleep(0.1)

    api = await server().start()
    assert [s["kernel"]["id"] for s in await api.call("GET", "/api/sessions")] == [kernel_id]
    assert [k["id"] for k in await api.call("GET", "/api/kernels")] == [kernel_id]
    again = await api.channels(kernel_id, session_id=session["id"])
    rest = await again.until_idle(cell)
    lines = rest.stdout.split()
    assert lines and lines == [str(i) for i in range(int(lines[0]), 8)], lines  # once, in order, to the end
    assert rest.reply["content"]["status"] == "ok"  # the cell is done for the notebook too
    assert (await again.execute("print(x + 1)")).stdout == "42\n"  # same kernel, variables intact


async def test_a_clean_server_shutdown_leaves_the_kernels_running(gateway_mode):
    daemon, server = gateway_mode
    first = server()
    api = await first.start()
    kernel = await api.start_kernel()
    await first.stop()
    async with daemon.client() as client:
        assert [k["kernel_id"] for k in await client.list_kernels()] == [kernel["id"].replace("-", "")]


async def test_jupyter_servers_culling_works_from_the_gateways_kernel_models(gateway_mode):
    """last_activity, execution_state and connections are what jupyter_server's culler reads."""
    daemon, server = gateway_mode
    api = await server("--MappingKernelManager.cull_idle_timeout=2", "--MappingKernelManager.cull_interval=1").start()
    kernel = await api.start_kernel()
    async with daemon.client() as client:
        while await client.list_kernels():  # culled: jupyter_server deleted it through the gateway
            await asyncio.sleep(0.5)
    assert (await api.request("GET", f"/api/kernels/{kernel['id']}"))[0] == 404
