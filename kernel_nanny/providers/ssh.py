"""Kernels on other hosts over SSH: ``ssh/<host>/<remote type>`` (``ssh/gpu-box/spec/python3``).

Launching connects to the host, runs ``kernel-nanny start`` there (a remote
nanny owns the kernel, bound to the host's loopback), reads its connection
file back, and forwards every kernel and nanny port to a local loopback port
through the SSH connection: nothing of the kernel listens on the host's
network. The manager it returns, :class:`SSHKernelManager`, drives the remote
nanny through those forwards, so interrupt, restart, kill and events work as
for a local kernel. OpenSSH forwards no signals to sessions without a
terminal; the remote nanny is what makes interrupts and shutdowns reliable.

Behind a local nanny (``kernel-nanny start ssh/...``), the local nanny owns
the SSH connection and restarts the kernel after a crash; the remote nanny
is started with automatic restarts off, so the two never both restart it.

:meth:`SSHKernelManager.to_json` writes what another process needs to take
the remote kernel over, and :meth:`SSHKernelManager.from_json` takes it over
there (:ref:`reattach-from-json`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .._exceptions import (
    ClientClosed,
    ConfigError,
    KernelNannyError,
    LaunchError,
    NannyUnavailable,
    NoSuchKernel,
    NoSuchKernelType,
)
from .._logging import KernelLogAdapter
from .._tasks import wait_for
from ..client.running import ProcessIdentity
from ..defaults import SSH_RECONNECT_WAIT
from ..discovery import KernelProvider
from ..launch.connection import write_connection_file
from ..launch.output import OutputListener
from ..paths import open_private_file, secure_directory
from ..protocol import ExitStatus, LaunchResult
from ..protocol.manager_state import dump_manager_state, load_manager_state, wrong_field
from .remote_nanny import RemoteNanny, forward_ports
from .ssh_config import SSHHost, parse_hosts
from .ssh_tunnel import SSHTunnel, import_asyncssh

__all__ = ["SSHKernelManager", "SSHProvider", "add_known_host", "fetch_host_key"]

log = logging.getLogger("kernel_nanny.providers.ssh")


class SSHProvider(KernelProvider):
    """Offers the kernel types configured for each host in ``[providers.ssh.hosts.<name>]``."""

    id = "ssh"

    def __init__(self) -> None:
        self.hosts: dict[str, SSHHost] = {}

    def load_config(self, config: Mapping[str, Any]) -> None:
        self.hosts = parse_hosts(config)

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        # From the settings alone: listing must not wait on every host of the network.
        for host in self.hosts.values():
            for kernel in host.kernels:
                yield (
                    f"{host.name}/{kernel.type_id}",
                    {
                        "display_name": kernel.display_name or f"{kernel.type_id} on {host.name}",
                        "language": kernel.language,
                        "host": host.address,
                    },
                )

    def host(self, name: str) -> SSHHost:
        """The configured host ``name``, or a :exc:`~kernel_nanny.ConfigError` listing those there are."""
        try:
            return self.hosts[name]
        except KeyError:
            known = ", ".join(sorted(self.hosts)) or "none"
            raise ConfigError(f"no ssh host {name!r} in [providers.ssh.hosts] (configured: {known})") from None

    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None
    ) -> LaunchResult:
        host_name, _, remote_type = name.partition("/")
        host = self.hosts.get(host_name)
        if host is None or remote_type not in {k.type_id for k in host.kernels}:
            raise NoSuchKernelType(f"ssh/{name}")
        tunnel = await SSHTunnel.open(host)
        try:
            manager = await SSHKernelManager.start(tunnel, remote_type)
        except BaseException:
            tunnel.close()
            await tunnel.wait_closed()
            raise
        connection_file = dict(launch_params or {}).get("connection_file")
        if connection_file:
            write_connection_file(manager.connection_info, manager.remote_kernel_id, Path(connection_file))
        return LaunchResult(manager.connection_info, manager)


class SSHKernelManager:
    """The kernel-manager interface for a kernel behind a nanny on a remote host, through an SSH tunnel.

    Requests wait (up to :data:`~kernel_nanny.defaults.SSH_RECONNECT_WAIT` seconds) for a dropped
    connection to be restored. :meth:`wait` survives drops too: it returns
    only when the kernel died, or with ``reason="lost"`` when the remote
    nanny itself is gone.
    """

    def __init__(self, tunnel: SSHTunnel, remote_info: Mapping[str, Any], local_ports: Mapping[str, int]) -> None:
        self._tunnel = tunnel
        self.remote_info = dict(remote_info)
        self._log = KernelLogAdapter(log, self.remote_kernel_id)
        self._remote = RemoteNanny({**self.remote_info, "ip": "127.0.0.1", **local_ports})
        self._nanny = self._remote.client
        #: What clients on this machine connect to: the kernel's channels on local forwards.
        self.connection_info = self._remote.connection_info

    @classmethod
    async def start(cls, tunnel: SSHTunnel, remote_type: str) -> SSHKernelManager:
        """Start a nanny for ``remote_type`` on the tunnel's host and forward its ports here."""
        host = tunnel.host
        output = await tunnel.run(
            "start", remote_type, "--transport", "tcp", "--ip", "127.0.0.1", "--max-restarts", "0"
        )
        lines = output.split()
        if len(lines) < 2:
            raise LaunchError(f"ssh host {host.name}: 'kernel-nanny start' printed {output!r}, not an id and a file")
        kernel_id, path = lines[0], lines[1]
        try:
            remote_info = json.loads(await tunnel.run_shell(f"cat {shlex.quote(path)}"))
            local_ports = await forward_ports(tunnel, remote_info)
        except BaseException as exc:
            await _stop_remote(tunnel, kernel_id)
            if isinstance(exc, (ValueError, KeyError)):
                raise LaunchError(f"ssh host {host.name}: unreadable connection file {path}: {exc}") from None
            raise
        forwards = {key: f"{port}->{remote_info[key]}" for key, port in local_ports.items()}
        manager = cls(tunnel, remote_info, local_ports)
        manager._log.info("%s on %s: forwards %s", remote_type, host.name, forwards)
        return manager

    def to_json(self) -> str:
        """What another process needs to take this remote kernel over (:meth:`from_json`).

        A JSON object of kind ``ssh``: the host's settings (``ssh_host``: name,
        address, port, user, key files, known_hosts file, remote command,
        connect timeout) and the remote nanny's connection info (``remote_info``,
        with its key, pid and start time: write the JSON 0600).
        """
        return dump_manager_state("ssh", {"ssh_host": self._tunnel.host.to_dict(), "remote_info": self.remote_info})

    @classmethod
    async def from_json(cls, data: str) -> SSHKernelManager:
        """Take over the remote kernel that :meth:`to_json` describes, in this (possibly new) process.

        The host's settings come from the JSON, not from this process's
        configuration: the kernel is reached the way it was launched, even
        where the host is configured otherwise, or not at all. Connects to the
        host and checks that the remote nanny still runs (its pid and start
        time, read from the host's ``/proc``) before forwarding its ports.

        Raises :exc:`~kernel_nanny.InvalidRequest` (a :exc:`ValueError`) for
        JSON that is not an SSH manager's state, before connecting;
        :exc:`~kernel_nanny.LaunchError` when the host cannot be reached (as
        for a launch); :exc:`~kernel_nanny.NoSuchKernel` when the remote nanny
        is gone. The whole manager interface works; ``connection_info`` has
        new local ports (the forwards are this process's own).
        """
        state = load_manager_state(data, "ssh", ("ssh_host", "remote_info"))
        try:
            host = SSHHost.from_dict(state["ssh_host"])
            remote_info = dict(state["remote_info"])
            nanny = ProcessIdentity(int(remote_info["nanny_pid"]), int(remote_info["nanny_start_time"]))
            kernel_id = str(remote_info["kernel_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise wrong_field("ssh", exc) from None
        tunnel = await SSHTunnel.open(host)
        try:
            stat = await tunnel.run_shell(f"cat /proc/{nanny.pid}/stat 2>/dev/null || true")
            if not nanny.shown_running_by(stat.encode()):
                raise NoSuchKernel(
                    f"kernel {kernel_id[:12]} on ssh host {host.name} is gone: its nanny (pid {nanny.pid}) has "
                    f"exited, or that pid now belongs to another program; start a new kernel"
                )
            local_ports = await forward_ports(tunnel, remote_info)
        except BaseException:
            tunnel.close()
            await tunnel.wait_closed()
            raise
        manager = cls(tunnel, remote_info, local_ports)
        manager._log.info("re-attached on %s", host.name)
        return manager

    def __repr__(self) -> str:
        return f"<SSHKernelManager {self.remote_kernel_id[:8]} on {self._tunnel.host.name} {self._tunnel!r}>"

    @property
    def remote_kernel_id(self) -> str:
        return str(self.remote_info.get("kernel_id", ""))

    @property
    def remote_pid(self) -> int | None:
        """The remote nanny's pid on its host (the local nanny shows no pid for a remote kernel)."""
        pid = self.remote_info.get("nanny_pid")
        return int(pid) if pid is not None else None

    @property
    def ssh_local_address(self) -> tuple[str, int] | None:
        """This end of the SSH connection to the host, ``(address, port)``; ``None`` while it is being restored.

        What to look for in the host's sshd log or ``ss`` output when tracing
        this kernel's connection (a restored connection is a new one: look again).
        """
        return self._tunnel.local_address

    def add_output_listener(self, listener: OutputListener) -> None:
        """Call ``listener(name, data)`` with the remote kernel process's own stdout/stderr."""
        self._remote.add_output_listener(listener)

    # -- the manager interface ------------------------------------------------

    async def is_alive(self) -> bool:
        try:
            return bool(await self._while_connected(self._nanny.is_alive))
        except ClientClosed:  # shut down
            return False

    async def interrupt(self) -> None:
        await self._while_connected(self._nanny.interrupt)

    async def signal(self, signum: int) -> None:
        await self._while_connected(lambda: self._nanny.signal(signum))

    async def kill(self) -> None:
        await self._while_connected(self._nanny.kill)

    async def restart(self, now: bool = False) -> None:
        try:
            await self._while_connected(lambda: self._nanny.restart(now=now))
        except NannyUnavailable as exc:
            raise LaunchError(f"cannot restart the kernel on ssh host {self._tunnel.host.name}: {exc}") from None

    async def shutdown(self, now: bool = False) -> None:
        """Stop the remote kernel and its nanny explicitly, then close the connection."""
        try:
            await self._while_connected(lambda: self._nanny.shutdown(now=now))
        except NannyUnavailable as exc:
            self._log.warning("the remote nanny did not answer: %s", exc)
        finally:
            await self.cleanup()

    async def cleanup(self) -> None:
        await self._remote.close()
        self._tunnel.close()
        await self._tunnel.wait_closed()

    async def wait(self) -> ExitStatus:
        """Wait for the remote kernel's death, across connection drops.

        Once the manager is shut down, returns the death its nanny reported last.
        """
        while True:
            try:
                await self._tunnel.wait_connected()
                return await self._nanny.wait()
            except ClientClosed:
                return self._remote.last_exit or ExitStatus(reason="lost")
            except NannyUnavailable:
                alive = await self._tunnel.process_alive(self.remote_pid)
                if alive is False:
                    self._log.warning("the remote nanny is gone")
                    return ExitStatus(reason="lost")
                # None: the link is down (a reconnection is under way); True: it just came back.

    async def _while_connected(self, request: Callable[[], Any]) -> Any:
        """Run ``request``, waiting for the connection if it is down; retried once after a reconnection."""
        for attempt in (1, 2):
            try:
                await wait_for(self._tunnel.wait_connected(), SSH_RECONNECT_WAIT)
            except asyncio.TimeoutError:
                raise NannyUnavailable(
                    f"the ssh connection to {self._tunnel.host.name} is down and was not restored "
                    f"within {SSH_RECONNECT_WAIT:g} s"
                ) from None
            try:
                return await request()
            except NannyUnavailable:
                if attempt == 2 or await self._tunnel.process_alive(self.remote_pid) is False:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


async def _stop_remote(tunnel: SSHTunnel, kernel_id: str) -> None:
    """Leave nothing running on the host after a failed launch."""
    try:
        await tunnel.run("stop", kernel_id, "--now")
    except (KernelNannyError, OSError) as exc:
        KernelLogAdapter(log, kernel_id).warning("ssh host %s: could not stop the kernel: %s", tunnel.host.name, exc)


async def fetch_host_key(host: SSHHost) -> Any:
    """The host key ``host`` presents (an ``asyncssh.SSHKey``), fetched without trusting it."""
    asyncssh = import_asyncssh()
    try:
        key = await wait_for(asyncssh.get_server_host_key(host.host, host.port), host.connect_timeout)
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        raise LaunchError(f"ssh host {host.name} ({host.address}) is unreachable: {exc}") from None
    if key is None:
        raise LaunchError(f"ssh host {host.name} ({host.address}) presented no host key")
    return key


def add_known_host(host: SSHHost, key: Any) -> Path:
    """Append ``key`` for ``host`` to the host's known_hosts file (created 0600 in a 0700 directory)."""
    pattern = host.host if host.port == 22 else f"[{host.host}]:{host.port}"
    line = f"{pattern} {key.export_public_key('openssh').decode().strip()}\n"
    path = host.known_hosts
    if not path.parent.exists():
        secure_directory(path.parent)
    with os.fdopen(open_private_file(path), "a") as file:
        file.write(line)
    return path
