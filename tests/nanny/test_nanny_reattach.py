"""Re-attaching to a nanny from ManagerClient's JSON (kind ``nanny``), in a new process."""

from __future__ import annotations

import json

import pytest

from kernel_nanny import InvalidRequest, LaunchRequest, ManagerClient, NannyUnavailable, NoSuchKernel, start_kernel
from tests.reattach import reattach_elsewhere

NANNY = "kernel_nanny:ManagerClient"


async def _start() -> ManagerClient:
    _, manager = await start_kernel(
        LaunchRequest(kernel_type="pyimport/kernel", supervised=True, params={"echo_output": False})
    )
    assert isinstance(manager, ManagerClient)
    return manager


def _elsewhere(state: str) -> str:
    """The state as if the nanny ran on another host (it is this one's: it answers all the same)."""
    data = json.loads(state)
    data["connection_info"]["nanny_host"] = "elsewhere"
    return json.dumps(data)


async def test_a_new_process_manages_the_nanny_from_its_json():
    manager = await _start()
    try:
        state = manager.to_json()
        assert json.loads(state)["kind"] == "nanny"
        outcome = await reattach_elsewhere(
            NANNY, state, "alive", "execute:print(6 * 7)", "interrupt", "kill", "restart", "execute:print(7 * 6)"
        )
        assert outcome["results"] == [True, "42\n", "KeyboardInterrupt", "killed by SIGKILL", "restarted", "42\n"]
        outcome = await reattach_elsewhere(NANNY, _elsewhere(state), "alive", "shutdown")
        assert outcome["results"] == [True, "shut down"]  # a nanny of another host answers info: it is there
    finally:
        await manager.cleanup()


async def test_a_nanny_that_is_gone_is_refused():
    manager = await _start()
    state = manager.to_json()
    await manager.shutdown(now=True)
    await manager.cleanup()
    outcome = await reattach_elsewhere(NANNY, state, "alive")
    assert outcome["error"] == "NoSuchKernel"
    assert f"kernel {manager.kernel_id[:12]} is gone: its nanny" in outcome["message"]
    with pytest.raises(NoSuchKernel):
        await ManagerClient.from_json(state)
    with pytest.raises(NannyUnavailable):  # elsewhere, a nanny that does not answer
        await ManagerClient.from_json(_elsewhere(state), timeout=0.5)


async def test_another_kind_of_state_is_refused():
    with pytest.raises(
        InvalidRequest, match="a kernel manager state of kind 'nanny' was expected, but this JSON is of kind 'local'"
    ):
        await ManagerClient.from_json('{"kind": "local", "version": 1}')
    with pytest.raises(InvalidRequest, match="wrong field: connection info: iopub_port must be"):
        await ManagerClient.from_json('{"kind": "nanny", "version": 1, "connection_info": {"shell_port": 1}}')
