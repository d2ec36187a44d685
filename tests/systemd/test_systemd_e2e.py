"""End to end under real systemd: kernel-nanny@USER.service in a podman container with systemd as PID 1.

The machine running the tests has no systemd as PID 1, so the system template
unit runs where there is one: a Debian bookworm container (systemd, python3),
built without any registry by mmdebstrap from the host's apt sources and kept
as ``localhost/kn-systemd-test:bookworm`` for later runs. kernel-nanny is
installed in a venv inside it, offline, from a wheelhouse built on the host
(this work tree as a wheel, plus its dependencies and ipykernel).

What is checked: ``systemctl start`` returns after READY=1, with a StatusText;
systemd's watchdog is fed (and restarts a hung daemon); kernels launched
through the daemon by the user survive ``systemctl restart`` and
``systemctl stop`` (KillMode=process) and are re-adopted by the next daemon;
interrupt, restart and stop work on a re-adopted kernel.

Needs root, podman (with runc) and mmdebstrap: ``bash .ci/install-test-deps.sh``.
A missing piece fails these tests, it does not skip them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import INSTALL_HINT, pid_alive, unit_text, with_exec_start

# The image build alone takes 30-65 s on a 2-core machine; a first run builds it inside a test.
pytestmark = pytest.mark.timeout(900)

PROJECT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/kn-systemd-test:bookworm"
PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "passwd", "procps"]
MMDEBSTRAP_OPTIONS = [
    "--variant=apt",
    '--aptopt=APT::Install-Recommends "false"',
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
]
#: Labels the image with its recipe: a changed recipe rebuilds the cached image.
RECIPE = hashlib.sha256(json.dumps([PACKAGES, MMDEBSTRAP_OPTIONS]).encode()).hexdigest()[:16]
#: The Python of Debian bookworm, for which the wheelhouse is downloaded.
CONTAINER_PYTHON = "3.11"
CONTAINER_LABEL = "kernel-nanny-test=systemd-e2e"
USER = "knuser"
UNIT = f"kernel-nanny@{USER}.service"
VENV_PYTHON = "/venv/bin/python"
RUNTIME = f"/home/{USER}/.local/share/jupyter/runtime"
#: A short watchdog (the shipped unit says 30 s) so the test sees it fed, and sees it fire, in seconds.
WATCHDOG_SEC = 4


# -- podman --------------------------------------------------------------------


def _podman(
    *args: str, timeout: float = 120, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def _require_components() -> None:
    if shutil.which("podman") is None:
        if not os.environ.get("CI") and os.environ.get("KERNEL_NANNY_SKIP_SYSTEMD_E2E"):
            pytest.skip("podman is missing and KERNEL_NANNY_SKIP_SYSTEMD_E2E is set (never honoured in CI)")
        pytest.fail(f"podman is not installed: {INSTALL_HINT}", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the systemd end-to-end tests need root (rootful podman, systemd as PID 1)", pytrace=False)
    info = _podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if info.returncode != 0:
        pytest.fail(f"podman does not work here: {info.stderr.strip()}\n{INSTALL_HINT}", pytrace=False)


def _image_recipe() -> str | None:
    done = _podman("image", "inspect", "--format", '{{ index .Labels "kn.recipe" }}', IMAGE, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _apt_sources() -> list[str]:
    """The host's own Debian apt sources (the only mirror reachable), as mmdebstrap mirror arguments."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.is_file():
        return [str(deb822)]
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file() and legacy.read_text().strip():
        return [str(legacy)]
    pytest.fail("no Debian apt sources found on this machine (/etc/apt/sources.list.d/debian.sources)")


def _ensure_image() -> None:
    """Build the systemd image unless one of this recipe exists (podman keeps it across runs)."""
    if _image_recipe() == RECIPE:
        return
    stale = _podman("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False).stdout.strip()
    if shutil.which("mmdebstrap") is None:
        pytest.fail(f"mmdebstrap is not installed (needed to build {IMAGE}): {INSTALL_HINT}", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="kn-systemd-image-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        build = subprocess.run(
            ["mmdebstrap", "--quiet", *MMDEBSTRAP_OPTIONS, f"--include={','.join(PACKAGES)}", "bookworm", str(tarball)]
            + _apt_sources(),
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert build.returncode == 0, f"mmdebstrap failed:\n{build.stdout}\n{build.stderr}"
        _podman(
            "import",
            "--change",
            'CMD ["/sbin/init"]',
            "--change",
            "STOPSIGNAL=SIGRTMIN+3",
            "--change",
            f"LABEL kn.recipe={RECIPE}",
            str(tarball),
            IMAGE,
            timeout=300,
        )
    assert _image_recipe() == RECIPE
    if stale:  # the image of an older recipe, now untagged
        _podman("rmi", stale, check=False)


def _wheelhouse(directory: Path) -> Path:
    """This work tree as a wheel, plus every dependency and ipykernel, for an offline install in the container."""
    source = directory / "src"
    shutil.copytree(PROJECT / "kernel_nanny", source / "kernel_nanny", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, source / name)
    wheels = directory / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]

    def run(command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"

    run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)])
    (project_wheel,) = wheels.glob("kernel_nanny-*.whl")
    # Binary wheels for the container's Python, whatever Python runs the tests.
    download = ["download", "--only-binary=:all:", "--python-version", CONTAINER_PYTHON, "-d", str(wheels)]
    run([*pip, *download, str(project_wheel), "ipykernel"])
    return wheels


