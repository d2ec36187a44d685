"""KernelExecution: commands run to completion in real kernels, group kernels reused across processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import venv
from collections.abc import Callable

import pytest

from kernel_nanny import KernelDied, LaunchError, NoSuchKernelType
from kernel_nanny.client.running import find_running_kernel, list_running_kernels
from kernel_nanny.execution import BlockingKernelExecution, KernelExecution, OutputPrinter
from kernel_nanny.protocol import Message
from tests.helpers import SLEEP, environment_with_ipykernel


def collector() -> tuple[list[tuple[str, str]], Callable[[Message], None]]:
    seen: list[tuple[str, str]] = []

    def hook(msg: Message) -> None:
        content = msg.content
        text = content.get("text") or content.get("data", {}).get("text/plain") or content.get("ename", "")
        seen.append((msg.msg_type, text))

    return seen, hook


@pytest.fixture
def group(request):
    """A group key of this test; its kernel is stopped afterwards."""
    key = f"t{os.getpid()}-{request.node.name[:30]}"
    yield key
    for kernel in list_running_kernels():
        if (kernel.name or "").startswith(f"{key}."):
            subprocess.run([sys.executable, "-m", "kernel_nanny", "stop", kernel.kernel_id, "--now"], check=True)


async def test_commands_run_in_order_and_stop_at_the_first_error(runtime_dir):
    seen, hook = collector()
    async with KernelExecution("pyimport/kernel") as execution:
        assert await execution.run(["x = 6", "print(x * 7)", "x"], output_hook=hook) == 0
        assert seen == [("stream", "42\n"), ("execute_result", "6")]
        seen.clear()
        assert await execution.run(["print('first')", "1 / 0", "print('never')"], output_hook=hook) == 1
        assert seen == [("stream", "first\n"), ("error", "ZeroDivisionError")]
        assert execution.started_new is False  # the same kernel served both runs
    # a kernel launched for the execution alone is gone with it
    assert [f for f in os.listdir(runtime_dir) if f.startswith("kernel-")] == []


async def test_group_kernel_is_found_again_by_another_process(group):
    # Another process starts the group's kernel and leaves state in it...
    script = textwrap.dedent(
        f"""
        from kernel_nanny.execution import BlockingKernelExecution
        with BlockingKernelExecution("spec/python3", group={group!r}) as execution:
            assert execution.run(["shared = 'from the other process'"]) == 0
            print(execution.name, execution.started_new)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    name, started = done.stdout.split()
    assert started == "True"
    kernel = find_running_kernel(name)  # left running behind its nanny, under the deterministic name
    assert kernel.kernel_type == "spec/python3"
    # ...and this one finds it by its connection file and reuses it.
    seen, hook = collector()
    async with KernelExecution("spec/python3", group=group) as execution:
        assert execution.name == name
        assert await execution.run(["print(shared)"], output_hook=hook) == 0
        assert execution.started_new is False and execution.kernel_id == kernel.kernel_id
    assert seen == [("stream", "from the other process\n")]
    assert find_running_kernel(name).kernel_id == kernel.kernel_id  # still running


async def test_a_dead_group_kernel_is_replaced(group):
    async with KernelExecution("pyimport/kernel", group=group) as execution:
        assert await execution.run("state = 1") == 0
        first = execution.kernel_id
        await execution.kill()  # the nanny stays but does not restart a killed kernel
    seen, hook = collector()
    async with KernelExecution("pyimport/kernel", group=group) as execution:
        assert await execution.run("print('state' in dir())", output_hook=hook) == 0
        assert execution.started_new and execution.kernel_id != first
    assert seen == [("stream", "False\n")]
    assert first not in {k.kernel_id for k in list_running_kernels()}  # the old nanny was retired


async def test_switches_reach_the_kernel_and_make_another_group_kernel(group):
    seen, hook = collector()
    switch = "--HistoryManager.enabled=False"
    plain = KernelExecution("spec/python3", group=group)
    switched = KernelExecution("spec/python3", group=group, switches=[switch], env={"KN_TEST_VAR": "set"})
    assert plain.name != switched.name
    async with switched:
        code = "import os, sys; print(sys.argv[-1], os.environ['KN_TEST_VAR'])"
        assert await switched.run(code, output_hook=hook) == 0
    assert seen == [("stream", f"{switch} set\n")]


