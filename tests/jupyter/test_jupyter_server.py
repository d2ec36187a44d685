"""A real jupyter_server, started in a subprocess, runs its kernels through the provisioner.

The server is configured the way a user would (``--KernelProvisionerFactory.default_provisioner_name``,
``--NannyProvisioner.persistent``) and driven over its REST API and kernel websocket, as JupyterLab drives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_core.paths import jupyter_runtime_dir
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from kernel_nanny import ManagerClient
from kernel_nanny.client.running import list_running_kernels, pid_alive
from tests.jupyter_api import JupyterServer

from .conftest import LOCAL_SPEC


@dataclass
class Server:
    process: asyncio.subprocess.Process
    url: str
    token: str
    kernel_ids: list[str] = field(default_factory=list)

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await AsyncHTTPClient().fetch(
            HTTPRequest(
                f"{self.url}{path}",
                method=method,
                headers={"Authorization": f"token {self.token}"},
                body=json.dumps(body) if body is not None else (b"" if method == "POST" else None),
                allow_nonstandard_methods=True,
            )
        )
        result = json.loads(response.body) if response.body else None
        if method == "POST" and path == "/api/kernels":
            self.kernel_ids.append(result["id"])
        return result

    async def channels(self, kernel_id: str) -> WebSocketClientConnection:
        ws_url = self.url.replace("http://", "ws://")
        return await websocket_connect(
            HTTPRequest(f"{ws_url}/api/kernels/{kernel_id}/channels", headers={"Authorization": f"token {self.token}"})
        )


@pytest.fixture
async def server(tmp_path) -> AsyncIterator[Server]:
    running = JupyterServer(
        tmp_path,
        "--KernelProvisionerFactory.default_provisioner_name=kernel-nanny",
        "--NannyProvisioner.persistent=True",  # as the how-to says for servers: kernels survive a crash
    )
    api = await running.start()
    assert running.process is not None
    server = Server(running.process, api.base_url, running.token)
    try:
        yield server
    finally:
        await running.stop()
        # A failed test may leave a kernel the server did not shut down (or one that outlived it on purpose).
        for kernel in list_running_kernels():
            if kernel.name in server.kernel_ids:
                async with ManagerClient.from_connection_file(kernel.connection_file) as manager:
                    await manager.shutdown(now=True)


def message(msg_type: str, content: dict[str, Any], channel: str = "shell") -> dict[str, Any]:
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": msg_type, "session": "test", "username": "test", "version": "5.3"}
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": channel}


class Cell:
    """One execute_request over a kernel's websocket, and what came back for it."""

    def __init__(self, ws: WebSocketClientConnection, code: str) -> None:
        self.ws = ws
        self.request = message("execute_request", {"code": code, "silent": False, "store_history": False})
        self.printed = ""
        self.reply: dict[str, Any] | None = None
        self.idle = False

    async def send(self) -> Cell:
        await self.ws.write_message(json.dumps(self.request))
        return self

    async def until(self, printed: str | None = None) -> Cell:
        """Read messages until ``printed`` appeared in the cell's stdout, or else until it is done.

        Done is its execute_reply (shell) and its idle status (iopub): the two
        channels are merged onto one websocket in no particular order.
        """
        while not (self.reply is not None and self.idle) and (printed is None or printed not in self.printed):
            raw = await asyncio.wait_for(self.ws.read_message(), 60)
            assert raw is not None, "the websocket closed"
            msg = json.loads(raw)
            if msg["parent_header"].get("msg_id") != self.request["header"]["msg_id"]:
                continue
            if msg["msg_type"] == "stream":
                self.printed += msg["content"]["text"]
            elif msg["msg_type"] == "execute_reply":
                self.reply = msg["content"]
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                self.idle = True
        return self


async def answering(ws: WebSocketClientConnection, attempts: int = 12) -> None:
    """Wait until the kernel answers kernel_info, asking again every 5 s, as JupyterLab does after a restart.

    The server's restart runs after it says "restarting": a request that reaches the kernel in between may go
    with the process the restart replaces, as with jupyter_client's own kernels.
    """
    for _ in range(attempts):
        request = message("kernel_info_request", {})
        await ws.write_message(json.dumps(request))
        try:
            while True:
                msg = json.loads(await asyncio.wait_for(ws.read_message(), 5))
                if (
                    msg["msg_type"] == "kernel_info_reply"
                    and msg["parent_header"]["msg_id"] == request["header"]["msg_id"]
                ):
                    return
        except asyncio.TimeoutError:
            continue
    raise AssertionError(f"no kernel_info_reply in {attempts} attempts")


