"""The Docker provider against a real Docker Engine (and podman's Docker API), with a real ipykernel image."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest

from kernel_nanny import (
    ConfigError,
    KernelClient,
    KernelError,
    KernelFinder,
    LaunchError,
    LaunchRequest,
    ManagerClient,
    NannyUnavailable,
    RestartPolicy,
)
from kernel_nanny.protocol import ExitStatus
from kernel_nanny.providers.docker_engine import LABEL_KERNEL, LABEL_OWNER_HOST, LABEL_OWNER_PID
from kernel_nanny.providers.docker_manager import exit_status
from kernel_nanny.start import start_kernel

from ..helpers import ManagerEvents, interrupted
from .docker_engines import IMAGE, Engine, EngineEvents, write_config

pytestmark = pytest.mark.timeout(180)

QUIET = {"echo_output": False}
IMAGES: dict[str, dict[str, Any]] = {
    "python": {"image": IMAGE, "display_name": "Python 3 (test image)", "environment": {"KN_TEST": "from-config"}},
    "small": {"image": IMAGE, "memory": "96m"},
    "crashing": {
        "image": IMAGE,
        "command": [
            "python3",
            "-c",
            "import sys; print('boom-at-start', file=sys.stderr); sys.exit(3)",
            "{connection_file}",
        ],
    },
    "no-command": {"image": IMAGE, "command": ["no-such-kernel", "{connection_file}"]},
    "no-image": {"image": "localhost/no-such-image:1"},
}


@pytest.fixture
def configure(tmp_path, monkeypatch):
    """Write a [providers.docker] configuration and make it everybody's (nannies included)."""

    def write(host: str, images: dict[str, dict[str, Any]] = IMAGES) -> KernelFinder:
        path = write_config(tmp_path / "config.toml", host, images)
        monkeypatch.setenv("KERNEL_NANNY_CONFIG", str(path))
        return KernelFinder.from_entrypoints()

    return write


@pytest.fixture
def engine(docker_engine: Engine) -> Engine:
    """The Docker Engine, checked to hold no kernel container after the test (whatever it did)."""
    assert docker_engine.kernel_containers() == []
    yield docker_engine
    assert docker_engine.kernel_containers() == []


@pytest.fixture
def finder(configure, engine) -> KernelFinder:
    return configure(engine.host)


async def _behind_a_nanny(finder: KernelFinder, kernel: str = "python") -> tuple[dict, ManagerClient]:
    """A kernel behind a real nanny process, without automatic restarts (the tests look at each death)."""
    request = LaunchRequest(
        kernel_type=f"docker/{kernel}", params=QUIET, restart_policy=RestartPolicy(max_restarts=0), supervised=True
    )
    return await start_kernel(request, finder=finder)


@pytest.fixture
async def nanny(finder):
    """docker/python behind a nanny, stopped afterwards."""
    info, manager = await _behind_a_nanny(finder)
    try:
        yield info, manager
    finally:
        try:
            await manager.shutdown(now=True)
        except (NannyUnavailable, KernelError):  # the test stopped it (or killed the nanny) already
            pass
        await manager.cleanup()


async def _run(info: dict, code: str) -> Any:
    async with KernelClient(info) as client:
        return await client.execute_interactive(code, timeout=60)


def _container_of(engine: Engine, **labels: str) -> dict[str, Any]:
    found = engine.client.api.containers(all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})
    assert len(found) == 1, found
    return found[0]


def _dead_pid() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(process.stdout)


def _stray(engine: Engine) -> str:
    """A container labelled as started by kernel-nanny on this host, for an owner that is gone."""
    container = engine.client.containers.create(
        IMAGE,
        ["sleep", "600"],
        init=True,
        labels={LABEL_KERNEL: "stray", LABEL_OWNER_HOST: socket.gethostname(), LABEL_OWNER_PID: str(_dead_pid())},
    )
    container.start()
    return str(container.id)


def _gone(engine: Engine, container_id: str) -> bool:
    try:
        engine.client.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return True
    return False


# -- configuration and listing -----------------------------------------------------------