async def test_stop_interrupts_then_kills():
    async with KernelExecution("pyimport/kernel") as execution:
        # A command that obeys the interrupt: it ends with KeyboardInterrupt, the kernel lives on.
        seen, hook, printed = _watching("go\n")
        run = asyncio.ensure_future(execution.run([SLEEP], output_hook=hook))
        await asyncio.wait_for(printed.wait(), 30)
        await execution.stop(timeout=30)
        assert await run == 1
        assert seen[-1] == ("error", "KeyboardInterrupt")
        # One that ignores it: killed after the timeout; the run ends with 1, not KernelDied.
        seen, hook, printed = _watching("deaf\n")
        code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('deaf', flush=True)\n"
        run = asyncio.ensure_future(execution.run([code + "time.sleep(60)"], output_hook=hook))
        await asyncio.wait_for(printed.wait(), 30)
        await execution.stop(timeout=0.5)
        assert await run == 1
        # The next run gets a new kernel.
        assert await execution.run("1") == 0 and execution.started_new


def _watching(text: str) -> tuple[list[tuple[str, str]], Callable[[Message], None], asyncio.Event]:
    """A collector whose event is set once ``text`` is printed, so the test waits on that, not on a poll."""
    seen, collect = collector()
    printed = asyncio.Event()

    def hook(msg: Message) -> None:
        collect(msg)
        if seen[-1] == ("stream", text):
            printed.set()

    return seen, hook, printed


async def test_kernel_death_is_an_error_not_a_return_code():
    async with KernelExecution("pyimport/kernel") as execution:
        with pytest.raises(KernelDied, match="exit code 3"):
            await execution.run(["import os; os._exit(3)", "print('never')"])


@pytest.fixture(scope="module")
def venv_with_ipykernel(tmp_path_factory):
    return environment_with_ipykernel(tmp_path_factory.mktemp("envs") / "with-ipykernel")


async def test_python_environment_kernel(venv_with_ipykernel, group):
    seen, hook = collector()
    async with KernelExecution(python=venv_with_ipykernel, group=group) as execution:
        assert await execution.run("import sys; print(sys.prefix)", output_hook=hook) == 0
        assert execution.label == f"python:{venv_with_ipykernel}"
        assert find_running_kernel(execution.name).kernel_type == execution.label
    assert seen == [("stream", f"{venv_with_ipykernel}\n")]


async def test_python_environment_errors_are_clear(tmp_path):
    bare = tmp_path / "bare"
    venv.create(bare, system_site_packages=False, with_pip=False)
    with pytest.raises(LaunchError, match=r"cannot run a kernel: .*ipykernel.*bin/python -m pip install ipykernel"):
        async with KernelExecution(python=bare) as execution:
            await execution.run("1")
    with pytest.raises(LaunchError, match="has no Python"):
        async with KernelExecution(python=tmp_path) as execution:
            await execution.run("1")
    with pytest.raises(LaunchError, match="no Python environment at"):
        async with KernelExecution(python=tmp_path / "missing") as execution:
            await execution.run("1")
    assert list_running_kernels() == [] or all(k.kernel_type != f"python:{bare}" for k in list_running_kernels())


async def test_bad_input_is_clear():
    with pytest.raises(ValueError, match="kernel type or python="):
        KernelExecution()
    with pytest.raises(ValueError, match="group key"):
        KernelExecution("pyimport/kernel", group="a/b")
    with pytest.raises(NoSuchKernelType, match="spec/nope"):
        async with KernelExecution("spec/nope", switches=["-x"]) as execution:
            await execution.run("1")


def test_blocking_twin_and_output_printer(capsys):
    with BlockingKernelExecution("pyimport/kernel") as execution:
        assert execution.run(["print('out')", "'result'"], output_hook=OutputPrinter()) == 0
    assert capsys.readouterr().out == "out\n'result'\n"
