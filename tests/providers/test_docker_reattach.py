"""Re-attaching a Docker kernel from its manager's JSON, in a new process, against a real Docker Engine."""

from __future__ import annotations

import json

import pytest

from kernel_nanny import InvalidRequest, KernelFinder, NoSuchKernel
from kernel_nanny.providers.docker_manager import DockerKernelManager

from ..reattach import reattach_elsewhere
from .docker_engines import IMAGE, Engine, write_config

pytestmark = pytest.mark.timeout(180)

DOCKER = "kernel_nanny.providers.docker_manager:DockerKernelManager"


@pytest.fixture
def finder(tmp_path, monkeypatch, docker_engine: Engine):
    """docker/python on the test engine, which must hold no kernel container after the test."""
    assert docker_engine.kernel_containers() == []
    path = write_config(tmp_path / "config.toml", docker_engine.host, {"python": {"image": IMAGE}})
    monkeypatch.setenv("KERNEL_NANNY_CONFIG", str(path))
    yield KernelFinder.from_entrypoints()
    assert docker_engine.kernel_containers() == []


async def _launch(finder: KernelFinder) -> DockerKernelManager:
    _, manager = await finder.launch("docker/python", launch_params={"echo_output": False})
    assert isinstance(manager, DockerKernelManager)
    return manager


async def test_a_new_process_takes_the_container_over_with_full_control(finder, docker_engine):
    manager = await _launch(finder)
    try:
        state = manager.to_json()
        assert json.loads(state)["container_id"] == manager.container_id
        outcome = await reattach_elsewhere(
            DOCKER, state, "alive", "execute:print(6 * 7)", "interrupt", "kill", "restart", "execute:print(7 * 6)"
        )
        assert outcome["results"] == [True, "42\n", "KeyboardInterrupt", "killed by SIGKILL", "restarted", "42\n"]
        outcome = await reattach_elsewhere(DOCKER, state, "alive", "shutdown")
        assert outcome["results"] == [True, "shut down"]
        assert docker_engine.kernel_containers() == []  # the new process removed the container
    finally:
        await manager.cleanup()
    assert manager._lifeline is None  # disarmed: the container it guarded is gone (removed by the other process)


async def test_a_container_that_is_gone_is_refused_naming_it_and_the_fix(finder):
    manager = await _launch(finder)
    state = manager.to_json()
    await manager.shutdown(now=True)
    outcome = await reattach_elsewhere(DOCKER, state, "alive")
    assert outcome["error"] == "NoSuchKernel"
    assert f"is gone: its container {manager.container_id[:12]} is no longer on the Docker Engine" in outcome["message"]
    assert "start a new kernel" in outcome["message"]


async def test_another_kind_of_state_is_refused():
    with pytest.raises(
        InvalidRequest, match="a kernel manager state of kind 'docker' was expected, but this JSON is of kind 'ssh'"
    ):
        await DockerKernelManager.from_json('{"kind": "ssh", "version": 1}')
    with pytest.raises(NoSuchKernel, match="runs on host 'elsewhere'"):
        await DockerKernelManager.from_json(
            json.dumps(
                {
                    "kind": "docker",
                    "version": 1,
                    "host": "elsewhere",
                    "engine": None,
                    "container_id": "0" * 64,
                    "connection_info": {f"{c}_port": 1 for c in ("shell", "iopub", "stdin", "control", "hb")},
                    "connection_file": "/nonexistent/kernel.json",
                    "private_dir": "/nonexistent",
                }
            )
        )
