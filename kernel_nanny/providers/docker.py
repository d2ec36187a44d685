"""Kernels in Docker containers: ``docker/<name>`` for each image configured in ``[providers.docker]``.

A launch creates a container from the image, with the kernel's ports
published on the host's loopback only, starts it and waits until the kernel
in it is ready. The container is labelled with its owner (host and pid), so
containers whose owner died are found and removed (:meth:`DockerProvider.remove_strays`).
See :doc:`/howto/run-kernels-in-docker`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._exceptions import LaunchError, NoSuchKernelType
from ..discovery.provider import KernelProvider
from ..launch.base_manager import DiedDuringStartup, format_output_tail
from ..launch.connection import new_connection_info, write_connection_file
from ..launch.params import LaunchParams
from ..paths import runtime_dir, secure_directory
from ..protocol import LaunchResult, new_id
from .docker_config import DockerConfig, DockerImage, parse_docker_config
from .docker_engine import LABEL_KERNEL, connect, describe_host, docker_sdk, owner_labels, remove_strays
from .docker_manager import DockerKernelManager, reap_command

__all__ = ["DockerProvider"]

log = logging.getLogger("kernel_nanny.providers.docker")

#: Where the kernel's private directory (its connection file) is mounted in the container.
CONTAINER_DIR = "/run/kernel-nanny"
#: How often a launch is retried when another process took a port before the engine could publish it.
PORT_CONFLICT_RETRIES = 3
_PORT_TAKEN = ("address already in use", "port is already allocated")


class DockerProvider(KernelProvider):
    """Offers each configured image as ``docker/<name>``."""

    id = "docker"

    def __init__(self, config: DockerConfig | None = None) -> None:
        self.config = config or DockerConfig()

    def __repr__(self) -> str:
        return f"<DockerProvider host={describe_host(self.config.host)} images={','.join(self.config.images)}>"

    def load_config(self, config: Mapping[str, Any]) -> None:
        """Take the ``[providers.docker]`` table (see the how-to for every key)."""
        self.config = parse_docker_config(config)

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The configured images, without asking the engine (listing works with it down)."""
        for name, image in self.config.images.items():
            yield (
                name,
                {
                    "display_name": image.title,
                    "language": image.language,
                    "argv": list(image.command),
                    "interrupt_mode": image.interrupt_mode,
                    "metadata": {"image": image.image},
                },
            )

    async def remove_strays(self) -> None:
        """Remove this host's kernel containers whose owner process is gone (none configured: no engine call)."""
        if not self.config.images:
            return
        client = await asyncio.to_thread(connect, self.config.host)
        try:
            await asyncio.to_thread(remove_strays, client)
        finally:
            client.close()

    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None
    ) -> LaunchResult:
        """Start ``name``'s image in a new container and return once the kernel in it is ready.

        ``cwd`` (a host path) has no meaning in the container and is ignored:
        the image's ``workdir`` setting says where the kernel starts.
        """
        image = self.config.images.get(name)
        if image is None:
            raise NoSuchKernelType(f"docker/{name}")
        params = LaunchParams.from_mapping(launch_params)
        client = await asyncio.to_thread(connect, self.config.host)
        try:
            try:
                await asyncio.to_thread(remove_strays, client)
            except docker_sdk().errors.DockerException as exc:
                log.warning("could not look for stray kernel containers: %s", exc)
            for attempt in range(1, PORT_CONFLICT_RETRIES + 1):
                try:
                    return await self._launch_once(client, image, params)
                except _PortTaken:
                    log.warning("docker/%s lost a port race (attempt %d); relaunching on fresh ports", name, attempt)
        except BaseException:
            client.close()
            raise
        client.close()
        raise LaunchError(f"kernel docker/{name}: ports kept being taken ({PORT_CONFLICT_RETRIES} attempts)")

    async def _launch_once(self, client: Any, image: DockerImage, params: LaunchParams) -> LaunchResult:
        kernel_id = new_id()
        kernel_name = f"docker/{image.name}"
        # Always tcp: the kernel is in another network namespace, so the host's ipc
        # (unix socket) files cannot reach it; a requested "ipc" is overridden.
        # Host side: loopback only. Clients never see the container's address.
        info = new_connection_info(
            kernel_id, transport="tcp", ip="127.0.0.1", encryption=params.encryption, kernel_name=kernel_name
        )
        path = write_connection_file(info, kernel_id, Path(params.connection_file) if params.connection_file else None)
        private_dir = secure_directory(runtime_dir() / f"docker-{kernel_id}")
        # Container side: the same ports, bound on every interface of the container's own network
        # (the engine forwards the host's loopback ports there). With the host's network there is
        # no forwarding: the kernel binds the host's loopback itself.
        host_network = image.network == "host"
        write_connection_file(
            {**info, "ip": "127.0.0.1" if host_network else "0.0.0.0"}, kernel_id, private_dir / "kernel.json"
        )
        ports = [info[key] for key in info if key.endswith("_port")]
        try:
            container_id = await asyncio.to_thread(
                self._create, client, image, kernel_id, ports, private_dir, dict(params.env or {}), host_network
            )
        except BaseException:
            path.unlink(missing_ok=True)
            shutil.rmtree(private_dir, ignore_errors=True)
            raise
        manager = DockerKernelManager(
            client,
            container_id,
            info,
            path,
            private_dir=private_dir,
            reap_command=reap_command(self.config.host, container_id),
            engine_host=self.config.host,
            interrupt_mode=image.interrupt_mode,
            startup_timeout=params.startup_timeout,
            shutdown_timeout=params.shutdown_timeout,
            echo_output=params.echo_output,
        )
        try:
            await manager.start()
            await manager.wait_until_ready()
        except LaunchError as exc:
            await manager.cleanup()
            if any(text in str(exc).lower() for text in _PORT_TAKEN):
                raise _PortTaken() from exc
            if isinstance(exc, DiedDuringStartup):
                raise LaunchError(f"kernel {kernel_name} {exc}{format_output_tail(manager.output_tail)}") from None
            raise
        except BaseException:
            await manager.cleanup()
            raise
        log.info("[kernel container=%s] %s ready on 127.0.0.1", container_id[:12], kernel_name)
        return LaunchResult(info, manager)

    def _create(
        self,
        client: Any,
        image: DockerImage,
        kernel_id: str,
        ports: list[int],
        private_dir: Path,
        env: dict[str, str],
        host_network: bool,
    ) -> str:
        """Create (not start) the kernel's container; blocking. Returns its id."""
        docker = docker_sdk()
        connection_file = f"{CONTAINER_DIR}/kernel.json"
        command = [arg.replace("{connection_file}", connection_file) for arg in image.command]
        kwargs: dict[str, Any] = {
            "command": command,
            "name": f"kernel-nanny-{kernel_id[:12]}",
            # An init as PID 1: it passes signals on (the kernel as PID 1 would ignore SIGTERM)
            # and reports a signal death as 128 + N.
            "init": True,
            "detach": True,
            "labels": {LABEL_KERNEL: kernel_id, "kernel-nanny.type": f"docker/{image.name}", **owner_labels()},
            "environment": {**image.environment, **env},
            # Read-write: ipykernel rewrites its connection file.
            "volumes": [f"{private_dir}:{CONTAINER_DIR}:rw", *image.mounts],
            "network_mode": image.network,
            "working_dir": image.workdir,
            "mem_limit": image.memory,
            "nano_cpus": int(image.cpus * 1e9) if image.cpus else None,
        }
        if not host_network:
            # Published on the host's loopback only, never on 0.0.0.0.
            kwargs["ports"] = {f"{port}/tcp": ("127.0.0.1", port) for port in ports}
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        host = describe_host(self.config.host)
        try:
            container = client.containers.create(image.image, **kwargs)
        except docker.errors.ImageNotFound as exc:
            raise LaunchError(
                f"image {image.image!r} (docker/{image.name}) is not on the Docker Engine at {host}: "
                f"build or pull it there (docker build -t {image.image} ... / docker pull {image.image}), "
                f"or fix images.{image.name}.image in [providers.docker]"
            ) from exc
        except docker.errors.APIError as exc:
            raise LaunchError(f"the Docker Engine at {host} refused docker/{image.name}'s container: {exc}") from exc
        return str(container.id)


class _PortTaken(Exception):
    """A published port was taken between picking it and starting the container."""
