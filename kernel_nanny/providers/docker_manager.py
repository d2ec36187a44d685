"""The manager interface for a kernel that runs in a Docker container.

The container is created once and keeps its ports across restarts (a restart
stops and starts the same container). Its deaths are learnt from the engine's
``die`` events, and how it ended from the container's state: the exit code,
128 + N for a signal N (the container's init reports it so), and ``oom`` when
the engine says the OOM killer struck. Its stdout/stderr arrive through an
attach stream opened before each start, so nothing it writes is missed. If
the owner of the container dies (even by SIGKILL), a lifeline removes it.

:meth:`DockerKernelManager.to_json` writes what another process needs to take
the container over, and :meth:`DockerKernelManager.from_json` takes it over
there (:ref:`reattach-from-json`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from .._exceptions import ConnectionInfoError, KernelNotRunning, LaunchError, NoSuchKernel
from .._logging import KernelLogAdapter
from ..launch.base_manager import BaseKernelManager
from ..launch.lifeline import Lifeline
from ..launch.params import DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_STARTUP_TIMEOUT
from ..protocol import ConnectionInfo, ExitStatus, normalize_connection_info
from ..protocol.manager_state import check_same_host, dump_manager_state, load_manager_state, wrong_field
from .docker_engine import StreamThread, connect, describe_host, docker_sdk

__all__ = ["DockerKernelManager", "exit_status"]

log = logging.getLogger("kernel_nanny.providers.docker")


def exit_status(state: dict[str, Any]) -> ExitStatus:
    """How a container's main process ended, from its inspected ``State``.

    The init (``init=True``) exits with 128 + N when the kernel was killed by
    signal N, as a shell would; the engine's ``OOMKilled`` turns a SIGKILL into ``oom``.
    """
    code = int(state.get("ExitCode") or 0)
    signum = code - 128 if code > 128 else 0
    if signum not in signal.valid_signals():
        return ExitStatus(exit_code=code)
    if state.get("OOMKilled") and signum == signal.SIGKILL:
        return ExitStatus(signal=signum, reason="oom")
    return ExitStatus.from_returncode(-signum)


class DockerKernelManager(BaseKernelManager):
    """Owns one kernel container (already created, not yet started: call :meth:`start`).

    ``connection_info`` (the host side: 127.0.0.1 and the published ports) stays
    the same across restarts: a restart starts the same container again.
    """

    def __init__(
        self,
        client: Any,
        container_id: str,
        connection_info: ConnectionInfo,
        connection_file: Path,
        *,
        private_dir: Path,
        reap_command: list[str],
        engine_host: str | None = None,
        interrupt_mode: str = "signal",
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        echo_output: bool = True,
    ) -> None:
        super().__init__(
            connection_info,
            connection_file,
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
            echo_output=echo_output,
            logger=KernelLogAdapter(log, container=container_id[:12], pid=lambda: self.pid),
        )
        self.client = client
        self.container_id = container_id
        self.private_dir = private_dir
        self.reap_command = reap_command
        #: The engine's URL as configured (None: ``$DOCKER_HOST``, else the SDK's default), for to_json().
        self.engine_host = engine_host
        self._interrupt_mode = interrupt_mode
        self._events: StreamThread | None = None
        self._attach: StreamThread | None = None
        self._exit: asyncio.Future[ExitStatus] | None = None
        self._removed = False
        #: False for a manager re-attached from JSON: the container's lifeline is its launcher's.
        self._launched_here = True
        self.pid: int | None = None

    def __repr__(self) -> str:
        state = "not started" if self._exit is None else ("exited" if self._exit.done() else "running")
        kernel = self.connection_info.get("kernel_name") or "?"
        return f"<DockerKernelManager kernel={kernel} container={self.container_id[:12]} pid={self.pid} state={state}>"

    @property
    def interrupt_mode(self) -> str:
        """``signal`` (SIGINT to the container's init) or ``message`` (``interrupt_request``)."""
        return self._interrupt_mode

    async def _engine(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One blocking low-level API call (``client.api.<method>``), in a thread."""
        return await asyncio.to_thread(getattr(self.client.api, method), self.container_id, *args, **kwargs)

    # -- starting ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the container; :meth:`wait_until_ready` waits for the kernel in it to be usable.

        Before the first start, subscribe to its ``die`` events and arm the
        lifeline; before every start, attach to its output.
        """
        await self._follow_events()
        if self._lifeline is None and self._launched_here:
            self._lifeline = Lifeline.run_on_owner_death(self.reap_command)
        self._output.clear_tail()
        await self._attach_output()
        self._exit = asyncio.get_running_loop().create_future()
        try:
            await self._engine("start")
        except docker_sdk().errors.APIError as exc:
            self._exit.set_result(ExitStatus(exit_code=None))
            raise LaunchError(f"the Docker Engine could not start the kernel's container: {_explain(exc)}") from exc
        state = (await self._engine("inspect_container"))["State"]
        self.pid = state.get("Pid") or None
        self._log.info("started")

    async def _follow_events(self) -> None:
        """Subscribe to the container's events (once)."""
        if self._events is None:
            # Only the container filter: podman's Docker API calls the event "died" in its filter.
            events = await asyncio.to_thread(
                self.client.api.events, filters={"container": self.container_id}, decode=True
            )
            self._events = StreamThread(events, self._on_event, f"docker-events-{self.container_id[:12]}")
            self._events.finished.add_done_callback(self._events_ended)

    async def _attach_output(self) -> None:
        """Receive what the container writes from now on (its output of before is not replayed)."""
        stream = await self._engine("attach", stdout=True, stderr=True, stream=True, logs=False, demux=True)
        self._attach = StreamThread(stream, self._on_output, f"docker-output-{self.container_id[:12]}")

    def _output_readers(self) -> list[asyncio.Future[None]]:
        return [self._attach.finished] if self._attach is not None else []

    def _on_output(self, frame: tuple[bytes | None, bytes | None]) -> None:
        stdout, stderr = frame
        if stdout:
            self._output.feed("stdout", stdout)
        if stderr:
            self._output.feed("stderr", stderr)

    # -- deaths -----------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        if (event.get("Action") or event.get("status")) == "die":
            self._tasks.spawn(self._collect_exit(), name=f"docker-exit-{self.container_id[:12]}")

    async def _collect_exit(self) -> None:
        """The container died: how, from its state (the event alone does not say OOM)."""
        try:
            status = exit_status((await self._engine("inspect_container"))["State"])
        except Exception as exc:  # removed meanwhile, or the engine went away
            self._log.warning("died; its state is unknown: %s", exc)
            status = ExitStatus(exit_code=None)
        if self._attach is not None:
            self._attach.close()
            await self._attach.wait_closed()
        if self._exit is not None and not self._exit.done():
            self._log.info("died: %s", status)
            self._exit.set_result(status)

    def _events_ended(self, _: asyncio.Future[None]) -> None:
        """The engine closed the event stream: unless we did, ask it directly how the container is."""
        if self._events is None or self._events.closed or self._exit is None or self._exit.done():
            return
        self._log.warning("lost the engine's event stream")
        self._tasks.spawn(self._collect_exit(), name=f"docker-exit-{self.container_id[:12]}")

    async def is_alive(self) -> bool:
        return self._exit is not None and not self._exit.done()

    async def wait(self) -> ExitStatus:
        """Wait for the kernel (the container's current run) to exit and say how it ended."""
        if self._exit is None:
            raise KernelNotRunning("the kernel has not been started")
        return await asyncio.shield(self._exit)

    # -- signals ----------------------------------------------------------------

    async def signal(self, signum: int) -> None:
        """Send ``signum`` to the container's init, which passes it on to the kernel."""
        try:
            await self._engine("kill", signal=int(signum))
        except docker_sdk().errors.APIError as exc:  # not running (any more)
            self._log.debug("signal %d: %s", signum, exc)

    async def _terminate(self) -> None:
        """Stop the container: the engine sends SIGTERM, then SIGKILL after ``shutdown_timeout``."""
        try:
            await self._engine("stop", timeout=math.ceil(self.shutdown_timeout))
        except docker_sdk().errors.APIError as exc:
            self._log.debug("stop: %s", exc)

    # -- removing -------------------------------------------------------------------

    async def cleanup(self) -> None:
        """Remove the container (killing it if it still runs), the connection files, and close the streams."""
        await self._close_control()
        if not self._removed:
            try:
                await self._engine("remove_container", force=True)
            except docker_sdk().errors.NotFound:  # removed already (by another process that re-attached to it)
                self._removed = True
            except docker_sdk().errors.APIError as exc:
                self._log.warning("could not be removed: %s", exc)
            else:
                self._removed = True
        for stream in (self._attach, self._events):
            if stream is not None:
                stream.close()
                await stream.wait_closed()
        await self._tasks.cancel_all()
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(ExitStatus(signal=signal.SIGKILL, reason="killed"))
        if self._removed:  # else the lifeline is the container's last chance of removal
            await self._disarm_lifeline()
        self.connection_file.unlink(missing_ok=True)
        shutil.rmtree(self.private_dir, ignore_errors=True)
        self.client.close()

    # -- re-attaching from JSON -----------------------------------------------------

    def to_json(self) -> str:
        """What another process on this machine needs to take this container over (:meth:`from_json`).

        A JSON object of kind ``docker``: this host's name, the engine's URL as
        configured (``null``: the re-attaching process's ``$DOCKER_HOST``, else
        the default socket), the container's id, the connection info (with its
        key: write the JSON 0600), the connection file and private directory,
        the interrupt mode and timeouts.
        """
        return dump_manager_state(
            "docker",
            {
                "host": socket.gethostname(),
                "engine": self.engine_host,
                "container_id": self.container_id,
                "connection_info": self.connection_info,
                "connection_file": str(self.connection_file),
                "private_dir": str(self.private_dir),
                "interrupt_mode": self._interrupt_mode,
                "startup_timeout": self.startup_timeout,
                "shutdown_timeout": self.shutdown_timeout,
                "echo_output": self._output.echo,
            },
        )

    @classmethod
    async def from_json(cls, data: str) -> DockerKernelManager:
        """Take over the container that :meth:`to_json` describes, in this (possibly new) process.

        Raises :exc:`~kernel_nanny.InvalidRequest` (a :exc:`ValueError`) for
        JSON that is not a Docker manager's state; :exc:`~kernel_nanny.NoSuchKernel`
        when it was written on another host (the kernel's ports are on that
        host's loopback) or the container is gone; :exc:`~kernel_nanny.LaunchError`
        when the engine cannot be reached. A stopped container is taken over
        too: :meth:`wait` returns how it ended, :meth:`restart` starts it again.

        The whole manager interface works. The container still belongs to the
        process that launched it: that process's lifeline removes it when the
        process ends, and so does a later launch's sweep of stray containers,
        so a re-attached manager shares control of a container while its
        launcher lives. A kernel that must outlive its launcher runs behind a
        nanny (``kernel-nanny start docker/...``): re-attach to that nanny
        with :meth:`ManagerClient.from_json <kernel_nanny.ManagerClient.from_json>`.
        Output written before the re-attachment is not replayed to output listeners.
        """
        required = ("host", "engine", "container_id", "connection_info", "connection_file", "private_dir")
        state = load_manager_state(data, "docker", required)
        try:
            info = normalize_connection_info(state["connection_info"])
            container_id, engine = str(state["container_id"]), state["engine"]
            if engine is not None and not isinstance(engine, str):
                raise TypeError(f"engine must be a URL or null, got {engine!r}")
            options = {key: state[key] for key in _OPTIONS if state.get(key) is not None}
        except (ConnectionInfoError, KeyError, TypeError, ValueError) as exc:
            raise wrong_field("docker", exc) from None
        what = f"kernel {info.get('kernel_name') or 'docker/?'}"
        check_same_host(state, what, socket.gethostname())
        client = await asyncio.to_thread(connect, engine)
        try:
            container = await asyncio.to_thread(client.api.inspect_container, container_id)
        except docker_sdk().errors.NotFound:
            client.close()
            raise NoSuchKernel(
                f"{what} is gone: its container {container_id[:12]} is no longer on the Docker Engine at "
                f"{describe_host(engine)} (it was shut down, or its launcher ended); start a new kernel"
            ) from None
        except BaseException:
            client.close()
            raise
        manager = cls(
            client,
            container_id,
            info,
            Path(state["connection_file"]),
            private_dir=Path(state["private_dir"]),
            reap_command=reap_command(engine, container_id),
            engine_host=engine,
            **options,
        )
        manager._launched_here = False
        await manager._adopt(container["State"])
        return manager

    async def _adopt(self, state: dict[str, Any]) -> None:
        """Follow a container started elsewhere, as it is now (``state``: its inspected ``State``)."""
        await self._follow_events()
        self._exit = asyncio.get_running_loop().create_future()
        if state.get("Running"):
            await self._attach_output()
            self.pid = state.get("Pid") or None
        else:
            self._exit.set_result(exit_status(state))
        self._log.info("re-attached (%s)", "running" if state.get("Running") else "exited")


#: The constructor's keyword arguments that to_json() records as they are.
_OPTIONS = ("interrupt_mode", "startup_timeout", "shutdown_timeout", "echo_output")


def reap_command(host: str | None, container_id: str) -> list[str]:
    """What the lifeline runs if the owner dies: remove the container through the engine."""
    return [sys.executable, "-m", "kernel_nanny.providers.docker_reap", host or "", container_id]


def _explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)
