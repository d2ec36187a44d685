"""Helpers for the systemd tests: the shipped units, tools that must be there, a NOTIFY_SOCKET of our own.

These tests use real components and fail loudly (never skip) when one is
missing: ``bash .ci/install-test-deps.sh`` installs them (systemd for
``systemd-analyze``, podman, runc, mmdebstrap).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest

INSTALL_HINT = "install the test dependencies first: 'bash .ci/install-test-deps.sh' (as root)"

#: Variables systemd or a parent service may have set, which must not leak into a daemon under test.
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID", "JOURNAL_STREAM", "LISTEN_FDS")


def unit_text(name: str) -> str:
    """A unit file as shipped in the package (``kernel_nanny/systemd/NAME``)."""
    return (resources.files("kernel_nanny") / "systemd" / name).read_text()


def with_exec_start(unit: str, python: str) -> str:
    """The unit with ExecStart pointing at ``python`` (as install-service does)."""
    lines = [
        f"ExecStart={python} -m kernel_nanny serve" if ln.startswith("ExecStart=") else ln for ln in unit.splitlines()
    ]
    return "\n".join(lines) + "\n"


def require_tool(name: str) -> str:
    """The path of a command the test needs; a failure (not a skip) if it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"'{name}' is not installed: {INSTALL_HINT}", pytrace=False)
    return path


def unit_settings(unit: str) -> dict[str, list[str]]:
    """``Key=value`` settings of a unit file (every value of repeated keys), comments skipped."""
    settings: dict[str, list[str]] = {}
    for line in unit.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def systemd_analyze_verify(
    unit_path: Path, *, user: bool = False, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``systemd-analyze [--user] verify`` on one unit file (works without systemd as PID 1)."""
    analyze = require_tool("systemd-analyze")
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES}
    command = [analyze, *(["--user"] if user else []), "verify", str(unit_path)]
    if not user:
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd or unit_path.parent, timeout=60)
    # A user manager needs a runtime directory, even just to load units; a short path, since the
    # stock user units (gpg-agent.socket, ...) put sockets in it, and socket paths are limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="kn-xrd-", dir="/tmp") as runtime:
        env["XDG_RUNTIME_DIR"] = runtime
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd or unit_path.parent, timeout=60)


def daemon_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a daemon and its CLI under test: private runtime, state and config directories."""
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARIABLES}
    for name in ("runtime", "state", "config"):
        (tmp / name).mkdir(mode=0o700, exist_ok=True)
    env.update(
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        XDG_STATE_HOME=str(tmp / "state"),
        XDG_CONFIG_HOME=str(tmp / "config"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (we may be its reaper only by accident).
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass
class Notification:
    """One datagram received on the NOTIFY_SOCKET: its fields, the sender's pid, when it came."""

    fields: dict[str, str]
    pid: int | None
    at: float
    raw: str = field(repr=False, default="")


class NotifySocket:
    """A datagram socket bound where ``NOTIFY_SOCKET`` points, as systemd's would be.

    ``address`` is a path, or ``@name`` for an abstract socket. SO_PASSCRED gives
    each datagram's sender pid, which is what systemd checks with NotifyAccess=main.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.received: list[Notification] = []

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)

    def _receive(self, timeout: float) -> Notification | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, ancillary, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(struct.calcsize("iII")))
        except (TimeoutError, BlockingIOError):
            return None
        pid = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[: struct.calcsize("iII")])[0]
        text = data.decode()
        fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
        note = Notification(fields, pid, time.monotonic(), text)
        self.received.append(note)
        return note

    def wait_for(self, predicate: Callable[[Notification], bool], timeout: float, what: str = "") -> Notification:
        """The first notification (from now on) that satisfies ``predicate``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            note = self._receive(left)
            if note is not None and predicate(note):
                return note
        seen = "\n".join(repr(n.raw) for n in self.received[-20:])
        pytest.fail(f"no notification {what} within {timeout:g} s; last received:\n{seen}")

    def collect(self, seconds: float) -> list[Notification]:
        """Everything received during the next ``seconds``."""
        deadline = time.monotonic() + seconds
        got = []
        while (left := deadline - time.monotonic()) > 0:
            note = self._receive(left)
            if note is not None:
                got.append(note)
        return got


@pytest.fixture
def notify_socket_factory(tmp_path) -> Iterator[Callable[[str], NotifySocket]]:
    opened: list[NotifySocket] = []

    def make(kind: str) -> NotifySocket:
        if kind == "path":
            address = str(tmp_path / "notify.sock")
        else:
            address = f"@kernel-nanny-test-{os.getpid()}-{len(opened)}-{time.monotonic_ns()}"
        sock = NotifySocket(address)
        opened.append(sock)
        return sock

    yield make
    for sock in opened:
        sock.close()


def run_cli(*args: str, env: Mapping[str, str], timeout: float = 90, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m kernel_nanny ARGS`` with ``env``; fails with its output if it exits non-zero and ``check``."""
    done = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        pytest.fail(f"kernel-nanny {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done
