"""The kernel-nanny provisioner under jupyter_client's AsyncKernelManager, with real ipykernel kernels."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from kernel_nanny import KernelExecutableNotFound, ManagerClient
from kernel_nanny.client.running import RunningKernel, list_running_kernels, pid_alive
from kernel_nanny.jupyter.provisioner import NannyProvisioner

from .conftest import LOCAL_SPEC, NANNY_SPEC, running_ids

PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


@pytest.fixture
async def km() -> AsyncIterator[AsyncKernelManager]:
    manager = AsyncKernelManager(kernel_name=NANNY_SPEC)
    await manager.start_kernel()
    try:
        yield manager
    finally:
        if manager.has_kernel:
            await manager.shutdown_kernel(now=True)


@asynccontextmanager
async def connected(km: AsyncKernelManager) -> AsyncIterator[Any]:
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()


async def run(kc: Any, code: str) -> tuple[dict[str, Any], str]:
    """Execute ``code``; its execute_reply content and everything it printed."""
    printed: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    reply = await kc.execute_interactive(code, timeout=60, output_hook=hook)
    return reply["content"], "".join(printed)


async def interrupted_sleep(km: AsyncKernelManager, kc: Any) -> dict[str, Any]:
    """Start a long sleep, interrupt it through ``km`` once the cell's own code runs; its execute_reply."""
    msg_id = kc.execute("import time\nprint('go', flush=True)\ntime.sleep(60)")
    while True:  # the cell's own output proves its code is running (execute_input comes a bit before)
        msg = await kc.get_iopub_msg(timeout=60)
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            break
    await km.interrupt_kernel()
    reply = await kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    return reply["content"]


def nanny_of(km: AsyncKernelManager) -> RunningKernel:
    """The nanny behind ``km``'s kernel (its name is the Jupyter kernel id)."""
    [nanny] = [k for k in list_running_kernels() if k.name == km.kernel_id]
    return nanny


async def nanny_info(km: AsyncKernelManager) -> dict[str, Any]:
    async with ManagerClient.from_connection_file(nanny_of(km).connection_file) as manager:
        return await manager.info()


async def test_a_kernelspec_selects_the_provisioner_and_the_kernel_runs_behind_a_nanny(km):
    assert isinstance(km.provisioner, NannyProvisioner)
    nanny = nanny_of(km)
    assert nanny.kernel_type == f"spec/{NANNY_SPEC}"
    # The connection file jupyter_client wrote is the nanny's kernel, without the nanny's own sockets.
    written = json.loads(Path(km.connection_file).read_text())
    for key in (*PORTS, "ip", "transport", "key", "signature_scheme"):
        assert written[key] == nanny.info[key], key
    assert "nanny_control_port" not in written
    async with connected(km) as kc:
        reply, printed = await run(kc, "print(6 * 7)")
    assert reply["status"] == "ok" and printed == "42\n"
    info = await nanny_info(km)
    assert info["alive"] and info["state"] == "running"


async def test_shutdown_stops_the_nanny_and_leaves_no_files():
    km = AsyncKernelManager(kernel_name=NANNY_SPEC)
    await km.start_kernel()
    nanny = nanny_of(km)
    connection_file = Path(km.connection_file)
    await km.shutdown_kernel()
    assert not km.has_kernel
    assert nanny.kernel_id not in running_ids()
    assert not pid_alive(nanny.nanny_pid)
    assert not nanny.connection_file.exists() and not connection_file.exists()


async def test_shutdown_now_stops_the_nanny_too():
    km = AsyncKernelManager(kernel_name=NANNY_SPEC)
    await km.start_kernel()
    nanny = nanny_of(km)
    await km.shutdown_kernel(now=True)
    assert nanny.kernel_id not in running_ids()
    assert not pid_alive(nanny.nanny_pid)


async def test_interrupt_goes_through_the_nanny_and_raises_keyboardinterrupt(km):
    async with connected(km) as kc:
        reply = await interrupted_sleep(km, kc)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        # (Not its printed output: a SIGINT that lands while the cell's print is still flushing can
        # cost ipykernel its stdout; that is ipykernel's race, with or without a nanny.)
        reply, _ = await run(kc, "still_alive = True")
    assert reply["status"] == "ok"


@pytest.mark.parametrize("now", [False, True])
async def test_restart_is_in_place_same_nanny_same_ports(km, now):
    before = nanny_of(km)
    ports = {key: km.get_connection_info()[key] for key in PORTS}
    first = await nanny_info(km)
    async with connected(km) as kc:
        await run(kc, "x = 1")
    await km.restart_kernel(now=now)
    after = nanny_of(km)
    assert after.kernel_id == before.kernel_id and after.nanny_pid == before.nanny_pid
    assert {key: km.get_connection_info()[key] for key in PORTS} == ports
    info = await nanny_info(km)
    assert info["pid"] != first["pid"] and info["restart_count"] == 1
    async with connected(km) as kc:
        reply, _ = await run(kc, "x")
        assert reply["status"] == "error" and reply["ename"] == "NameError"  # a fresh kernel
        assert (await interrupted_sleep(km, kc))["ename"] == "KeyboardInterrupt"