class Container:
    """A running container with systemd as PID 1, and kernel-nanny@USER installed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def exec(self, *command: str, check: bool = True, timeout: float = 120, input: str | None = None):
        return _podman(
            "exec",
            *(["-i"] if input is not None else []),
            self.name,
            *command,
            check=check,
            timeout=timeout,
            input=input,
        )

    def as_user(self, *command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command run by USER, as a login would (runuser sets HOME, so the same default dirs as the service)."""
        return self.exec("runuser", "-u", USER, "--", *command, check=check, timeout=timeout)

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """``kernel-nanny ARGS`` as USER, from the user's home."""
        done = _podman(
            "exec", "-w", f"/home/{USER}", self.name, "runuser", "-u", USER, "--", VENV_PYTHON, "-m", "kernel_nanny", *args,
            check=False, timeout=timeout,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"kernel-nanny {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n{self.journal()}"
            )
        return done

    def daemon_view(self) -> dict:
        """What the running daemon itself says (through the DaemonClient API): its info and its kernels."""
        code = (
            "import json\nfrom kernel_nanny import BlockingDaemonClient\n"
            "with BlockingDaemonClient.find() as client:\n"
            "    print(json.dumps({'info': client.info(), 'kernels': client.list_kernels()}))\n"
        )
        return json.loads(self.as_user(VENV_PYTHON, "-c", code).stdout)

    def ps(self) -> list[dict]:
        return json.loads(self.cli("ps", "--json").stdout)

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = self.exec("systemctl", *args, check=False, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(
                f"systemctl {' '.join(args)} exited {done.returncode}:\n{done.stderr}\n{self.journal()}"
            )
        return done

    def show(self, *properties: str) -> dict[str, str]:
        args = [arg for prop in properties for arg in ("-p", prop)]
        out = self.systemctl("show", UNIT, *args).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, lines: int = 60) -> str:
        done = self.exec("journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines), "-u", UNIT, check=False)
        return f"--- journal of {UNIT} ---\n{done.stdout}{done.stderr}"

    def alive(self, pid: int) -> bool:
        """Whether ``pid`` runs in the container (and is not a zombie)."""
        done = self.exec("cat", f"/proc/{pid}/stat", check=False)
        return done.returncode == 0 and done.stdout.rsplit(")", 1)[1].split()[0] != "Z"

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.journal()}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def container(tmp_path_factory) -> Iterator[Container]:
    _require_components()
    # Containers left by an earlier run that was killed before its clean-up: this test's label only, and
    # only those whose pytest process is gone (another run may be using its own right now).
    listing = _podman(
        "ps", "-a", "--filter", f"label={CONTAINER_LABEL}", "--format", '{{.ID}} {{ index .Labels "kn.pid" }}'
    )
    for line in listing.stdout.splitlines():
        old, _, pid = line.partition(" ")
        if not (pid.isdigit() and pid_alive(int(pid))):
            _podman("rm", "-f", "-t", "0", old, check=False)
    _ensure_image()
    wheels = _wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    box = Container(f"kn-systemd-e2e-{uuid.uuid4().hex[:8]}")
    try:
        _podman(
            "run", "-d", "--name", box.name, "--label", CONTAINER_LABEL, "--label", f"kn.pid={os.getpid()}", "--systemd=always", "--network=none",
            "-v", f"{wheels}:/wheels:ro", IMAGE, "/sbin/init",
        )  # fmt: skip
        box.wait_for(
            lambda: box.exec("systemctl", "is-system-running", check=False).stdout.strip() in ("running", "degraded"),
            60,
            "systemd in the container to boot",
        )
        box.exec("python3", "-m", "venv", "/venv")
        box.exec(
            VENV_PYTHON,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            "/wheels",
            "kernel-nanny",
            "ipykernel",
            timeout=300,
        )
        box.exec("useradd", "--create-home", "--shell", "/bin/bash", USER)
        unit = with_exec_start(unit_text("kernel-nanny@.service"), VENV_PYTHON)
        box.exec("sh", "-c", "cat > /etc/systemd/system/kernel-nanny@.service", input=unit)
        box.exec("mkdir", "-p", "/etc/systemd/system/kernel-nanny@.service.d")
        box.exec(
            "sh", "-c", "cat > /etc/systemd/system/kernel-nanny@.service.d/test.conf",
            input=f"# the test's override: a watchdog short enough to observe\n[Service]\nWatchdogSec={WATCHDOG_SEC}\n",
        )  # fmt: skip
        box.systemctl("daemon-reload")
        yield box
    finally:
        _podman("rm", "-f", "-t", "0", box.name, check=False, timeout=120)


