"""Real OpenSSH servers for the SSH provider's tests (see .ci/install-test-deps.sh).

* ``sshd``: sshd on a free loopback port, key-only, for root and the
  unprivileged user ``kntest``;
* ``remote_host``: a second "host", a network namespace reached over a veth
  pair, with its own sshd and its own loopback (a kernel bound to 127.0.0.1
  there is reachable only through the SSH connection);
* ``remote_python``: a Python environment for ``kntest`` with this checkout of
  kernel-nanny installed (root's Python is not readable by other users).

Each server's readiness is read from its log line "Server listening", and
each process started is stopped by its pid.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_USER = "kntest"
#: A venv for the test user, cached between runs (the dependencies are the slow part).
REMOTE_VENV = Path("/var/lib/kernel-nanny-tests/remote-venv")


@dataclass
class SSHServer:
    address: str
    port: int
    client_key: Path
    known_hosts: Path
    directory: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()

    def session_pids(self, client_port: int) -> list[int]:
        """The sshd processes serving the connection from local port ``client_port``."""
        out = subprocess.run(
            ["ss", "-Htnp", "state", "established", f"( sport = :{self.port} and dport = :{client_port} )"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sorted({int(part.split("=")[1]) for part in out.replace(",", " ").split() if part.startswith("pid=")})


def _free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _start_sshd(config: Path, log: Path, netns: str | None = None) -> subprocess.Popen[bytes]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run([*prefix, "/usr/sbin/sshd", "-t", "-f", str(config)], check=True)
    process = subprocess.Popen(
        [*prefix, "/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    with open(log, "wb") as log_file:
        for line in process.stderr:  # the event: sshd says it listens
            log_file.write(line)
            if b"Server listening" in line:
                break
        else:
            raise RuntimeError(f"sshd did not start: {log.read_text()}")
    # From here on sshd's log goes to a file of its own (a pipe nobody reads would fill up and block it).
    process.stderr.close()
    return process


def _sshd_config(directory: Path, listen: str) -> Path:
    config = directory / f"sshd_config-{listen.replace(':', '_')}"
    config.write_text(
        f"""ListenAddress {listen}
HostKey {directory}/host_key
PidFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
StrictModes yes
AllowTcpForwarding yes
X11Forwarding no
LogLevel VERBOSE
Match User root
    AuthorizedKeysFile {directory}/authorized_keys
"""
    )
    return config


def _ensure_test_user(public_key: Path) -> None:
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", TEST_USER], check=True)
    subprocess.run(["usermod", "-p", "*", TEST_USER], check=True)  # "locked" accounts are refused without PAM
    home = Path(pwd.getpwnam(TEST_USER).pw_dir)
    ssh_dir = home / ".ssh"
    subprocess.run(["install", "-d", "-m", "700", "-o", TEST_USER, "-g", TEST_USER, str(ssh_dir)], check=True)
    subprocess.run(
        ["install", "-m", "600", "-o", TEST_USER, "-g", TEST_USER, str(public_key), str(ssh_dir / "authorized_keys")],
        check=True,
    )


def make_keys() -> Path:
    """A 0700 directory (not under /tmp: StrictModes) with host and client key pairs, and the test user."""
    if not Path("/usr/sbin/sshd").exists():
        raise RuntimeError("OpenSSH server missing: run .ci/install-test-deps.sh")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="kn-sshd-", dir="/run"))
    for name in ("host_key", "client_key", "other_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True)
    shutil.copy(directory / "client_key.pub", directory / "authorized_keys")
    os.chmod(directory / "authorized_keys", 0o600)
    _ensure_test_user(directory / "client_key.pub")
    return directory


def start_sshd(keys: Path, address: str = "127.0.0.1", port: int = 0, netns: str | None = None) -> SSHServer:
    """sshd on ``address:port`` (a free port for 0), with a known_hosts file that trusts it."""
    port = port or _free_port(address)
    process = _start_sshd(_sshd_config(keys, f"{address}:{port}"), keys / f"sshd-{address}.log", netns)
    return SSHServer(address, port, keys / "client_key", _known_hosts(keys, address, port), keys, process)


def _known_hosts(directory: Path, address: str, port: int) -> Path:
    path = directory / f"known_hosts-{address}-{port}"
    host_key = (directory / "host_key.pub").read_text().split()
    pattern = address if port == 22 else f"[{address}]:{port}"
    path.write_text(f"{pattern} {host_key[0]} {host_key[1]}\n")
    return path


@pytest.fixture(scope="session")
def ssh_keys() -> Iterator[Path]:
    try:
        directory = make_keys()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def sshd(ssh_keys: Path) -> Iterator[SSHServer]:
    """sshd on 127.0.0.1 and a free port."""
    server = start_sshd(ssh_keys)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def remote_host(ssh_keys: Path) -> Iterator[SSHServer]:
    """A second host: a network namespace at 10.231.N.2 with its own sshd on port 22."""
    tag = secrets.token_hex(2)
    netns, outer, inner = f"kn-t{tag}", f"knt{tag}a", f"knt{tag}b"
    subnet = f"10.231.{int(tag, 16) % 200 + 20}"
    steps = [
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", outer, "type", "veth", "peer", "name", inner],
        ["ip", "link", "set", inner, "netns", netns],
        ["ip", "addr", "add", f"{subnet}.1/24", "dev", outer],
        ["ip", "link", "set", outer, "up"],
        ["ip", "-n", netns, "addr", "add", f"{subnet}.2/24", "dev", inner],
        ["ip", "-n", netns, "link", "set", inner, "up"],
        ["ip", "-n", netns, "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True)
        server = start_sshd(ssh_keys, f"{subnet}.2", 22, netns=netns)
        yield server
        server.stop()
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
        subprocess.run(["ip", "link", "del", outer], check=False, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def remote_python(ssh_keys: Path) -> Path:
    """A Python for ``kntest`` with this checkout of kernel-nanny and ipykernel; returns its bin directory."""
    python = REMOTE_VENV / "bin" / "python"
    # A copy, installed not editable: the checkout may live where kntest cannot read (under /root),
    # and a build in the checkout would leave build/ there.
    source = Path(tempfile.mkdtemp(prefix="kn-remote-src-"))
    shutil.copytree(
        REPO,
        source,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".git", "_build", "build", "results", "*.egg-info", "__pycache__"),
    )
    pip = [str(python), "-m", "pip", "install", "-q"]
    try:
        if not python.exists():
            REMOTE_VENV.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["/usr/bin/python3", "-m", "venv", str(REMOTE_VENV)], check=True)
            subprocess.run([*pip, "ipykernel", "setuptools>=68", "wheel", str(source)], check=True)
        subprocess.run([*pip, "--no-build-isolation", "--force-reinstall", "--no-deps", str(source)], check=True)
    finally:
        shutil.rmtree(source, ignore_errors=True)
    return python.parent


def runtime_dir_for(user: str, directory: Path) -> Path:
    """A private Jupyter runtime directory for ``user`` on the "remote" side of the tests."""
    path = directory / f"runtime-{user}"
    path.mkdir(mode=0o700, exist_ok=True)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(directory, 0o711)  # kntest may traverse to its own runtime dir, not list the keys
    return path


def python_command(bin_dir: Path | None, runtime: Path) -> str:
    """The remote command line that runs kernel-nanny, with the tests' runtime directory."""
    python = str(bin_dir / "python") if bin_dir else sys.executable
    return f"env JUPYTER_RUNTIME_DIR={runtime} JUPYTER_PLATFORM_DIRS=1 {python} -m kernel_nanny"