def test_kernel_types_are_listed_from_the_settings_without_an_engine(configure, tmp_path):
    finder = configure("unix:///run/kn-test-no-engine-here.sock")
    kernels = dict(finder.find_kernels())
    assert kernels["docker/python"]["display_name"] == "Python 3 (test image)"
    assert kernels["docker/python"]["language"] == "python"
    assert kernels["docker/python"]["metadata"] == {"image": IMAGE}
    assert kernels["docker/small"]["display_name"] == f"{IMAGE} (Docker)"
    # The command line too (a nanny-less process that reads the same configuration).
    out = subprocess.run([sys.executable, "-m", "kernel_nanny", "list"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "docker/python" in out.stdout and "Python 3 (test image)" in out.stdout


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"image": IMAGE, "memory": "lots"}, "memory: must be bytes or a size such as '512m' or '2g', got 'lots'"),
        ({"image": IMAGE, "cpus": -1}, "cpus: must be a number of CPUs > 0, got -1"),
        ({"image": IMAGE, "cpus": float("nan")}, "cpus: must be a number of CPUs > 0, got nan"),
        ({"image": IMAGE, "mounts": ["/srv"]}, "mounts: '/srv' is not 'source:/target"),
        (
            {"image": IMAGE, "command": ["python3", "-m", "ipykernel_launcher"]},
            "command: must pass the kernel its connection file",
        ),
        ({"image": IMAGE, "environment": {"A": 1}}, "environment: must be a table of strings"),
        ({"image": IMAGE, "network": "none"}, "network: cannot be 'none'"),
        ({"image": IMAGE, "interrupt_mode": "poke"}, "interrupt_mode: must be one of signal, message, got 'poke'"),
        ({"image": IMAGE, "ports": [1]}, "ports: unknown setting"),
        ({"memory": "1g"}, "image: missing"),
    ],
)
def test_a_wrong_setting_names_the_file_the_table_and_the_key(configure, tmp_path, settings, message):
    with pytest.raises(ConfigError) as caught:
        configure("unix:///run/kn-test-no-engine-here.sock", {"python": settings})
    assert str(caught.value).startswith(f"{tmp_path / 'config.toml'}: [providers.docker.images.python] {message}")


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"ExitCode": 0}, ExitStatus(exit_code=0)),
        ({"ExitCode": 3}, ExitStatus(exit_code=3)),
        ({"ExitCode": 130}, ExitStatus(signal=signal.SIGINT, reason="signaled")),
        ({"ExitCode": 137}, ExitStatus(signal=signal.SIGKILL, reason="killed")),
        ({"ExitCode": 137, "OOMKilled": True}, ExitStatus(signal=signal.SIGKILL, reason="oom")),
        ({"ExitCode": 0, "OOMKilled": True}, ExitStatus(exit_code=0)),  # a child was OOM-killed, not the kernel
        ({"ExitCode": 255}, ExitStatus(exit_code=255)),  # 128 + 127 is no signal
    ],
)
def test_a_containers_state_says_how_the_kernel_ended(state, expected):
    # The engine's own states for these are produced for real by the kill and OOM tests below;
    # this pins the mapping for the ones that are hard to produce (a child's OOM kill, odd codes).
    assert exit_status(state) == expected


# -- launching directly --------------------------------------------------------------------


async def test_launch_runs_the_kernel_in_a_labelled_container_published_on_loopback_only(finder, engine, runtime_dir):
    # A requested ipc transport is overridden: unix sockets cannot cross into the container.
    info, manager = await finder.launch("docker/python", launch_params={**QUIET, "transport": "ipc"})
    try:
        assert info["transport"] == "tcp" and info["ip"] == "127.0.0.1"
        result = await _run(info, "import os; print(os.environ['KN_TEST'], 6 * 7)")
        assert result.stream_text() == "from-config 42\n"
        container = _container_of(engine, **{LABEL_OWNER_PID: str(os.getpid())})
        assert container["Id"] == manager.container_id
        details = engine.client.api.inspect_container(container["Id"])
        assert details["HostConfig"]["Init"] is True
        published = details["HostConfig"]["PortBindings"]
        ports = sorted(info[key] for key in info if key.endswith("_port"))
        assert sorted(int(p.split("/")[0]) for p in published) == ports
        assert {binding["HostIp"] for bindings in published.values() for binding in bindings} == {"127.0.0.1"}
        assert manager.pid == details["State"]["Pid"]
        connection_file = Path(runtime_dir) / f"kernel-{container['Labels'][LABEL_KERNEL]}.json"
        assert json.loads(connection_file.read_text()) == info
        assert oct(connection_file.stat().st_mode & 0o777) == oct(0o600)
    finally:
        await manager.shutdown()
    assert _gone(engine, manager.container_id)
    assert not connection_file.exists()


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [("crashing", ["exited with code 3", "boom-at-start"]), ("no-command", ["exec no-such-kernel failed"])],
)
async def test_a_kernel_that_exits_at_start_is_reported_with_its_output(finder, engine, kernel, expected):
    with pytest.raises(LaunchError) as caught:
        await finder.launch(f"docker/{kernel}", launch_params=QUIET)
    message = str(caught.value)
    assert f"docker/{kernel}" in message
    for text in expected:
        assert text in message
    # (the engine fixture checks that no container is left)


async def test_a_missing_image_names_the_image_and_the_fix(finder, engine):
    with pytest.raises(LaunchError) as caught:
        await finder.launch("docker/no-image", launch_params=QUIET)
    message = str(caught.value)
    assert "'localhost/no-such-image:1'" in message and "build or pull it" in message and engine.host in message


async def test_a_missing_engine_names_the_host_and_the_fix(configure, runtime_dir):
    finder = configure("unix:///run/kn-test-no-engine-here.sock")
    before = set(Path(runtime_dir).iterdir())
    with pytest.raises(LaunchError) as caught:
        await finder.launch("docker/python", launch_params=QUIET)
    message = str(caught.value)
    assert "unix:///run/kn-test-no-engine-here.sock" in message
    assert "start the Docker Engine or set [providers.docker] host / DOCKER_HOST" in message
    assert set(Path(runtime_dir).iterdir()) == before


