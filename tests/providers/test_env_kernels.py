"""Kernels of Python environments, started for real: activated as a shell would, everywhere a type is taken.

Each kernel reports what it sees (``sys.prefix``, its environment variables,
its pid and process group); every kernel a test starts is stopped by it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from kernel_nanny import KernelClient, KernelFinder, KernelNannyError, LaunchRequest, start_kernel
from kernel_nanny.daemon.keys import DaemonKeys
from kernel_nanny.discovery.environments import CondaProvider, PixiProvider, UvProvider, VenvProvider
from kernel_nanny.execution import KernelExecution
from tests.daemons import GATEWAY_CONFIG, RunningDaemon
from tests.helpers import CLI, interrupted
from tests.jupyter_api import JupyterAPI
from tests.providers.environments import (
    add_activate_script,
    add_kernelspec,
    home_fixture,  # noqa: F401 (the fixture "home")
    make_conda_env,
    make_uv_project,
    make_venv,
    write_environments_txt,
)

VARIABLES = (
    "PATH",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "VIRTUAL_ENV",
    "PIXI_ENVIRONMENT_NAME",
    "FROM_ACTIVATE",
    "SPEC_VAR",
)
#: Code that prints, as JSON, what the kernel sees of its environment.
REPORT = (
    "import json, os, sys\n"
    "print(json.dumps({'prefix': sys.prefix, 'executable': sys.executable, 'pid': os.getpid(), "
    f"'pgid': os.getpgid(0), 'env': {{k: os.environ.get(k) for k in {VARIABLES!r}}}}}))"
)


def finder() -> KernelFinder:
    return KernelFinder([CondaProvider(), VenvProvider(), UvProvider(), PixiProvider()])


async def report(info: Mapping[str, Any]) -> dict[str, Any]:
    async with KernelClient(dict(info)) as client:
        await client.wait_for_ready(timeout=60)
        result = await client.execute_interactive(REPORT, timeout=60)
    assert result.ok, result.error
    return dict(json.loads(result.stream_text()))


async def launched_report(type_id: str) -> dict[str, Any]:
    """Start ``type_id`` here, report what it sees, and stop it."""
    info, manager = await finder().launch(type_id, launch_params={"echo_output": False})
    try:
        return await report(info)
    finally:
        assert manager is not None
        await manager.shutdown(now=True)


def first_path_entry(seen: dict[str, Any]) -> str:
    return str(seen["env"]["PATH"].split(os.pathsep)[0])


async def test_a_venv_kernel_runs_the_venvs_python_activated(home):
    env = make_venv(home / ".virtualenvs" / "work", ipykernel=True)
    seen = await launched_report("venv/work")
    assert seen["prefix"] == str(env) and seen["executable"] == str(env / "bin" / "python")
    assert seen["env"]["VIRTUAL_ENV"] == str(env)
    assert first_path_entry(seen) == str(env / "bin")
    assert seen["env"]["CONDA_PREFIX"] is None


@pytest.fixture
def conda_env(home: Path) -> Path:
    """A conda-layout prefix with activate.d scripts, listed in conda's environments.txt.

    conda's package channels cannot be reached from the test machines: the
    prefix is a venv given ``conda-meta/`` (see tests/providers/environments.py).
    The scripts do what would break a careless wrapper: one sets ``$@`` and
    shifts, as a script's own argument handling may.
    """
    env = make_conda_env(home / "envs" / "geo")
    add_activate_script(env, "10-geo.sh", 'export FROM_ACTIVATE="seen:$CONDA_PREFIX"\n')
    add_activate_script(env, "20-args.sh", "set -- one two\nshift\n")
    # what `conda env config vars set SPEC_VAR=from-state` keeps, and `conda activate` sets
    (env / "conda-meta" / "state").write_text(json.dumps({"env_vars": {"SPEC_VAR": "from-state"}}))
    write_environments_txt(home, env)
    return env


async def test_a_conda_kernel_sources_activate_d_and_keeps_its_pid_and_process_group(conda_env):
    info, manager = await finder().launch("conda/geo", launch_params={"echo_output": False})
    try:
        seen = await report(info)
        assert seen["env"]["FROM_ACTIVATE"] == f"seen:{conda_env}"  # sourced with CONDA_PREFIX already set
        assert seen["env"]["CONDA_PREFIX"] == str(conda_env) and seen["env"]["CONDA_DEFAULT_ENV"] == "geo"
        assert seen["env"]["SPEC_VAR"] == "from-state"
        assert seen["prefix"] == str(conda_env) and first_path_entry(seen) == str(conda_env / "bin")
        # The shell exec'd the kernel: the process started is the kernel, leading its own group.
        assert seen["pid"] == manager.pid == seen["pgid"]  # type: ignore[union-attr]
        # ...so an interrupt reaches the kernel's running code, and the kernel lives on.
        assert (await interrupted(info, manager)).error["ename"] == "KeyboardInterrupt"  # type: ignore[arg-type,index]
        assert (await report(info))["pid"] == seen["pid"]
    finally:
        await manager.shutdown(now=True)  # type: ignore[union-attr]


async def test_an_interrupt_through_the_nanny_reaches_a_wrapped_kernel(conda_env):
    request = LaunchRequest(kernel_type="conda/geo", supervised=True, params={"echo_output": False})
    async with start_kernel(request, use_daemon=False) as (info, manager):
        assert (await report(info))["env"]["FROM_ACTIVATE"] == f"seen:{conda_env}"
        assert (await interrupted(info, manager)).error["ename"] == "KeyboardInterrupt"
        await manager.shutdown()


async def test_a_kernelspec_inside_an_environment_runs_with_the_environments_python(home):
    env = make_conda_env(home / ".conda" / "envs" / "specs")
    add_kernelspec(
        env,
        "python3",  # as `ipykernel install --sys-prefix` writes it: a bare "python"
        {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "env": {"SPEC_VAR": "from-spec"}},
    )
    seen = await launched_report("conda/specs/python3")
    assert seen["prefix"] == str(env)
    assert seen["env"]["SPEC_VAR"] == "from-spec" and seen["env"]["CONDA_PREFIX"] == str(env)


async def test_a_uv_project_kernel_runs_its_dot_venv(home):
    venv = make_uv_project(home / "projects" / "shop", ipykernel=True)
    seen = await launched_report("uv/shop")
    assert seen["prefix"] == str(venv) and seen["env"]["VIRTUAL_ENV"] == str(venv)


async def test_a_pixi_environment_kernel_runs_activated(home):
    """pixi is not on PyPI: the project's ``.pixi/envs/<env>`` is a conda-layout prefix made by hand."""
    project = home / "code" / "lab"
    project.mkdir(parents=True)
    (project / "pixi.toml").write_text('[workspace]\nname = "lab"\n')
    env = make_conda_env(project / ".pixi" / "envs" / "gpu")
    add_activate_script(env, "x.sh", "export FROM_ACTIVATE=pixi\n")
    seen = await launched_report("pixi/lab/gpu")
    assert seen["prefix"] == str(env) and seen["env"]["CONDA_PREFIX"] == str(env)
    assert seen["env"]["PIXI_ENVIRONMENT_NAME"] == "gpu" and seen["env"]["FROM_ACTIVATE"] == "pixi"


