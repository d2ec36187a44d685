"""The seam to the Docker Engine: the SDK (imported lazily), connecting, labels, strays, streams.

The docker SDK is optional (``kernel-nanny[docker]``) and blocking. It is
imported only when a container is launched or cleaned up, so listing kernel
types works without it; its calls run in threads (``asyncio.to_thread``), and
its two long-lived streams (engine events, a container's output) each in a
thread of their own that the event loop can close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._exceptions import LaunchError
from .._lifetime import Lifetime
from ..defaults import DOCKER_ENGINE_TIMEOUT

__all__ = [
    "LABEL_KERNEL",
    "LABEL_OWNER_HOST",
    "LABEL_OWNER_PID",
    "LABEL_OWNER_START",
    "StreamThread",
    "connect",
    "describe_host",
    "docker_sdk",
    "owner_labels",
    "remove_strays",
]

log = logging.getLogger("kernel_nanny.providers.docker")

#: Labels on every container kernel-nanny starts: which kernel, and which process owns it where.
LABEL_KERNEL = "kernel-nanny.kernel"
LABEL_OWNER_HOST = "kernel-nanny.owner-host"
LABEL_OWNER_PID = "kernel-nanny.owner-pid"
#: The owner's start time (clock ticks since boot): a reused pid is not mistaken for the owner.
LABEL_OWNER_START = "kernel-nanny.owner-start"
_SDK_DEFAULT_HOST = "unix:///var/run/docker.sock"


def docker_sdk() -> Any:
    """The ``docker`` package, or a :exc:`LaunchError` saying which extra installs it."""
    try:
        import docker
    except ImportError:
        raise LaunchError(
            "the Docker provider needs the docker SDK: pip install docker (the 'docker' extra of kernel-nanny)"
        ) from None
    return docker


def describe_host(host: str | None) -> str:
    """The engine URL a client for ``host`` talks to (for messages)."""
    return host or os.environ.get("DOCKER_HOST") or _SDK_DEFAULT_HOST


def connect(host: str | None) -> Any:
    """A ``docker.DockerClient`` for ``host`` (None: ``$DOCKER_HOST`` and friends, else the default socket).

    Blocking (it asks the engine for its API version). An engine that cannot be
    reached is a :exc:`LaunchError` naming the URL and the fix.
    """
    docker = docker_sdk()
    try:
        _check_unix_socket(describe_host(host))
        if host:
            return docker.DockerClient(base_url=host, timeout=DOCKER_ENGINE_TIMEOUT)
        return docker.from_env(timeout=DOCKER_ENGINE_TIMEOUT)
    except (OSError, docker.errors.DockerException) as exc:
        raise LaunchError(
            f"cannot reach the Docker Engine at {describe_host(host)} ({exc}): start the Docker Engine "
            "or set [providers.docker] host / DOCKER_HOST to where it listens"
        ) from exc


def _check_unix_socket(url: str) -> None:
    """Connect to a ``unix://`` engine socket once: the SDK would leak its socket if that failed."""
    if url.startswith(("unix://", "http+unix://")):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(DOCKER_ENGINE_TIMEOUT)
            probe.connect(url.split("://", 1)[1])


def _start_time(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), if it is alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]


def owner_labels() -> dict[str, str]:
    """Labels that name this process as a container's owner."""
    return {
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_OWNER_PID: str(os.getpid()),
        LABEL_OWNER_START: _start_time(os.getpid()) or "",
    }


def _owner_alive(labels: dict[str, str]) -> bool:
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return False
    started = _start_time(pid)
    return started is not None and labels.get(LABEL_OWNER_START, started) in (started, "")


def remove_strays(client: Any) -> list[str]:
    """Force-remove containers of this host whose owner process is gone; returns their ids (blocking).

    One filtered list call: containers labelled by kernel-nanny on this host
    only (another host's owners cannot be checked from here).
    """
    containers = client.api.containers(all=True, filters={"label": f"{LABEL_OWNER_HOST}={socket.gethostname()}"})
    removed = []
    for container in containers:
        if _owner_alive(container.get("Labels") or {}):
            continue
        try:
            client.api.remove_container(container["Id"], force=True)
        except docker_sdk().errors.NotFound:  # removed meanwhile (its owner's lifeline got there first)
            continue
        log.info("removed stray container %s (its owner is gone)", container["Id"][:12])
        removed.append(container["Id"])
    return removed


class StreamThread(Lifetime):
    """Reads one blocking SDK stream (a ``CancellableStream``) in a thread of its own.

    Each item is handed to ``on_item`` on the event loop; :attr:`finished`
    completes when the stream ends (the engine closed it, or :meth:`close`).
    :meth:`close` shuts the stream's socket down, which wakes the thread;
    :meth:`wait_closed` joins it.
    """

    def __init__(self, stream: Any, on_item: Callable[[Any], None], name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._stream = stream
        self._on_item = on_item
        self.finished: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            items: Iterator[Any] = iter(self._stream)
            for item in items:
                self._call(self._on_item, item)
        except Exception as exc:  # the engine went away mid-stream: the owner decides what that means
            log.debug("%s ended: %r", self._thread.name, exc)
        finally:
            self._call(self._finish)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def __repr__(self) -> str:
        return f"<StreamThread {self._thread.name} state={self.state.value}>"

    def _begin_closing(self) -> None:
        try:
            self._stream.close()
        except Exception as exc:  # already closed by the engine
            log.debug("closing %s: %r", self._thread.name, exc)

    async def _finish_closing(self) -> None:
        await asyncio.to_thread(self._thread.join, DOCKER_ENGINE_TIMEOUT)
        # The stream only shuts its socket down; the HTTP response still refers to it
        # (an attach stream's socket would otherwise be reported unclosed).
        response = getattr(self._stream, "_response", None)
        if response is not None:
            response.close()
