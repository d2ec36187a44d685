"""The jupyter_client facade: jupyter_client's own usage examples, with only the import changed.

Each example's code is kept as its source has it (cited above it); the
asserts around it check that it really ran, against real ipykernel kernels
behind real nannies, and that nothing is left running afterwards.
"""

from __future__ import annotations

import asyncio
import json
import queue
from subprocess import PIPE

import pytest

from kernel_nanny import KernelExecutableNotFound
from kernel_nanny.client.running import list_running_kernels
from kernel_nanny.compat import (
    AsyncKernelManager,
    AsyncMultiKernelManager,
    DuplicateKernelError,
    KernelManager,
    MultiKernelManager,
    kernel_type_for,
    run_kernel,
    start_new_async_kernel,
    start_new_kernel,
)


def running_ids() -> set[str]:
    return {k.kernel_id for k in list_running_kernels()}


@pytest.fixture(autouse=True)
def nothing_left_running():
    before = running_ids()
    yield
    assert running_ids() == before


def test_kernel_manager_and_client_methods_of_the_docs():
    # jupyter_client docs, api/manager.rst and api/client.rst: start_kernel, is_alive, client,
    # start_channels, execute, get_shell_msg, get_iopub_msg, interrupt_kernel, restart_kernel,
    # shutdown_kernel; the order is the one every jupyter_client user writes.
    km = KernelManager()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready()
    msg_id = kc.execute("print('Hello, World!')")
    reply = kc.get_shell_msg()
    # -- end of the example's first half
    assert km.kernel_id in running_ids()  # behind a nanny: 'kernel-nanny ps' lists it
    assert km.is_alive()
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"
    outputs = []
    while True:
        msg = kc.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        outputs.append((msg["msg_type"], msg["content"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    assert ("stream", {"name": "stdout", "text": "Hello, World!\n"}) in outputs
    assert outputs[0] == ("status", {"execution_state": "busy"})  # nothing of wait_for_ready() leaks in
    with pytest.raises(queue.Empty):
        kc.get_shell_msg(timeout=0.1)
    kc.execute_interactive("kept = 1", output_hook=lambda msg: None)
    km.restart_kernel(now=True)
    kc.wait_for_ready()
    seen: list[dict] = []
    gone = kc.execute_interactive("'kept' in dir()", output_hook=seen.append)
    assert gone["content"]["status"] == "ok"
    assert [m["content"]["data"]["text/plain"] for m in seen if m["msg_type"] == "execute_result"] == ["False"]
    # -- the example's end
    kc.stop_channels()
    km.shutdown_kernel()
    assert not km.is_alive() and not km.has_kernel


def test_run_kernel_of_the_docs(capsys):
    # jupyter_client docs, api/manager.rst "Utility functions": run_kernel; output printed by
    # execute_interactive's default output hook, as in jupyter_client.
    with run_kernel() as kc:
        reply = kc.execute_interactive("import sys; print(sys.argv[0].endswith('ipykernel_launcher.py')); 6 * 7")
    assert reply["content"]["status"] == "ok"
    assert capsys.readouterr().out == "True\n42\n"


def test_start_new_kernel_with_extra_arguments():
    # jupyter_client manager.py: start_new_kernel(startup_timeout, kernel_name, **kwargs);
    # extra_arguments are added to the kernelspec's argv, as jupyter_client's format_kernel_cmd does.
    km, kc = start_new_kernel(kernel_name="python3", extra_arguments=["--HistoryManager.enabled=False"])
    try:
        texts = []
        kc.execute_interactive(
            "import sys; print(sys.argv[-1])", output_hook=lambda msg: texts.append(msg["content"].get("text"))
        )
        assert texts == ["--HistoryManager.enabled=False\n"]
        assert km.kernel_type == "spec/python3" and km.kernel_id in running_ids()
    finally:
        kc.stop_channels()
        km.shutdown_kernel()


def test_multikernelmanager_lifecycle_of_jupyter_client():
    # jupyter_client tests/test_multikernelmanager.py, TestKernelManager._run_lifecycle (the usage
    # the MultiKernelManager section of docs/api/manager.rst describes), verbatim:
    km = MultiKernelManager()
    kid = km.start_kernel(stdout=PIPE, stderr=PIPE)
    assert km.is_alive(kid)
    assert km.get_kernel(kid).ready.done()
    assert kid in km
    assert kid in km.list_kernel_ids()
    assert len(km) == 1, f"{len(km)} != {1}"
    km.restart_kernel(kid, now=True)
    assert km.is_alive(kid)
    assert kid in km.list_kernel_ids()
    km.interrupt_kernel(kid)
    k = km.get_kernel(kid)
    kc = k.client()
    assert isinstance(k, KernelManager)
    km.shutdown_kernel(kid, now=True)
    assert kid not in km, f"{kid} not in {km}"
    kc.stop_channels()


def test_multikernelmanager_shutdown_all_and_ids():
    # jupyter_client tests/test_multikernelmanager.py, test_shutdown_all and _run_lifecycle(test_kid=...):
    km = MultiKernelManager()
    kid = km.start_kernel(stdout=PIPE, stderr=PIPE, kernel_id="my-kernel")
    assert kid == "my-kernel"
    assert km.get_kernel(kid).kernel_id in running_ids()
    with pytest.raises(DuplicateKernelError):
        km.start_kernel(kernel_id="my-kernel")
    with pytest.raises(KeyError):
        km.get_kernel("no-such-kernel")
    km.shutdown_all()
    assert kid not in km
    # shutdown again is okay, because we have no kernels
    km.shutdown_all()
    assert km.remove_kernel("no-such-kernel") is None


async def test_async_multikernelmanager_lifecycle_of_jupyter_client():
    # jupyter_client tests/test_multikernelmanager.py, TestAsyncKernelManager._run_lifecycle, verbatim:
    km = AsyncMultiKernelManager()
    kid = await km.start_kernel(stdout=PIPE, stderr=PIPE)
    assert await km.is_alive(kid)
    assert kid in km
    assert kid in km.list_kernel_ids()
    assert len(km) == 1, f"{len(km)} != {1}"
    # Ensure we can interrupt during a restart.
    fut = km.restart_kernel(kid, now=True)
    await km.interrupt_kernel(kid)
    assert await km.is_alive(kid)
    await fut
    assert kid in km.list_kernel_ids()
    k = km.get_kernel(kid)
    assert isinstance(k, AsyncKernelManager)
    await km.shutdown_kernel(kid, now=True)
    assert kid not in km, f"{kid} not in {km}"


async def test_start_new_async_kernel_and_ready_of_the_docs():
    # jupyter_client manager.py: start_new_async_kernel; docs/pending-kernels.rst: "await kernel_manager.ready".
    km, kc = await start_new_async_kernel(kernel_name="pyimport/kernel")
    kernel_manager = km
    await kernel_manager.ready
    assert km.ready.done() and km.kernel_id in running_ids()
    reply = await kc.execute_interactive("x = 2 ** 10", output_hook=lambda msg: None)
    assert reply["content"]["status"] == "ok"
    info = await kc.kernel_info(reply=True)
    assert info["content"]["language_info"]["name"] == "python"
    kc.stop_channels()
    await km.shutdown_kernel()
    assert not await km.is_alive()


async def test_interrupt_and_signal_reach_the_kernel():
    km = AsyncKernelManager(kernel_name="pyimport/kernel")
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready()
        execution = asyncio.ensure_future(
            kc.execute_interactive(
                "import time; print('sleeping', flush=True); time.sleep(60)", output_hook=lambda msg: None
            )
        )
        # Interrupt once the code runs (ipykernel ignores SIGINT between requests): it printed.
        while (await kc.get_iopub_msg(timeout=30))["content"].get("text") != "sleeping\n":
            pass
        await km.interrupt_kernel()
        reply = await asyncio.wait_for(execution, 30)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        events = km.manager.events()
        await events.__anext__()  # the nanny's greeting: from now on no event is missed
        await km.signal_kernel(9)
        async for event in events:
            if event.msg_type == "kernel_died":
                break
        assert event.content["signal"] == 9  # and the nanny restarts it, as jupyter_client's autorestart would
        await events.aclose()
    finally:
        kc.stop_channels()
        await km.shutdown_kernel(now=True)


def test_errors_are_jupyter_clients():
    km = KernelManager()
    with pytest.raises(RuntimeError, match="No kernel is running"):
        km.interrupt_kernel()
    with pytest.raises(RuntimeError, match="start_kernel"):
        km.restart_kernel()
    with pytest.raises(TypeError, match="start_kernel\\(\\) takes no preexec_fn"):
        km.start_kernel(preexec_fn=None)
    with pytest.raises(TypeError, match="kernel_spec_manager"):
        KernelManager(kernel_spec_manager=None)
    km.close()
    assert kernel_type_for("python") == "spec/python3" and kernel_type_for("docker/py") == "docker/py"


def test_a_missing_kernel_program_is_a_file_not_found_error_as_in_jupyter_client(tmp_path, monkeypatch):
    spec = tmp_path / "kernels" / "kn-missing-program"
    spec.mkdir(parents=True)
    argv = ["/nonexistent/kn-kernel", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "x", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    km = KernelManager("kn-missing-program")
    with pytest.raises(FileNotFoundError) as info:  # what jupyter_client's callers catch
        km.start_kernel()
    assert isinstance(info.value, KernelExecutableNotFound)
    assert "'/nonexistent/kn-kernel' not found" in str(info.value) and "'kn-missing-program'" in str(info.value)
    assert not km.has_kernel
    assert isinstance(km.ready.exception(), FileNotFoundError)  # as jupyter_client's ready future
    km.close()


def test_the_async_classes_work_from_one_event_loop_to_the_next():
    # jupyter_client code drives one manager from several event loops: an asyncio.run() per step (so
    # here), or jupyter_client's synchronous wrappers, which switch loops themselves.
    km = AsyncKernelManager()
    asyncio.run(km.start_kernel())
    kc = km.client()

    async def connect() -> None:
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)

    try:
        asyncio.run(connect())
        outputs: list[dict] = []
        reply = asyncio.run(kc.execute_interactive("print(6 * 7)", timeout=60, output_hook=outputs.append))
        assert reply["content"]["status"] == "ok"
        assert [m["content"]["text"] for m in outputs if m["msg_type"] == "stream"] == ["42\n"]
        msg_id = kc.execute("1 + 1")
        assert asyncio.run(kc.get_shell_msg(timeout=60))["parent_header"]["msg_id"] == msg_id
        asyncio.run(km.interrupt_kernel())
        asyncio.run(km.restart_kernel())
        assert asyncio.run(km.is_alive())
    finally:
        kc.stop_channels()
        asyncio.run(km.shutdown_kernel())
    assert not km.has_kernel