@pytest.fixture
def service(container: Container) -> Iterator[Container]:
    """The service started (fresh if a test left it failed); afterwards every kernel stopped."""
    container.systemctl("reset-failed", UNIT, check=False)
    container.systemctl("start", UNIT)
    yield container
    container.cli("stop", "--all", "--now", check=False)
    container.systemctl("stop", UNIT, check=False)
    container.exec("pkill", "-KILL", "-u", USER, check=False)  # whatever a failed test left behind


def _kernel(kernels: list[dict], name: str) -> dict:
    matches = [k for k in kernels if k.get("name") == name]
    assert len(matches) == 1, kernels
    return matches[0]


def test_start_returns_once_ready_and_the_watchdog_is_fed(service: Container):
    state = service.show("ActiveState", "SubState", "StatusText", "MainPID", "NRestarts", "WatchdogUSec", "Type")
    assert state["ActiveState"] == "active" and state["SubState"] == "running", state
    assert state["StatusText"] == f"serving 0 kernel(s) on ipc://{RUNTIME}/kernel-nanny-daemon.sock", state
    main_pid = int(state["MainPID"])
    # The daemon runs as the instance user, and the CLI run by that user (runuser) finds it in the same dirs.
    assert service.exec("ps", "-o", "user=", "-p", str(main_pid)).stdout.strip() == USER
    assert service.daemon_view()["info"]["pid"] == main_pid
    assert state["WatchdogUSec"] == f"{WATCHDOG_SEC}s"

    # Over more than two watchdog periods: pinged all along, never restarted.
    stamps = set()
    deadline = time.monotonic() + 2.5 * WATCHDOG_SEC
    while time.monotonic() < deadline:
        stamps.add(service.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])
        time.sleep(0.5)
    assert len(stamps) >= 4, stamps  # a ping about every WATCHDOG_SEC / 2
    after = service.show("ActiveState", "MainPID", "NRestarts")
    assert after == {"ActiveState": "active", "MainPID": str(main_pid), "NRestarts": "0"}, after


