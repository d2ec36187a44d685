"""Launching real ipykernel kernels through KernelFinder and the spec provider."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from kernel_nanny import KernelClient, KernelFinder, LaunchError, LocalKernelManager
from kernel_nanny.discovery.pyimport import PyImportProvider
from kernel_nanny.discovery.spec import KernelSpecProvider
from kernel_nanny.protocol import ipc_socket_paths, load_connection_info

IPYKERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
QUIET = {"echo_output": False}
TIMEOUT = 60

LAUNCH_SCRIPT = """\
import os
os.environ["KN_LAUNCH_SCRIPT"] = os.path.abspath(__file__)
from ipykernel.kernelapp import launch_new_instance
launch_new_instance()
"""


def write_spec(directory: Path, name: str, spec: dict) -> Path:
    folder = directory / name
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec))
    return folder


def finder_for(search_dir: Path) -> KernelFinder:
    return KernelFinder([KernelSpecProvider([str(search_dir)]), PyImportProvider()])


async def run(info: dict, code: str) -> str:
    async with KernelClient(info) as client:
        await client.wait_for_ready(timeout=TIMEOUT)
        result = await client.execute_interactive(code, timeout=TIMEOUT)
    assert result.ok, result.error
    return result.stream_text()


async def test_launch_through_finder_starts_a_kernel_with_a_private_connection_file(tmp_path):
    write_spec(tmp_path, "nannytest", {"argv": IPYKERNEL_ARGV, "display_name": "Test", "language": "python"})
    finder = finder_for(tmp_path)
    assert "spec/nannytest" in dict(finder.find_kernels())

    connection_info, manager = await finder.launch("spec/nannytest", launch_params=QUIET)
    try:
        assert isinstance(manager, LocalKernelManager)
        assert await manager.is_alive()
        assert connection_info["kernel_name"] == "spec/nannytest"
        path = Path(manager.connection_file)
        assert path.is_file()
        assert path.stat().st_mode & 0o777 == 0o600
        # jupyter_client may add the sticky bit to the runtime dir; only rwx bits matter here
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert load_connection_info(path) == connection_info
        assert await run(connection_info, "print(6 * 7)") == "42\n"
    finally:
        await manager.shutdown(now=True)

    assert not await manager.is_alive()
    assert not path.exists()
    assert not [p for p in ipc_socket_paths(connection_info) if p.exists()]


async def test_kernel_type_names_are_case_insensitive_at_launch(tmp_path):
    write_spec(tmp_path, "CasedKernel", {"argv": IPYKERNEL_ARGV})

    connection_info, manager = await finder_for(tmp_path).launch("spec/CASEDkernel", launch_params=QUIET)
    try:
        assert await run(connection_info, "print('up')") == "up\n"
    finally:
        await manager.shutdown(now=True)


async def test_kernelspec_env_is_expanded_and_reaches_the_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("KN_TEST_BASE", "from-the-launcher")
    monkeypatch.delenv("KN_TEST_UNSET", raising=False)
    write_spec(
        tmp_path,
        "withenv",
        {
            "argv": IPYKERNEL_ARGV,
            "env": {"X": "${KN_TEST_BASE}/sub", "Y": "keep ${KN_TEST_UNSET} as is", "Z": "plain"},
        },
    )

    connection_info, manager = await finder_for(tmp_path).launch("spec/withenv", launch_params=QUIET)
    try:
        out = await run(connection_info, "import os\nfor name in 'XYZ':\n    print(os.environ[name])")
    finally:
        await manager.shutdown(now=True)

    assert out.splitlines() == ["from-the-launcher/sub", "keep ${KN_TEST_UNSET} as is", "plain"]


async def test_resource_dir_placeholder_in_argv_is_the_spec_directory(tmp_path):
    argv = [sys.executable, "{resource_dir}/launch.py", "-f", "{connection_file}"]
    folder = write_spec(tmp_path, "scripted", {"argv": argv})
    (folder / "launch.py").write_text(LAUNCH_SCRIPT)

    connection_info, manager = await finder_for(tmp_path).launch("spec/scripted", launch_params=QUIET)
    try:
        out = await run(connection_info, "import os; print(os.environ['KN_LAUNCH_SCRIPT'])")
    finally:
        await manager.shutdown(now=True)

    assert Path(out.strip()) == (folder / "launch.py").resolve()


async def test_launch_params_reach_the_kernel(tmp_path):
    write_spec(tmp_path, "params", {"argv": IPYKERNEL_ARGV})
    workdir = tmp_path / "work"
    workdir.mkdir()

    connection_info, manager = await finder_for(tmp_path).launch(
        "spec/params", cwd=str(workdir), launch_params={**QUIET, "env": {"KN_EXTRA": "extra-value"}}
    )
    try:
        out = await run(connection_info, "import os; print(os.getcwd()); print(os.environ['KN_EXTRA'])")
    finally:
        await manager.shutdown(now=True)

    assert out.splitlines() == [str(workdir.resolve()), "extra-value"]


async def test_pyimport_kernel_launches_through_finder(tmp_path):
    connection_info, manager = await finder_for(tmp_path).launch("pyimport/kernel", launch_params=QUIET)
    try:
        out = await run(connection_info, "import sys; print(sys.executable)")
    finally:
        await manager.shutdown(now=True)

    assert os.path.realpath(out.strip()) == os.path.realpath(sys.executable)


@pytest.mark.parametrize("env", ["not a dict", ["A=1"]])
async def test_a_spec_with_a_non_object_env_fails_to_launch_clearly(tmp_path, env):
    write_spec(tmp_path, "badenv", {"argv": IPYKERNEL_ARGV, "env": env})

    with pytest.raises(LaunchError, match="env"):
        await finder_for(tmp_path).launch("spec/badenv", launch_params=QUIET)


async def test_a_spec_whose_program_is_missing_fails_clearly_and_leaves_no_files(tmp_path, runtime_dir):
    write_spec(tmp_path, "ghost", {"argv": [str(tmp_path / "no-such-kernel"), "-f", "{connection_file}"]})
    before = set(os.listdir(runtime_dir))

    with pytest.raises(LaunchError, match="no-such-kernel"):
        await finder_for(tmp_path).launch("spec/ghost", launch_params=QUIET)

    assert set(os.listdir(runtime_dir)) == before
