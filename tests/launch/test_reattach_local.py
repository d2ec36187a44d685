"""Re-attaching a local kernel from its manager's JSON, in a new process."""

from __future__ import annotations

import json
import os

import pytest

from kernel_nanny import InvalidRequest, LocalKernelManager, NoSuchKernel
from kernel_nanny.client.running import ProcessIdentity
from kernel_nanny.launch import launch_local

from ..conftest import IPYKERNEL
from ..reattach import reattach_elsewhere

LOCAL = "kernel_nanny:LocalKernelManager"


def _edited(state: str, **changes: object) -> str:
    return json.dumps({**json.loads(state), **changes})


async def test_a_new_process_takes_the_kernel_over_with_full_control(kernel):
    info, manager = kernel
    state = manager.to_json()
    assert json.loads(state)["process"] == {
        "pid": manager.pid,
        "start_time": ProcessIdentity.of(manager.pid).start_time,
    }
    outcome = await reattach_elsewhere(
        LOCAL,
        state,
        "alive",
        "execute:print(6 * 7)",
        "interrupt",
        "kill",
        "restart",
        "execute:print(7 * 6)",
        "shutdown",
    )
    assert outcome["results"] == [
        True,
        "42\n",
        "KeyboardInterrupt",
        "exited (how is unknown: it was not this process's child)",  # not its child: no exit code
        "restarted",
        "42\n",  # the restarted kernel, on the same connection info
        "shut down",
    ]
    assert not await manager.is_alive()
    assert not manager.connection_file.exists()  # the new process cleaned up


async def test_a_kernel_that_is_gone_is_refused_naming_it():
    info, manager = await launch_local(IPYKERNEL, kernel_name="test/gone", launch_params={"echo_output": False})
    state = manager.to_json()
    await manager.shutdown(now=True)
    outcome = await reattach_elsewhere(LOCAL, state, "alive")
    assert outcome["error"] == "NoSuchKernel"
    assert "kernel test/gone" in outcome["message"] and "is gone" in outcome["message"]


async def test_a_pid_that_now_names_another_program_is_refused(kernel):
    _, manager = kernel
    state = json.loads(manager.to_json())
    # This very process stands for the program that got the kernel's pid: alive, but started at another time.
    state["process"]["pid"] = os.getpid()
    with pytest.raises(NoSuchKernel, match=f"its process {os.getpid()} has exited .*started at another time"):
        await LocalKernelManager.from_json(json.dumps(state))
    assert await manager.is_alive()


async def test_a_kernel_of_another_host_is_refused(kernel):
    _, manager = kernel
    with pytest.raises(NoSuchKernel, match="runs on host 'elsewhere', not on this one .*re-attach it there"):
        await LocalKernelManager.from_json(_edited(manager.to_json(), host="elsewhere"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "docker"}, "a kernel manager state of kind 'local' was expected, but this JSON is of kind 'docker'"),
        ({"version": 2}, "has version 2; this kernel-nanny reads version 1"),
        ({"process": None}, "the kernel manager state of kind 'local' lacks 'process'"),
        ({"process": {"pid": "x", "start_time": 1}}, "has a wrong field"),
    ],
)
async def test_json_that_is_not_a_local_managers_state_is_refused(kernel, changes, message):
    _, manager = kernel
    state = json.loads(manager.to_json())
    state.update(changes)
    if changes == {"process": None}:
        del state["process"]
    with pytest.raises(InvalidRequest, match=message) as raised:
        await LocalKernelManager.from_json(json.dumps(state))
    assert isinstance(raised.value, ValueError)


async def test_not_json_at_all_is_refused():
    with pytest.raises(InvalidRequest, match="is not JSON"):
        await LocalKernelManager.from_json("kernel-3f2a.json")