async def run(ws: WebSocketClientConnection, code: str) -> Cell:
    return await (await Cell(ws, code).send()).until()


def nanny_named(kernel_id: str) -> list:
    return [k for k in list_running_kernels() if k.name == kernel_id]


async def test_rest_and_websocket_run_kernels_behind_nannies(server):
    kernel = await server.request("POST", "/api/kernels", {"name": LOCAL_SPEC})
    kernel_id = kernel["id"]
    [nanny] = nanny_named(kernel_id)  # the default provisioner, from the server's configuration
    ws = await server.channels(kernel_id)
    try:
        cell = await run(ws, "x = 6 * 7\nprint(x)")
        assert cell.printed == "42\n" and cell.reply == {**cell.reply, "status": "ok"}

        sleeping = await (await Cell(ws, "import time\nprint('go', flush=True)\ntime.sleep(60)").send()).until("go")
        await server.request("POST", f"/api/kernels/{kernel_id}/interrupt")
        await sleeping.until()
        assert sleeping.reply is not None and sleeping.reply["ename"] == "KeyboardInterrupt"
    finally:
        ws.close()

    await server.request("POST", f"/api/kernels/{kernel_id}/restart")
    [same] = nanny_named(kernel_id)
    assert same.kernel_id == nanny.kernel_id and same.nanny_pid == nanny.nanny_pid  # restarted in place
    ws = await server.channels(kernel_id)
    try:
        cell = await run(ws, "x")
        assert cell.reply is not None and cell.reply["ename"] == "NameError"  # a fresh kernel
    finally:
        ws.close()

    await server.request("DELETE", f"/api/kernels/{kernel_id}")
    assert nanny_named(kernel_id) == []
    assert not pid_alive(nanny.nanny_pid)


async def test_kernels_outlive_a_crashed_server(server):
    kernel_id = (await server.request("POST", "/api/kernels", {"name": LOCAL_SPEC}))["id"]
    [nanny] = nanny_named(kernel_id)
    server.process.kill()
    await server.process.wait()
    try:
        [survivor] = nanny_named(kernel_id)
        async with ManagerClient.from_connection_file(survivor.connection_file) as manager:
            assert await manager.is_alive()
    finally:
        async with ManagerClient.from_connection_file(nanny.connection_file) as manager:
            await manager.shutdown(now=True)
        # The killed server's own connection file for the kernel: only the server could have removed it.
        (Path(jupyter_runtime_dir()) / f"kernel-{kernel_id}.json").unlink()
    assert nanny_named(kernel_id) == []


async def test_a_crash_is_one_restart_for_the_servers_restarter_and_the_nanny(server):
    """jupyter_server's restarter sees the crash (the kernel it knew died) and restarts the kernel; that restart
    adopts the one the nanny already brought back: one crash, one death, one restart (RESTARTS 1 in ps)."""
    kernel = await server.request("POST", "/api/kernels", {"name": LOCAL_SPEC})
    kernel_id = kernel["id"]
    [nanny] = nanny_named(kernel_id)
    ws = await server.channels(kernel_id)
    try:
        await run(ws, "print('up')")
        async with ManagerClient.from_connection_file(nanny.connection_file) as manager:
            deaths: list[dict[str, Any]] = []
            second_death = asyncio.Event()

            def on_event(event: Any) -> None:
                if event.msg_type == "kernel_died":
                    deaths.append(event.content)
                    if len(deaths) > 1:
                        second_death.set()

            manager.add_event_handler(on_event)
            await manager.subscribe()
            os.kill((await manager.info())["pid"], signal.SIGKILL)
            while True:  # the server's restarter polls every few seconds, then tells the browser
                msg = json.loads(await asyncio.wait_for(ws.read_message(), 60))
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "restarting":
                    break
            await answering(ws)
            cell = await run(ws, "print('back')")
            assert cell.printed == "back\n"
            # Before the fix, the server's restart killed the nanny's new kernel within a second of telling
            # the browser: a second death. A bounded wait for a death that must not come.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(second_death.wait(), 5)
            assert len(deaths) == 1 and (await manager.info())["restart_count"] == 1
    finally:
        ws.close()
        await server.request("DELETE", f"/api/kernels/{kernel_id}")
