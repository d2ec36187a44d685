"""A real daemon process, in the test's runtime and state directories.

Readiness is the daemon's own sd_notify READY=1, received on a NOTIFY_SOCKET
the fixture owns: no polling for a socket file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from kernel_nanny import DaemonClient

#: A daemon configuration that serves the gateway API on a free loopback port (``gateway_url`` in its info).
GATEWAY_CONFIG = '[gateway]\naddress = "127.0.0.1:0"\n'


class RunningDaemon:
    def __init__(self, tmp: Path, config: str = "") -> None:
        self.tmp = tmp
        self.config_file = tmp / "config.toml"
        self.config_file.write_text(config)
        self.notify_path = str(tmp / "notify.sock")
        self.process: asyncio.subprocess.Process | None = None
        self.log_file = tmp / "daemon.log"

    @property
    def runtime_dir(self) -> Path:
        return Path(os.environ["JUPYTER_RUNTIME_DIR"])

    @property
    def state_dir(self) -> Path:
        return Path(os.environ["XDG_STATE_HOME"]) / "kernel-nanny"

    async def start(self, timeout: float = 30, env: dict[str, str] | None = None) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            Path(self.notify_path).unlink(missing_ok=True)
            notify.bind(self.notify_path)
            notify.setblocking(False)
            env = dict(os.environ, **(env or {}), NOTIFY_SOCKET=self.notify_path)
            with open(self.log_file, "ab") as log:
                self.process = await asyncio.create_subprocess_exec(
                    *[sys.executable, "-m", "kernel_nanny", "serve", "--config", str(self.config_file)],
                    env=env,
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                )
            loop = asyncio.get_running_loop()

            async def ready() -> None:
                while b"READY=1" not in await loop.sock_recv(notify, 4096):
                    pass

            waiter = asyncio.ensure_future(ready())
            exited = asyncio.ensure_future(self.process.wait())
            done, _ = await asyncio.wait({waiter, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            exited.cancel()
            if waiter not in done:
                raise AssertionError(f"the daemon did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def client(self, **kwargs) -> DaemonClient:
        return DaemonClient.find(**kwargs)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 30)
