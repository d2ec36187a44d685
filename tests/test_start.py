"""The one launch path, with real kernels and nannies: start_kernel and what it is handed."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from kernel_nanny import (
    KernelClient,
    KernelExecution,
    KernelFinder,
    KernelProvider,
    LaunchError,
    LaunchRequest,
    LaunchResult,
    ManagerClient,
    NoSuchKernelType,
    start_kernel,
)
from kernel_nanny.client.running import list_running_kernels
from kernel_nanny.launch import launch_local
from kernel_nanny.launch.command import ipykernel_command

from .helpers import environment_with_ipykernel

QUIET = {"echo_output": False}
TIMEOUT = 60


class CommandProvider(KernelProvider):
    """A provider built in code whose kernels are commands (kernel_command): the nanny runs the command."""

    id = "mine"

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield "x", {"display_name": "mine", "language": "python"}

    def kernel_command(self, name: str):  # type: ignore[no-untyped-def]
        if name != "x":
            raise NoSuchKernelType(f"mine/{name}")
        return ipykernel_command(sys.executable)

    async def launch(self, name: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None):  # type: ignore[no-untyped-def]
        raise AssertionError("a command provider's kernels are run by the launcher, not by launch()")


class SelfLaunchingProvider(KernelProvider):
    """A provider built in code that launches its kernels itself (no command): the nanny is handed the provider."""

    id = "selfmade"

    def __init__(self, marker: str) -> None:
        self.marker = marker  # state a fresh entry-point instance would not have

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield "x", {"display_name": "self-launching", "language": "python"}

    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None
    ) -> LaunchResult:
        if name != "x":
            raise NoSuchKernelType(f"selfmade/{name}")
        params = dict(launch_params or {})
        params["env"] = {**(params.get("env") or {}), "KN_MARKER": self.marker}
        return await launch_local(
            ipykernel_command(sys.executable), kernel_name="selfmade/x", cwd=cwd, launch_params=params
        )


async def _run(info: dict[str, Any], code: str) -> str:
    async with KernelClient(info) as client:
        await client.wait_for_ready(timeout=TIMEOUT)
        result = await client.execute_interactive(code, timeout=TIMEOUT)
        return result.stream_text().strip()


@pytest.mark.parametrize("provider", [CommandProvider(), SelfLaunchingProvider("from-the-caller")])
async def test_a_finder_built_in_code_works_with_supervision(provider):
    finder = KernelFinder([provider])
    request = LaunchRequest(
        kernel_type=f"{provider.id}/x", params=QUIET, supervised=True, name=f"in-code-{provider.id}"
    )
    info, manager = await start_kernel(request, finder=finder)
    try:
        assert isinstance(manager, ManagerClient)
        [running] = [k for k in list_running_kernels() if k.name == f"in-code-{provider.id}"]
        assert running.kernel_type == f"{provider.id}/x"
        marker = await _run(info, "import os; print(os.environ.get('KN_MARKER', 'none'))")
        assert marker == ("from-the-caller" if isinstance(provider, SelfLaunchingProvider) else "none")
    finally:
        await manager.shutdown()
        await manager.cleanup()


async def test_an_unknown_type_names_the_known_ones_supervised_or_not():
    finder = KernelFinder([CommandProvider()])
    for supervised in (False, True):
        with pytest.raises(NoSuchKernelType) as error:
            await start_kernel(LaunchRequest(kernel_type="mine/nope", supervised=supervised), finder=finder)
        assert error.value.known == ["mine/x"]


async def test_the_launch_is_a_context_manager_that_shuts_down_even_when_the_body_raises():
    request = LaunchRequest(kernel_type="pyimport/kernel", params=QUIET, supervised=True, name="ctx")
    with pytest.raises(RuntimeError, match="boom"):
        async with start_kernel(request) as (info, manager):
            assert await manager.is_alive()
            raise RuntimeError("boom")
    assert not [k for k in list_running_kernels() if k.name == "ctx"]  # the nanny is gone, files removed
    async with start_kernel(LaunchRequest(kernel_type="pyimport/kernel", params=QUIET)) as (info, manager):
        pid = manager.pid  # type: ignore[attr-defined]
        assert await _run(info, "print(6 * 7)") == "42"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_supervised_launch_refuses_a_connection_file_of_its_own(tmp_path):
    request = LaunchRequest(
        kernel_type="pyimport/kernel", supervised=True, params={"connection_file": str(tmp_path / "k.json")}
    )
    with pytest.raises(LaunchError, match="connection_file.*unsupervised"):
        await start_kernel(request)
    assert not (tmp_path / "k.json").exists()


async def test_a_launch_is_awaited_once():
    launch = start_kernel(LaunchRequest(kernel_type="pyimport/kernel", params=QUIET))
    info, manager = await launch
    try:
        with pytest.raises(RuntimeError, match="already awaited"):
            await launch
    finally:
        await manager.shutdown(now=True)


async def test_a_python_environment_on_tcp_is_encrypted(tmp_path):
    """python= kernels run ipykernel's own command, which declares CurveZMQ: tcp is encrypted (it was not)."""
    env = environment_with_ipykernel(tmp_path / "env")
    async with KernelExecution(python=env, launch_params={"transport": "tcp"}) as execution:
        assert await execution.run(["print('in the env')"]) == 0
        info = execution.connection_info
        assert info is not None and info["transport"] == "tcp" and info.get("curve_publickey")