def test_exec_runs_code_in_an_environment_kernel(conda_env):
    result = subprocess.run(
        [*CLI, "exec", "conda/geo", "-c", "import os, sys; print(sys.prefix, os.environ['FROM_ACTIVATE'])"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{conda_env} seen:{conda_env}\n"


def test_start_runs_an_environment_kernel_behind_a_nanny(home):
    env = make_venv(home / ".venvs" / "served", ipykernel=True)
    name = f"env-{os.getpid()}"
    started = subprocess.run(
        [*CLI, "start", "venv/served", "--name", name], capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    try:
        ps = subprocess.run([*CLI, "ps"], capture_output=True, text=True, timeout=60).stdout
        assert "venv/served" in ps
        ran = subprocess.run(
            [*CLI, "exec", name, "-c", "import os; print(os.environ['VIRTUAL_ENV'])"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == f"{env}\n"
    finally:
        stopped = subprocess.run([*CLI, "stop", name], capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr


async def test_kernel_execution_takes_an_environment_type(home):
    env = make_venv(home / ".virtualenvs" / "runner", ipykernel=True)
    seen: list[str] = []
    async with KernelExecution("venv/runner", use_daemon=False) as execution:
        code = await execution.run(
            ["import sys", "print(sys.prefix)"], output_hook=lambda msg: seen.append(msg.content.get("text", ""))
        )
    assert code == 0 and "".join(seen) == f"{env}\n"


@pytest.fixture
async def env_daemon(tmp_path, monkeypatch):
    """``await env_daemon(config)``: a daemon in runtime and state directories of this test's own (it inherits the
    test's HOME: conda's list there names the environment). Afterwards the daemons stop first (a running one
    would refill its pools), then every nanny of the runtime directory, pooled ones too."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    started: list[RunningDaemon] = []

    async def start(config: str = "") -> RunningDaemon:
        daemon = RunningDaemon(tmp_path, config)
        await daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.running:
            assert await daemon.stop() == 0
    subprocess.run([*CLI, "stop", "--all", "--now"], capture_output=True, timeout=120, check=True)


async def test_the_daemon_launches_environment_kernels(conda_env, env_daemon):
    daemon = await env_daemon()
    async with daemon.client() as client:
        listed = {entry["id"]: entry for entry in await client.list_kernel_types()}
        assert listed["conda/geo"]["env_path"] == str(conda_env)
        info, manager = await client.launch("conda/geo", name="env-daemon")
        seen = await report(info)
        assert seen["env"]["FROM_ACTIVATE"] == f"seen:{conda_env}" and seen["prefix"] == str(conda_env)
        await manager.cleanup()
        await client.shutdown_kernel("env-daemon")


async def test_the_jupyter_provisioner_runs_an_environment_type(conda_env, tmp_path, monkeypatch):
    """A kernelspec that selects the provisioner with ``kernel_type`` (what JupyterLab starts); interrupts reach it."""
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = tmp_path / "jupyter" / "kernels" / "geo-nanny"
    spec_dir.mkdir(parents=True)
    provisioner = {"provisioner_name": "kernel-nanny", "config": {"kernel_type": "conda/geo"}}
    spec = {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "geo"}
    (spec_dir / "kernel.json").write_text(json.dumps({**spec, "metadata": {"kernel_provisioner": provisioner}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    km = AsyncKernelManager(kernel_name="geo-nanny")
    await km.start_kernel()
    try:
        info = km.get_connection_info(session=False)
        seen = await report({**info, "key": info["key"].decode() if isinstance(info["key"], bytes) else info["key"]})
        assert seen["prefix"] == str(conda_env) and seen["env"]["FROM_ACTIVATE"] == f"seen:{conda_env}"
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            msg_id = kc.execute("import time\nprint('go', flush=True)\ntime.sleep(60)")
            while True:  # the cell's own output proves its code runs
                msg = await kc.get_iopub_msg(timeout=60)
                if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
                    break
            await km.interrupt_kernel()
            reply = await kc.get_shell_msg(timeout=60)
            assert reply["content"]["ename"] == "KeyboardInterrupt"
        finally:
            kc.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)


async def test_an_activate_script_with_a_syntax_error_fails_the_start_with_the_shells_message(home):
    env = make_conda_env(home / ".conda" / "envs" / "bad")
    add_activate_script(env, "broken.sh", "if then\n")
    with pytest.raises(KernelNannyError) as raised:
        await finder().launch("conda/bad", launch_params={"echo_output": False})
    assert "broken.sh" in str(raised.value) and "Syntax error" in str(raised.value)


async def test_the_daemons_gateway_offers_environments_as_kernelspecs(conda_env, env_daemon):
    """What JupyterLab sees in gateway mode: ``conda--geo`` among the kernelspecs, and a kernel of it activated."""
    daemon = await env_daemon(GATEWAY_CONFIG)
    async with daemon.client() as client:
        api = JupyterAPI((await client.info())["gateway_url"], DaemonKeys(daemon.state_dir).gateway_token())
    try:
        spec = (await api.call("GET", "/api/kernelspecs"))["kernelspecs"]["conda--geo"]
        assert spec["spec"]["display_name"].endswith("(conda env geo)")
        assert spec["spec"]["metadata"]["kernel_nanny"]["type_id"] == "conda/geo"
        kernel = await api.start_kernel("conda--geo")
        channels = await api.channels(kernel["id"])
        await channels.ready()
        ran = await channels.execute("import os, sys; print(sys.prefix, os.environ['FROM_ACTIVATE'])")
        assert ran.stdout == f"{conda_env} seen:{conda_env}\n"
        await api.call("DELETE", f"/api/kernels/{kernel['id']}", expect=204)
    finally:
        api.close()


async def test_a_daemon_pool_keeps_an_environment_kernel_ready(conda_env, env_daemon):
    daemon = await env_daemon('[pool."conda/geo"]\nsize = 1\n')
    async with daemon.client() as client:
        assert (await client.pools(wait=120))["settled"]
        info, manager = result = await client.launch("conda/geo", name="env-pooled")
        assert result.pool == "hit"
        seen = await report(info)
        assert seen["env"]["FROM_ACTIVATE"] == f"seen:{conda_env}" and seen["prefix"] == str(conda_env)
        await manager.cleanup()
