"""nbclient runs a notebook through the gateway, with jupyter_server's GatewayKernelManager and our client."""

from __future__ import annotations

import nbformat
from jupyter_server.gateway.gateway_client import GatewayClient
from nbclient import NotebookClient

from kernel_nanny.daemon.keys import DaemonKeys
from kernel_nanny.jupyter.gateway import GatewayKernelManager
from tests.daemons import GATEWAY_CONFIG


async def test_nbclient_executes_a_notebook_on_a_gateway_kernel(make_daemon):
    daemon = await make_daemon(GATEWAY_CONFIG)
    async with daemon.client() as client:
        url = (await client.info())["gateway_url"]
    GatewayClient.clear_instance()
    GatewayClient.instance(url=url, auth_token=DaemonKeys(daemon.state_dir).gateway_token())
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nx = 6 * 7"), nbformat.v4.new_code_cell("print(x, os.getpid())")]
    km = GatewayKernelManager()
    notebook = NotebookClient(nb, km=km, kernel_name="python3", timeout=120)
    try:
        await notebook.async_execute()
        async with daemon.client() as client:
            (entry,) = await client.list_kernels(info=True)  # a daemon kernel, behind its nanny
    finally:
        if notebook.kc is not None:
            notebook.kc.stop_channels()
        await km.shutdown_kernel()
        GatewayClient.clear_instance()
    answer, pid = nb.cells[1].outputs[0]["text"].split()
    assert answer == "42" and int(pid) == entry["info"]["pid"]
    async with daemon.client() as client:
        assert await client.list_kernels() == []


async def test_two_notebooks_at_once_each_send_the_token_and_leave_websocket_as_it_was(make_daemon):
    """The token reaches the WebSocket through a one-shot patch of websocket.create_connection: two kernel
    clients starting at once must each get it, and leave the function as they found it (other code's sockets
    must not carry the gateway's token)."""
    import asyncio

    import websocket

    original = websocket.create_connection
    daemon = await make_daemon(GATEWAY_CONFIG)
    async with daemon.client() as client:
        url = (await client.info())["gateway_url"]
    GatewayClient.clear_instance()
    GatewayClient.instance(url=url, auth_token=DaemonKeys(daemon.state_dir).gateway_token())
    notebooks = []
    for i in range(2):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(f"print({i} * 7)")]
        notebooks.append((nb, GatewayKernelManager()))
    clients = [NotebookClient(nb, km=km, kernel_name="python3", timeout=120) for nb, km in notebooks]
    try:
        await asyncio.gather(*(c.async_execute() for c in clients))
    finally:
        for notebook, (_, km) in zip(clients, notebooks, strict=True):
            if notebook.kc is not None:
                notebook.kc.stop_channels()
            await km.shutdown_kernel()
        GatewayClient.clear_instance()
    assert [nb.cells[0].outputs[0]["text"] for nb, _ in notebooks] == ["0\n", "7\n"]
    assert websocket.create_connection is original