@pytest.mark.parametrize("restarted_first", [True, False], ids=["after-nanny-restart", "during-nanny-restart"])
async def test_a_crash_is_a_death_for_jupyter_and_its_restart_adopts_the_nannys(km, restarted_first):
    """The nanny restarts a crashed kernel at once, but jupyter_client is told the kernel it knew died
    (its running request will never be answered). The restart jupyter_server's restarter then asks for
    adopts the nanny's new kernel, whether or not it is up yet: one crash, one restart."""
    nanny = nanny_of(km)
    ports = {key: km.get_connection_info()[key] for key in PORTS}
    async with ManagerClient.from_connection_file(nanny.connection_file) as manager:
        old_pid = (await manager.info())["pid"]
        loop = asyncio.get_running_loop()
        died: asyncio.Future[dict[str, Any]] = loop.create_future()
        restarted: asyncio.Future[None] = loop.create_future()

        def on_event(event: Any) -> None:
            if event.msg_type == "kernel_died" and not died.done():
                died.set_result(event.content)
            if event.msg_type == "kernel_restarted" and not restarted.done():
                restarted.set_result(None)

        manager.add_event_handler(on_event)
        await manager.info()  # a request round trip after subscribing
        os.kill(old_pid, signal.SIGKILL)
        death = await asyncio.wait_for(died, 60)
        assert death["restarting"] and not death["requested"]  # the nanny brings a kernel back...
        assert not await km.is_alive()  # ...but the one jupyter_client knew is dead
        if restarted_first:
            await asyncio.wait_for(restarted, 60)
        await km.restart_kernel(now=True)  # what jupyter_server's restarter does
        info = await manager.info()
        assert info["alive"] and info["pid"] != old_pid
        assert info["restart_count"] == 1  # the nanny's restart, adopted: not killed and redone
        await asyncio.wait_for(restarted, 60)
    assert await km.is_alive()
    assert {key: km.get_connection_info()[key] for key in PORTS} == ports
    assert nanny_of(km).nanny_pid == nanny.nanny_pid
    async with connected(km) as kc:
        reply, printed = await run(kc, "print('back')")
    assert printed == "back\n"
    assert (await nanny_info(km))["restart_count"] == 1


async def test_a_killed_kernel_is_reported_dead_and_restart_brings_it_back(km):
    """Killing through jupyter_client is final for the nanny too, until jupyter_client restarts the kernel."""
    await km._async_kill_kernel()
    assert not await km.is_alive()
    assert (await nanny_info(km))["state"] == "dead"
    await km.restart_kernel()
    assert await km.is_alive()
    async with connected(km) as kc:
        reply, _ = await run(kc, "1")
    assert reply["status"] == "ok"


async def test_the_kernel_gets_the_managers_environment_and_cwd_exactly(tmp_path):
    km = AsyncKernelManager(kernel_name=NANNY_SPEC)
    env = {**os.environ, "KN_PROBE": "a $b ${c}"}
    await km.start_kernel(env=env, cwd=str(tmp_path))
    try:
        async with connected(km) as kc:
            code = "import os; print(os.environ['KN_PROBE'], os.environ['KN_SPEC_VALUE'], os.getcwd(), sep='|')"
            _, printed = await run(kc, code)
    finally:
        await km.shutdown_kernel(now=True)
    assert printed == f"a $b ${{c}}|spec:base|{tmp_path}\n"


async def test_the_provisioner_can_be_the_default_for_kernelspecs_without_one():
    factory = KernelProvisionerFactory.instance()
    saved = factory.default_provisioner_name
    factory.default_provisioner_name = "kernel-nanny"
    km = AsyncKernelManager(kernel_name=LOCAL_SPEC)
    try:
        await km.start_kernel()
        assert isinstance(km.provisioner, NannyProvisioner)
        assert nanny_of(km).kernel_type == f"spec/{LOCAL_SPEC}"
        async with connected(km) as kc:
            reply, _ = await run(kc, "1")
        assert reply["status"] == "ok"
    finally:
        factory.default_provisioner_name = saved
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    assert km.kernel_id not in {k.name for k in list_running_kernels()}


async def test_the_managers_transport_encryption_is_the_nannys_curve_policy():
    km = AsyncKernelManager(kernel_name=NANNY_SPEC, transport_encryption="auto")
    await km.start_kernel()
    try:
        assert nanny_of(km).info.get("curve_publickey")
        assert km.get_connection_info().get("curve_publickey") == nanny_of(km).info["curve_publickey"]
        async with connected(km) as kc:
            reply, _ = await run(kc, "1")
        assert reply["status"] == "ok"
    finally:
        await km.shutdown_kernel(now=True)


async def test_the_ipc_transport_is_refused_with_a_clear_error():
    km = AsyncKernelManager(kernel_name=NANNY_SPEC, transport="ipc")
    with pytest.raises(ValueError, match="runs kernels on tcp.*'ipc'"):
        await km.start_kernel()
    assert not km.has_kernel
    assert km.kernel_id not in {k.name for k in list_running_kernels()}


async def test_a_missing_kernel_program_is_a_file_not_found_error_as_in_jupyter_client(tmp_path, monkeypatch):
    spec = tmp_path / "kernels" / "kn-missing-program"
    spec.mkdir(parents=True)
    metadata = {"kernel_provisioner": {"provisioner_name": "kernel-nanny"}}
    argv = ["/nonexistent/kn-kernel", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "x", "metadata": metadata}))
    monkeypatch.setenv("JUPYTER_PATH", f"{tmp_path}{os.pathsep}{os.environ['JUPYTER_PATH']}")
    before = running_ids()
    km = AsyncKernelManager(kernel_name="kn-missing-program")
    with pytest.raises(FileNotFoundError) as info:  # what jupyter_client's callers catch
        await km.start_kernel()
    assert isinstance(info.value, KernelExecutableNotFound)
    assert "'/nonexistent/kn-kernel' not found" in str(info.value) and "'kn-missing-program'" in str(info.value)
    assert running_ids() == before