async def test_a_launch_removes_stray_containers_of_dead_owners(finder, engine):
    stray = _stray(engine)
    info, manager = await finder.launch("docker/python", launch_params=QUIET)
    try:
        assert _gone(engine, stray)
    finally:
        await manager.shutdown(now=True)


# -- behind a nanny ----------------------------------------------------------------------------


async def test_interrupt_reaches_the_kernel_in_the_container(nanny):
    info, manager = nanny
    result = await interrupted(info, manager)
    assert result.error["ename"] == "KeyboardInterrupt"


async def test_restart_is_in_place_with_a_new_process(nanny, engine):
    info, manager = nanny
    await _run(info, "state = 'before'")
    before = await manager.info()
    container = _container_of(engine, **{LABEL_OWNER_PID: str(before["nanny_pid"])})
    await manager.restart()
    after = await manager.info()
    assert after["pid"] != before["pid"] and after["restart_count"] == 1
    assert _container_of(engine, **{LABEL_OWNER_PID: str(before["nanny_pid"])})["Id"] == container["Id"]
    result = await _run(info, "print('state' in globals())")  # the same ports still reach it
    assert result.stream_text() == "False\n"


async def test_kill_is_reported_as_a_death(nanny):
    info, manager = nanny
    events = await ManagerEvents.subscribed(manager)
    await manager.kill()
    died = await events.until("kernel_died")
    assert died["signal"] == signal.SIGKILL and died["reason"] == "killed" and died["restarting"] is False
    assert not await manager.is_alive()


async def test_the_containers_own_output_becomes_stream_events_and_the_log(nanny):
    info, manager = nanny
    events = await ManagerEvents.subscribed(manager)
    await _run(info, "import os; os.write(1, b'hello-from-the-container\\n'); os.write(2, b'to-stderr\\n')")
    out = await events.first(lambda kind, c: kind == "stream" and "hello-from-the-container" in c["text"])
    assert out["name"] == "stdout"
    err = await events.first(lambda kind, c: kind == "stream" and "to-stderr" in c["text"])
    assert err["name"] == "stderr"
    log = Path((await manager.info())["log_file"]).read_text()
    assert "hello-from-the-container" in log and "to-stderr" in log


async def test_an_oom_killed_kernel_is_reported_as_oom(finder, engine):
    info, manager = await _behind_a_nanny(finder, "small")
    try:
        events = await ManagerEvents.subscribed(manager)
        async with KernelClient(info) as client:
            # 1 GiB written under a 96 MiB limit (no swap here): the OOM killer, not a MemoryError.
            asyncio.ensure_future(client.execute("data = b'x' * (1 << 30)", timeout=60))
            died = await events.until("kernel_died")
        assert died["reason"] == "oom" and died["signal"] == signal.SIGKILL
        assert (await manager.info())["last_exit"]["reason"] == "oom"
    finally:
        await manager.shutdown(now=True)
        await manager.cleanup()


async def test_shutdown_leaves_no_container(finder, engine):
    info, manager = await _behind_a_nanny(finder)
    try:
        nanny_pid = (await manager.info())["nanny_pid"]
        assert _container_of(engine, **{LABEL_OWNER_PID: str(nanny_pid)})
        await manager.shutdown()
    finally:
        await manager.cleanup()
    assert engine.client.api.containers(all=True, filters={"label": f"{LABEL_OWNER_PID}={nanny_pid}"}) == []


async def test_a_killed_nanny_takes_its_container_with_it(finder, engine):
    info, manager = await _behind_a_nanny(finder)
    try:
        nanny_pid = (await manager.info())["nanny_pid"]
        container = _container_of(engine, **{LABEL_OWNER_PID: str(nanny_pid)})
        events = EngineEvents(engine, container=container["Id"], event="destroy")
        try:
            os.kill(nanny_pid, signal.SIGKILL)
            await events.next()  # the lifeline removed it
        finally:
            events.close()
    finally:
        await manager.cleanup()
    assert _gone(engine, container["Id"])


async def test_the_daemon_removes_stray_containers_when_it_starts(finder, engine, tmp_path):
    stray = _stray(engine)
    events = EngineEvents(engine, container=stray, event="destroy")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(tmp_path / "state")}
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kernel_nanny",
        "serve",
        "--config",
        os.environ["KERNEL_NANNY_CONFIG"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await events.next()
    finally:
        events.close()
        daemon.send_signal(signal.SIGTERM)
        await daemon.wait()
    assert _gone(engine, stray)


# -- podman's Docker-compatible API ---------------------------------------------------------


async def test_podman_docker_api_launch_execute_shutdown(configure, podman_engine):
    assert podman_engine.kernel_containers() == []
    finder = configure(podman_engine.host)
    info, manager = await finder.launch("docker/python", launch_params=QUIET)
    try:
        result = await _run(info, "print(6 * 7)")
        assert result.stream_text() == "42\n"
    finally:
        await manager.shutdown()
    assert podman_engine.kernel_containers() == []
