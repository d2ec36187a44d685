"""A client of the Jupyter kernel REST and WebSocket API, as JupyterLab uses it: for our gateway and jupyter_server.

Frames are read and written with jupyter_server's own (de)serializers, so the
wire formats are checked against an implementation that is not ours.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

V1 = "v1.kernel.websocket.jupyter.org"


class JupyterAPI:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._opened: list[Channels] = []

    def close(self) -> None:
        """Close every WebSocket this client opened."""
        for channels in self._opened:
            channels.close()

    async def request(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        """``(status, parsed JSON body, or the raw body if not JSON)``; never raises for an HTTP error."""
        headers = {} if token == "" else {"Authorization": f"token {self.token if token is None else token}"}
        request = HTTPRequest(
            f"{self.base_url}{path}",
            method=method,
            headers=headers,
            body=None if body is None and method != "POST" else json.dumps(body or {}),
            request_timeout=120,
            validate_cert=False,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 599:
            raise ConnectionError(f"{method} {path}: {response.error}")
        if "json" not in response.headers.get("Content-Type", ""):
            return response.code, response.body
        return response.code, (json.loads(response.body) if response.body else None)

    async def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        status, data = await self.request(method, path, body)
        assert status == expect, f"{method} {path}: {status} {data}"
        return data

    async def start_kernel(self, name: str = "python3") -> dict[str, Any]:
        kernel: dict[str, Any] = await self.call("POST", "/api/kernels", {"name": name}, expect=201)
        return kernel

    async def channels(
        self, kernel_id: str, *, v1: bool = False, token: str | None = None, session_id: str | None = None
    ) -> Channels:
        """A kernel WebSocket; ``session_id`` as JupyterLab sends it (its reconnections send the same)."""
        url = self.base_url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
        query = f"?token={self.token if token is None else token}" + (f"&session_id={session_id}" if session_id else "")
        request = HTTPRequest(url + query, validate_cert=False, request_timeout=60)
        ws = await websocket_connect(request, subprotocols=[V1] if v1 else None)
        channels = Channels(ws, v1=ws.selected_subprotocol == V1)
        self._opened.append(channels)
        return channels


@dataclass
class Execution:
    msg_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reply(self) -> dict[str, Any]:
        return next(m for m in self.messages if m["msg_type"] == "execute_reply")

    def of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] == msg_type]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout")


class Channels:
    """One kernel WebSocket: send requests, read messages (with their ``channel``)."""

    def __init__(self, ws: WebSocketClientConnection, *, v1: bool) -> None:
        self.ws = ws
        self.v1 = v1
        self.session = uuid.uuid4().hex

    async def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        msg_id = uuid.uuid4().hex
        msg = {
            "header": {
                "msg_id": msg_id,
                "msg_type": msg_type,
                "session": self.session,
                "username": "test",
                "version": "5.3",
                "date": "2026-01-01T00:00:00.000000Z",
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "buffers": [],
            "channel": channel,
        }
        if self.v1:
            frame: str | bytes = serialize_msg_to_ws_v1(msg, channel, pack=lambda part: json.dumps(part).encode())
        else:
            frame = json.dumps(msg)
        await self.ws.write_message(frame, binary=isinstance(frame, bytes))
        return msg_id

    async def recv(self, timeout: float = 60) -> dict[str, Any] | None:
        """The next message (with ``channel``), or None when the server closed the socket."""
        frame = await asyncio.wait_for(self.ws.read_message(), timeout)
        if frame is None:
            return None
        if self.v1:
            assert isinstance(frame, bytes), "a v1 connection sends binary frames"
            channel, parts = deserialize_msg_from_ws_v1(frame)
            header, parent, metadata, content = (json.loads(part) for part in parts[:4])
            return {
                "channel": channel,
                "header": header,
                "msg_type": header["msg_type"],
                "parent_header": parent,
                "metadata": metadata,
                "content": content,
                "buffers": parts[4:],
            }
        msg: dict[str, Any] = deserialize_binary_message(frame) if isinstance(frame, bytes) else json.loads(frame)
        return msg

    async def until_idle(self, msg_id: str, timeout: float = 60) -> Execution:
        """Every message answering ``msg_id`` up to its reply and its idle status."""
        execution = Execution(msg_id)
        idle = replied = False
        while not (idle and replied):
            msg = await self.recv(timeout)
            assert msg is not None, f"the socket closed before {msg_id} finished: {execution.messages}"
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            execution.messages.append(msg)
            replied = replied or msg["msg_type"].endswith("_reply")
            idle = idle or (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle")
        return execution

    async def ready(self, attempts: int = 60) -> None:
        """Until a ``kernel_info_request`` of ours has its idle status on iopub: the kernel answers and its output
        reaches us (after a restart, as ``KernelClient.wait_for_ready``: a request sent before may lose its output
        to iopub subscriptions not yet renewed). Asked again every second."""
        for _ in range(attempts):
            msg_id = await self.send("kernel_info_request", {})
            try:
                await self.until_idle(msg_id, timeout=1)
                return
            except asyncio.TimeoutError:
                continue
        raise AssertionError(f"the kernel was not ready after {attempts} kernel_info requests")

    async def execute(self, code: str, timeout: float = 60) -> Execution:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False}
        return await self.until_idle(await self.send("execute_request", content), timeout)

    def close(self) -> None:
        self.ws.close()


_SERVER_URL = re.compile(rb"(http://127\.0\.0\.1:\d+)/")


class JupyterServer:
    """A real ``jupyter server`` subprocess on a free loopback port, with a token of its own."""

    def __init__(self, root: Path, *options: str) -> None:
        self.root = root
        self.options = options
        self.token = secrets.token_hex(16)
        self.process: asyncio.subprocess.Process | None = None
        self.api: JupyterAPI | None = None
        self._drain: asyncio.Future[bytes] | None = None

    async def start(self) -> JupyterAPI:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port=0",
            "--ServerApp.open_browser=False",
            "--allow-root",  # CI runs as root
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}",
            *self.options,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stderr is not None
        log = b""  # it logs the URL it serves once it has picked the port
        while (match := _SERVER_URL.search(log)) is None:
            line = await asyncio.wait_for(self.process.stderr.readline(), 60)
            assert line, f"jupyter_server exited before serving:\n{log.decode()}"
            log += line
        self._drain = asyncio.ensure_future(self.process.stderr.read())  # its log pipe must not fill up
        self.api = JupyterAPI(match.group(1).decode(), self.token)
        # It logs its URL before it binds (on its loop's first turn) and announces nothing after: retry a
        # cheap request, bounded in time.
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                await self.api.request("GET", "/api/status")
                return self.api
            except ConnectionError:
                if asyncio.get_running_loop().time() > deadline or self.process.returncode is not None:
                    raise
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind (a crash, the OOM killer)."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()
        await self._close()

    async def stop(self) -> None:
        """SIGTERM: jupyter_server's clean shutdown (SIGINT asks a terminal for confirmation, or is ignored)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 60)
        await self._close()

    async def _close(self) -> None:
        if self.api is not None:
            self.api.close()
        if self._drain is not None:
            await self._drain
            self._drain = None
