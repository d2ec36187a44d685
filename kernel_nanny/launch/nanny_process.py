"""Start a detached nanny process for a kernel type and connect a ManagerClient to it.

The nanny runs ``python -m kernel_nanny.nanny`` in its own session, forks
away from us, launches the kernel and reports back on its stdout: the path of
its connection file once the kernel is ready, or why it could not start.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

from .._exceptions import LaunchError, NoSuchKernelType
from .._tasks import wait_for
from ..client.manager import ManagerClient
from ..client.running import list_running_kernels
from ..config import RestartPolicy
from ..paths import nanny_state_dir
from ..protocol import LaunchResult, load_connection_info, new_id
from .base_manager import format_output_tail
from .command import KernelCommand
from .params import DEFAULT_STARTUP_TIMEOUT

__all__ = ["start_nanny"]


async def start_nanny(
    type_id: str,
    *,
    name: str | None = None,
    cwd: str | None = None,
    launch_params: Mapping[str, Any] | None = None,
    restart_policy: RestartPolicy | None = None,
    heartbeat_interval: float | None = None,
    command: KernelCommand | None = None,
) -> LaunchResult:
    """Launch ``type_id`` behind a new nanny; returns ``(connection_info, ManagerClient)`` once ready.

    ``name`` (optional) must be unique among the running kernels and contain no ``/``.
    With ``command``, the nanny runs exactly that command (a kernelspec that
    jupyter_client resolved, a Python environment's ipykernel) and ``type_id``
    only labels it. This is for local callers: the daemon's API launches
    kernel types only, so its clients cannot make it run arbitrary programs.
    """
    if name is not None:
        if not name or "/" in name:
            raise LaunchError(f"a kernel name must be non-empty and contain no '/': {name!r}")
        taken = [k.kernel_id for k in list_running_kernels() if k.name == name]
        if taken:
            raise LaunchError(f"the name {name!r} is taken by kernel {taken[0][:12]}")
    kernel_id = new_id()
    state_dir = nanny_state_dir(kernel_id)
    argv = [
        sys.executable,
        "-m",
        "kernel_nanny.nanny",
        "--kernel-id",
        kernel_id,
        "--type",
        type_id,
        "--launch-params",
        json.dumps(dict(launch_params or {})),
        "--restart-policy",
        json.dumps((restart_policy or RestartPolicy()).to_dict()),
    ]
    if command is not None:
        argv += ["--command", json.dumps(command.to_dict())]
    for flag, value in (("--name", name), ("--cwd", cwd), ("--heartbeat-interval", heartbeat_interval)):
        if value is not None:
            argv += [flag, str(value)]
    startup_timeout = float(dict(launch_params or {}).get("startup_timeout", DEFAULT_STARTUP_TIMEOUT))
    nanny_log = state_dir / "nanny.log"
    with open(nanny_log, "ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            start_new_session=True,
        )
    assert process.stdout is not None
    try:
        # One line, then the nanny closes its stdout: read to the end, so the pipe is done with.
        output = await wait_for(process.stdout.read(), startup_timeout + 10)
    except asyncio.TimeoutError:
        raise LaunchError(f"the nanny for {type_id} did not report within {startup_timeout + 10:g} s") from None
    finally:
        await process.wait()  # the nanny forked away; this reaps the short-lived parent
    line = output.split(b"\n", 1)[0]
    try:
        report = json.loads(line)
    except ValueError:
        try:
            tail = format_output_tail(nanny_log.read_text(errors="replace"), intro="its log")
        except OSError:
            tail = ""
        raise LaunchError(f"the nanny for {type_id} exited without reporting{tail}") from None
    if report.get("status") != "ready":
        if report.get("ename") == "NoSuchKernelType":
            raise NoSuchKernelType(type_id, [])
        raise LaunchError(report.get("evalue") or f"the nanny for {type_id} failed")
    info = load_connection_info(report["connection_file"])
    return LaunchResult(info, ManagerClient(info))
