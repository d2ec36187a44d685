"""Real Docker Engines for the Docker provider's tests: dockerd, podman's Docker API, an ipykernel image.

The engine is ``$KN_TEST_DOCKER_HOST`` (or ``$DOCKER_HOST``) if one answers
there; otherwise the session starts Debian's dockerd itself (no systemd here),
on its own socket, and stops it at the end. No registry is reachable, so the
image is imported from a root file system that mmdebstrap builds from
Debian's packages (cached: only the first run pays for it). A missing
component is a failure, never a skip: ``bash .ci/install-test-deps.sh``
installs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from kernel_nanny.providers.docker_engine import LABEL_OWNER_HOST

from .images import build_rootfs

INSTALL_HINT = "install the test dependencies first: 'bash .ci/install-test-deps.sh' (as root)"
IMAGE = "localhost/ipykernel:bookworm"
#: Our own dockerd: data under /var/lib (the imported image survives between runs), state under /run.
DOCKERD_SOCKET = "/run/kn-test-docker.sock"
DOCKERD_DATA = "/var/lib/kn-test-dockerd"
DOCKERD_EXEC = "/run/kn-test-dockerd"
PODMAN_SOCKET = "/run/kn-test-podman.sock"
ENGINE_START_TIMEOUT = 60


@dataclass
class Engine:
    """A reachable Docker Engine API: its URL and a client for the tests' own checks."""

    host: str
    client: Any

    def kernel_containers(self) -> list[dict[str, Any]]:
        """Every container kernel-nanny started from this host (running or not)."""
        return self.client.api.containers(all=True, filters={"label": f"{LABEL_OWNER_HOST}={socket.gethostname()}"})


def _answers(host: str) -> bool:
    try:
        client = docker.DockerClient(base_url=host, timeout=5)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except docker.errors.DockerException:
        return False
    finally:
        client.close()


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"'{tool}' is not installed: {INSTALL_HINT}", pytrace=False)
    return path


def start_server(argv: list[str], socket_path: str, log_path: Path) -> subprocess.Popen[bytes]:
    """Start an engine and return once it said READY=1 over sd_notify (both dockerd and podman do)."""
    Path(socket_path).unlink(missing_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="kn-notify-") as tmp,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify,
    ):
        notify.bind(f"{tmp}/notify.sock")
        notify.settimeout(ENGINE_START_TIMEOUT)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={**os.environ, "NOTIFY_SOCKET": f"{tmp}/notify.sock"},
            )
        try:
            while b"READY=1" not in notify.recv(4096):
                pass
        except OSError:
            stop_server(process)
            pytest.fail(f"{argv[0]} did not become ready:\n{log_path.read_text()[-3000:]}", pytrace=False)
    return process


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_image(client: Any) -> None:
    try:
        client.images.get(IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    repository, tag = IMAGE.rsplit(":", 1)
    client.api.import_image(src=str(build_rootfs()), repository=repository, tag=tag, changes=['CMD ["python3"]'])
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:  # podman 4.3's Docker API ignores the tag of an import
        client.images.get(f"{repository}:latest").tag(repository, tag)
        client.images.remove(f"{repository}:latest")


def _stop_leftover_dockerd() -> None:
    """Stop a dockerd of ours that an aborted run left running: a new one refuses to start beside it."""
    pidfile = Path(f"{DOCKERD_EXEC}.pid")
    try:
        pid = int(pidfile.read_text())
        ours = DOCKERD_EXEC.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        ours = False
    if not ours:
        pidfile.unlink(missing_ok=True)
        return
    exited = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGTERM)
        if not select.select([exited], [], [], 30)[0]:
            os.kill(pid, signal.SIGKILL)
            select.select([exited], [], [], 30)
    finally:
        os.close(exited)


def start_dockerd(log_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Debian's dockerd on a socket of its own (also used by bench/bench_docker.py); returns its URL."""
    dockerd = _require("dockerd")
    _stop_leftover_dockerd()
    Path(DOCKERD_DATA).mkdir(parents=True, exist_ok=True)
    host = f"unix://{DOCKERD_SOCKET}"
    argv = [dockerd, "--data-root", DOCKERD_DATA, "--exec-root", DOCKERD_EXEC, "--pidfile", f"{DOCKERD_EXEC}.pid"]
    argv += ["-H", host, "--storage-driver", "overlay2"]
    return host, start_server(argv, DOCKERD_SOCKET, log_dir / "dockerd.log")


def engine_from_environment() -> str | None:
    """``$KN_TEST_DOCKER_HOST`` or ``$DOCKER_HOST``, if an engine answers there."""
    for variable in ("KN_TEST_DOCKER_HOST", "DOCKER_HOST"):
        host = os.environ.get(variable)
        if host and _answers(host):
            return host
    return None


@contextlib.contextmanager
def _engine_with_image(host: str, process: subprocess.Popen[bytes] | None) -> Iterator[Engine]:
    """The engine at ``host``, holding the ipykernel image; ``process`` (the engine, if we started it)
    is stopped afterwards, as is the client."""
    try:
        client = docker.DockerClient(base_url=host, timeout=120)
        try:
            ensure_image(client)
            yield Engine(host, client)
        finally:
            client.close()
    finally:
        if process is not None:
            stop_server(process)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A real Docker Engine with the ipykernel image: the environment's, or a dockerd of our own."""
    host = engine_from_environment()
    process = None
    if host is None:
        host, process = start_dockerd(tmp_path_factory.mktemp("dockerd"))
    with _engine_with_image(host, process) as engine:
        yield engine


@pytest.fixture(scope="session")
def podman_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """podman's Docker-compatible API (``podman system service``) with the same image."""
    podman = _require("podman")
    host = f"unix://{PODMAN_SOCKET}"
    process = start_server(
        [podman, "system", "service", "--time=0", host],
        PODMAN_SOCKET,
        tmp_path_factory.mktemp("podman") / "podman-service.log",
    )
    with _engine_with_image(host, process) as engine:
        yield engine


class EngineEvents:
    """The engine's events matching ``filters``, subscribed before the action that causes them."""

    def __init__(self, engine: Engine, **filters: Any) -> None:
        self._stream = engine.client.api.events(filters=filters, decode=True)
        self._items = iter(self._stream)

    async def next(self, timeout: float = 60) -> dict[str, Any]:
        """The next event (read in a thread: the SDK's stream is blocking)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(next, self._items), timeout)
        except asyncio.TimeoutError:
            self.close()  # wakes the reading thread
            raise

    def close(self) -> None:
        self._stream.close()
        self._stream._response.close()


def write_config(path: Path, host: str, images: dict[str, dict[str, Any]]) -> Path:
    """A ``[providers.docker]`` configuration file (TOML written by hand: the stdlib only reads it)."""

    def value(v: Any) -> str:
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return str(v)

    lines = ["[providers.docker]", f"host = {value(host)}"]
    for name, settings in images.items():
        lines.append(f"[providers.docker.images.{name}]")
        lines += [f"{key} = {value(v)}" for key, v in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
