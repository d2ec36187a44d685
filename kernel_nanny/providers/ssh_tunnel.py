"""One SSH connection to a host, its local port forwards, and reconnection when it drops.

A kernel on a remote host listens on that host's loopback only; everything
reaches it through forwards from local loopback ports over this connection.
When the connection drops (a network blip, sshd restarted, a laptop
suspended), the remote nanny and kernel keep running; the tunnel reconnects
with back-off, and ZeroMQ sockets connected to the local ports reconnect.

The local listeners are the tunnel's own, not the SSH connection's: they stay
bound while the connection is down, and a connection accepted meanwhile
waits for the tunnel to come back. Listeners tied to the SSH connection
would release their ports during a drop, and a client retrying a free
loopback port of the ephemeral range can end up connected to itself (a TCP
"self-connect"), which ZeroMQ takes for a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from .._backoff import backoff_delays
from .._exceptions import ClientClosed, LaunchError
from .._lifetime import Lifetime
from .._tasks import TaskGroup, wait_for
from ..defaults import (
    SSH_KEEPALIVE_COUNT_MAX,
    SSH_KEEPALIVE_INTERVAL,
    SSH_RECONNECT_FIRST_DELAY,
    SSH_RECONNECT_MAX_DELAY,
)
from .ssh_config import SSHHost

if TYPE_CHECKING:
    import asyncssh

__all__ = ["SSHTunnel", "connect", "import_asyncssh"]

log = logging.getLogger("kernel_nanny.providers.ssh")


def import_asyncssh() -> Any:
    """asyncssh, or a clear error saying which extra installs it."""
    try:
        import asyncssh
    except ImportError:
        raise LaunchError("SSH kernels need asyncssh: pip install asyncssh (the 'ssh' extra of kernel-nanny)") from None
    return asyncssh


async def connect(host: SSHHost) -> asyncssh.SSHClientConnection:
    """Connect and authenticate to ``host``; every failure is a :exc:`LaunchError` that names the host and the fix."""
    lib = import_asyncssh()
    if not host.known_hosts.is_file():
        raise LaunchError(
            f"ssh host {host.name} ({host.address}): no known_hosts file at {host.known_hosts}, so its host key "
            f"cannot be checked: run 'kernel-nanny ssh-trust {host.name}' or set known_hosts"
        )
    options: dict[str, Any] = {
        "port": host.port,
        "known_hosts": str(host.known_hosts),
        "connect_timeout": host.connect_timeout,
        "keepalive_interval": SSH_KEEPALIVE_INTERVAL,
        "keepalive_count_max": SSH_KEEPALIVE_COUNT_MAX,
    }
    if host.user:
        options["username"] = host.user
    if host.keys:
        missing = [k for k in host.keys if not k.is_file()]
        if missing:
            raise LaunchError(f"ssh host {host.name}: key file {missing[0]} does not exist (keys in its settings)")
        options["client_keys"] = [str(k) for k in host.keys]
        options["agent_path"] = None  # only the configured keys: no surprise identities from an agent
    try:
        return cast("asyncssh.SSHClientConnection", await lib.connect(host.host, **options))
    except lib.HostKeyNotVerifiable as exc:
        raise LaunchError(
            f"ssh host {host.name} ({host.address}): its host key is not in {host.known_hosts} ({exc.reason}). "
            f"Check its fingerprint, then trust it with 'kernel-nanny ssh-trust {host.name}'"
        ) from None
    except lib.PermissionDenied:
        user = host.user or "the local user name"
        keys = ", ".join(str(k) for k in host.keys) or "the default keys"
        raise LaunchError(
            f"ssh host {host.name} ({host.address}) refused the key ({keys}) for {user}: add the public key to "
            f"~{host.user or ''}/.ssh/authorized_keys there, or set keys/user in its settings"
        ) from None
    except (OSError, asyncio.TimeoutError, lib.Error) as exc:
        reason = str(exc) or type(exc).__name__
        raise LaunchError(
            f"ssh host {host.name} ({host.address}) is unreachable: {reason}. "
            "Check host and port in its settings and that sshd runs there"
        ) from None


class SSHTunnel(Lifetime):
    """An SSH connection to one host, with local forwards that stay bound across reconnections.

    :meth:`close` closes the forwards and the connection; what runs on the
    host keeps running.
    """

    def __init__(self, host: SSHHost, connection: asyncssh.SSHClientConnection) -> None:
        self.host = host
        self._connection: asyncssh.SSHClientConnection | None = connection
        self._servers: list[asyncio.Server] = []
        #: Local connections accepted and not yet closed for good: ended with the tunnel, even if their relay
        #: never ran or a client stopped reading what was left to send it.
        self._accepted: set[asyncio.StreamWriter] = set()
        self._connected = asyncio.Event()
        self._connected.set()
        self._closed_event = asyncio.Event()
        self._tasks = TaskGroup(log)
        self._tasks.spawn(self._stay_connected(), name=f"ssh-{host.name}")

    @classmethod
    async def open(cls, host: SSHHost) -> SSHTunnel:
        """Connect to ``host`` (see :func:`connect` for the errors)."""
        return cls(host, await connect(host))

    def __repr__(self) -> str:
        link = "down" if self.closed else "up" if self._connected.is_set() else "reconnecting"
        return f"<SSHTunnel {self.host.name} state={self.state.value} link={link} forwards={len(self._servers)}>"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end of the SSH connection, ``(address, port)``; ``None`` while it is down.

        The host knows this client by it: sshd's log lines and ``ss`` there show it.
        """
        if self._connection is None or not self.connected:
            return None
        address, port = self._connection.get_extra_info("sockname")[:2]
        return str(address), int(port)

    async def wait_connected(self) -> None:
        """Return once the connection is up; :exc:`ClientClosed` once the tunnel is closed."""
        if not self._connected.is_set():
            closed = asyncio.ensure_future(self._closed_event.wait())
            try:
                connected = asyncio.ensure_future(self._connected.wait())
                await asyncio.wait({closed, connected}, return_when=asyncio.FIRST_COMPLETED)
                connected.cancel()
            finally:
                closed.cancel()
        self._check_open()

    async def run(self, *args: str) -> str:
        """Run kernel-nanny with ``args`` on the host; its stdout, or a :exc:`LaunchError` with its stderr."""
        return await self.run_shell(self.host.remote_argv(*args), program=self.host.command)

    async def execute(self, command: str, *, stdin: str | None = None) -> tuple[int, str, str]:
        """Run a shell command line on the host (``stdin`` as its input); its exit status, stdout and stderr."""
        self._check_open()
        assert self._connection is not None
        result = await self._connection.run(command, input=stdin, check=False)
        status = result.exit_status if result.exit_status is not None else 255  # killed by a signal there
        return status, str(result.stdout or ""), str(result.stderr or "")

    async def run_shell(self, command: str, *, program: str = "") -> str:
        """Run a shell command line on the host; its stdout, or a :exc:`LaunchError` with its stderr."""
        self._check_open()
        assert self._connection is not None
        result = await self._connection.run(command, check=False)
        if result.exit_status == 127 and program:
            raise LaunchError(
                f"ssh host {self.host.name}: '{program}' was not found there: install kernel-nanny and ipykernel on "
                "the host (python3 -m pip install --user ./kernel-nanny ipykernel, from a checkout), "
                "or set command to its path in the host's settings"
            )
        if result.exit_status != 0:
            stderr = str(result.stderr or "").strip() or f"exit status {result.exit_status}"
            raise LaunchError(f"ssh host {self.host.name}: '{command}' failed: {stderr}")
        return str(result.stdout or "")

    async def process_alive(self, pid: int | None) -> bool | None:
        """Whether process ``pid`` runs on the host: True, False, or None when the link itself is broken.

        A silent remote nanny may be dead, or behind a connection that died
        without a word (no RST); asking over SSH tells the two apart. A link
        that does not answer within the connect timeout is aborted, which
        starts the reconnection at once instead of after the keep-alives.
        """
        if pid is None or self._connection is None or not self.connected:
            return None
        try:
            result = await wait_for(self._connection.run(f"kill -0 {int(pid)}", check=False), self.host.connect_timeout)
        except (OSError, asyncio.TimeoutError, import_asyncssh().Error):
            if self._connection is not None:
                self._connection.abort()
            return None
        return result.exit_status == 0

    async def forward(self, remote_port: int, remote_host: str = "127.0.0.1") -> int:
        """Forward a fresh local loopback port to ``remote_port`` on the host's loopback (or on
        ``remote_host`` as the host reaches it: a compute node behind a login host); returns the local port."""
        self._check_open()

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.closed:
                writer.transport.abort()
                return
            self._accepted.add(writer)
            self._tasks.spawn(self._relay(reader, writer, remote_host, remote_port), name=f"ssh-relay-{remote_port}")

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def _begin_closing(self) -> None:
        self._closed_event.set()
        self._connected.clear()
        for server in self._servers:
            server.close()
        self._servers.clear()
        self._tasks.cancel()
        if self._connection is not None:
            self._connection.close()

    async def _finish_closing(self) -> None:
        await self._tasks.cancel_all()
        accepted, self._accepted = self._accepted, set()
        # Aborted, not closed: a graceful close waits to deliver what is queued, for ever if the client stopped
        # reading, and nothing more can reach it through a closed tunnel. Closed before the loop may close: a
        # transport still open then is reported as leaked.
        for writer in accepted:
            writer.transport.abort()
        await asyncio.gather(*(writer.wait_closed() for writer in accepted), return_exceptions=True)
        if self._connection is not None:
            await self._connection.wait_closed()
            self._connection = None

    @contextlib.asynccontextmanager
    async def forward_back(self, local_port: int, listen_host: str) -> AsyncIterator[int]:
        """Listen on ``listen_host`` (an address of the host) and forward what connects to ``local_port`` here.

        For the ``async with`` block only (a launch's callback, not a kernel's
        lifetime): the host stops listening when it ends. sshd binds anything
        but loopback only with ``GatewayPorts clientspecified`` (or ``yes``) in
        its configuration. Yields the port it listens on.
        """
        self._check_open()
        assert self._connection is not None
        try:
            listener = await self._connection.forward_remote_port(listen_host, 0, "127.0.0.1", local_port)
        except import_asyncssh().Error as exc:
            raise LaunchError(
                f"ssh host {self.host.name} refused to listen on {listen_host} for this machine: {exc} "
                "(its sshd needs 'GatewayPorts clientspecified' for an address other than loopback)"
            ) from None
        try:
            yield int(listener.get_port())
        finally:
            listener.close()
            await listener.wait_closed()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote_host: str, remote_port: int
    ) -> None:
        """Carry one accepted local connection to ``remote_host:remote_port`` over SSH, once the connection is up."""
        remote_writer = None
        try:
            await self.wait_connected()
            assert self._connection is not None
            remote_reader, remote_writer = await self._connection.open_connection(remote_host, remote_port)
            pipes = {
                asyncio.ensure_future(_pipe(reader, remote_writer)),
                asyncio.ensure_future(_pipe(remote_reader, writer)),
            }
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
        except ClientClosed:
            pass
        except (OSError, import_asyncssh().Error) as exc:
            log.debug("ssh host %s: no channel to port %d: %s", self.host.name, remote_port, exc)
        finally:
            if remote_writer is not None:
                remote_writer.close()
            writer.close()
        # Forgotten once closed for good (what was queued delivered): until then, closing the tunnel ends it.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self._accepted.discard(writer)

    async def _stay_connected(self) -> None:
        """Wait for the connection to drop; then reconnect with back-off, until closed."""
        while True:
            assert self._connection is not None
            await self._connection.wait_closed()
            self._connected.clear()
            log.warning("ssh connection to %s dropped; reconnecting", self.host.name)
            delays = backoff_delays(SSH_RECONNECT_FIRST_DELAY, SSH_RECONNECT_MAX_DELAY)
            while True:
                try:
                    self._connection = await connect(self.host)
                    break
                except LaunchError as exc:
                    delay = next(delays)
                    log.warning("ssh host %s: reconnecting failed (%s); next try in %.1f s", self.host.name, exc, delay)
                    await asyncio.sleep(delay)  # back-off between attempts: a deliberate pause, not a poll
            log.info("ssh connection to %s restored", self.host.name)
            self._connected.set()


async def _pipe(reader: Any, writer: Any) -> None:
    """Copy ``reader`` to ``writer`` until EOF or an error (either side gone)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, EOFError, import_asyncssh().Error):
        pass