def test_kernel_survives_a_daemon_restart_and_is_managed_after(service: Container):
    started = service.cli("start", "pyimport/kernel", "--name", "e2e").stdout.split()
    kernel_id, connection_file = started[0], started[1]
    assert connection_file == f"{RUNTIME}/kernel-{kernel_id}.json"
    assert service.show("StatusText")["StatusText"].startswith("serving 1 kernel(s)")
    assert service.cli("exec", "e2e", "-c", "x = 6 * 7; print(x)").stdout == "42\n"
    view = service.daemon_view()
    assert [k["kernel_id"] for k in view["kernels"]] == [kernel_id]
    kernel = _kernel(service.ps(), "e2e")
    kernel_pid, nanny_pid = kernel["pid"], kernel["nanny_pid"]
    old_main = int(service.show("MainPID")["MainPID"])

    service.systemctl("restart", UNIT)

    state = service.show("ActiveState", "MainPID", "StatusText")
    assert state["ActiveState"] == "active", state
    new_main = int(state["MainPID"])
    assert new_main != old_main and not service.alive(old_main)
    assert service.alive(kernel_pid) and service.alive(nanny_pid)
    # The new daemon re-adopted the kernel: same id, same process, same state.
    assert state["StatusText"].startswith("serving 1 kernel(s)"), state
    view = service.daemon_view()
    assert view["info"]["pid"] == new_main
    assert [k["kernel_id"] for k in view["kernels"]] == [kernel_id]
    kernel = _kernel(service.ps(), "e2e")
    assert (kernel["kernel_id"], kernel["pid"], kernel["nanny_pid"]) == (kernel_id, kernel_pid, nanny_pid)
    assert service.cli("exec", "e2e", "-c", "print(x)").stdout == "42\n"
    assert "adopted 1 kernel(s)" in service.journal()

    # interrupt: code running in the re-adopted kernel stops with KeyboardInterrupt.
    podman_exec = [
        "podman", "exec", "-w", f"/home/{USER}", service.name, "runuser", "-u", USER, "--",
        VENV_PYTHON, "-m", "kernel_nanny", "exec", "e2e", "-c", "import time; print('sleeping', flush=True); time.sleep(300)",
    ]  # fmt: skip
    sleeper = subprocess.Popen(
        podman_exec, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    try:
        assert sleeper.stdout is not None
        assert sleeper.stdout.readline() == "sleeping\n"
        service.cli("interrupt", "e2e")
        out, err = sleeper.communicate(timeout=30)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert sleeper.returncode == 1, (out, err)
    assert "KeyboardInterrupt" in out + err
    assert service.alive(kernel_pid)
    assert service.cli("exec", "e2e", "-c", "print(x + 1)").stdout == "43\n"

    # restart: a fresh kernel process behind the same nanny, same id; its state is gone.
    service.cli("restart", "e2e")
    kernel = _kernel(service.ps(), "e2e")
    assert kernel["kernel_id"] == kernel_id and kernel["nanny_pid"] == nanny_pid
    assert kernel["pid"] != kernel_pid and kernel["state"] == "running"
    service.wait_for(lambda: not service.alive(kernel_pid), 30, "the old kernel process to exit")
    failed = service.cli("exec", "e2e", "-c", "print(x)", check=False)
    assert failed.returncode == 1 and "NameError" in failed.stdout + failed.stderr, failed
    assert service.cli("exec", "e2e", "-c", "print(6 * 7)").stdout == "42\n"
    new_kernel_pid = kernel["pid"]

    # stop, through the daemon: the kernel and its nanny exit, and the daemon's index follows.
    service.cli("stop", "e2e")
    service.wait_for(
        lambda: not service.alive(new_kernel_pid) and not service.alive(nanny_pid), 30, "the kernel and nanny to exit"
    )
    assert service.daemon_view()["kernels"] == []
    assert service.ps() == []
    assert service.show("StatusText")["StatusText"].startswith("serving 0 kernel(s)")
    assert service.show("NRestarts")["NRestarts"] == "0"
    journal = service.journal(400)
    assert "Traceback" not in journal and " ERROR " not in journal, journal


def test_a_hung_daemon_is_restarted_by_the_watchdog_and_readopts(service: Container):
    kernel_id = service.cli("start", "pyimport/kernel", "--name", "hung").stdout.split()[0]
    kernel = _kernel(service.ps(), "hung")
    main_pid = int(service.show("MainPID")["MainPID"])
    service.exec("kill", "-STOP", str(main_pid))  # the event loop no longer runs: no more WATCHDOG=1

    def restarted() -> bool:
        state = service.show("ActiveState", "MainPID", "NRestarts")
        return (
            state["NRestarts"] == "1"
            and state["ActiveState"] == "active"
            and state["MainPID"] not in ("0", str(main_pid))
        )

    service.wait_for(restarted, 3 * WATCHDOG_SEC + 10, "the watchdog to restart the daemon")
    assert "Watchdog timeout" in service.journal(200)
    assert not service.alive(main_pid)
    assert service.alive(kernel["pid"]) and service.alive(kernel["nanny_pid"])
    view = service.daemon_view()
    assert [k["kernel_id"] for k in view["kernels"]] == [kernel_id]
    assert service.cli("exec", "hung", "-c", "print('still here')").stdout == "still here\n"
    service.cli("stop", "hung")


def test_stopping_the_service_leaves_kernels_running(service: Container):
    kernel_id = service.cli("start", "pyimport/kernel", "--name", "orphan").stdout.split()[0]
    kernel = _kernel(service.ps(), "orphan")
    service.systemctl("stop", UNIT)
    state = service.show("ActiveState", "Result", "MainPID")
    assert state == {"ActiveState": "inactive", "Result": "success", "MainPID": "0"}, state
    assert service.alive(kernel["pid"]) and service.alive(kernel["nanny_pid"])
    # No daemon: the discovery file is gone and the CLI works on the runtime directory directly.
    assert service.exec("test", "-e", f"{RUNTIME}/kernel-nanny-daemon.json", check=False).returncode == 1
    assert [k["kernel_id"] for k in service.ps()] == [kernel_id]
    assert service.cli("exec", "orphan", "-c", "print(6 * 7)").stdout == "42\n"
    service.cli("stop", "--all")
    service.wait_for(
        lambda: not service.alive(kernel["pid"]) and not service.alive(kernel["nanny_pid"]), 30, "the kernel to exit"
    )
    assert service.ps() == []
    assert re.search(r"Stopped kernel-nanny@", service.journal())
