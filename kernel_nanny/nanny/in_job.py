"""``python -m kernel_nanny.nanny.in_job``: the kernel-nanny side of a batch job (a Slurm job's last line).

The launcher submits a job whose script sets up the environment and then
``exec``\\ s this module with :data:`JOB_ENV` describing the kernel. It starts a
nanny here, in the foreground (the job lasts as long as the nanny: a nanny
that detached would escape the scheduler's process tracking), on tcp with
ports the operating system picks on this node, CurveZMQ required. Then it
reports the nanny's connection info to the launcher through the one-shot
callback (:mod:`kernel_nanny.launch.callback`), or the error that kept the
kernel from starting, and waits for the nanny to exit, passing on the
scheduler's SIGTERM (scancel, the time limit). Its exit status is the nanny's.

The in-job nanny makes no automatic restarts: the launcher's side (a local
nanny) decides those, and asks for a restart in place, inside this job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any

from .._exceptions import KernelNannyError, LaunchError
from ..config import RestartPolicy
from ..defaults import NANNY_REPORT_MARGIN
from ..discovery import KernelFinder
from ..launch.callback import call_back
from ..launch.job import JOB_ENV, JobKernel, node_address
from ..launch.params import LaunchParams
from ..launch.request import LaunchRequest
from ..paths import nanny_state_dir
from ..protocol import load_connection_info, new_id
from .startup import Handover, spawn_nanny

__all__ = ["main", "run"]

log = logging.getLogger("kernel_nanny.nanny.in_job")


async def run(job: JobKernel) -> int:
    """Start the nanny, report it, and wait for it; the exit status of the job."""
    launcher = job.callback.endpoint.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    ip = job.bind_address or node_address(toward=launcher)  # where the launcher (or login host) can reach us
    params: dict[str, Any] = {"transport": "tcp", "ip": ip, "encryption": "required"}
    if job.startup_timeout is not None:
        params["startup_timeout"] = job.startup_timeout
    try:
        request = LaunchRequest(
            kernel_type=job.kernel,
            params=LaunchParams.from_mapping(params),
            supervised=True,
            restart_policy=RestartPolicy(max_restarts=0),
        )
        resolved = KernelFinder.from_entrypoints().resolve(request)
        kernel_id = new_id()
        timeout = request.params.startup_timeout + NANNY_REPORT_MARGIN
        connection_file, nanny = await spawn_nanny(
            Handover(kernel_id, request, resolved),
            nanny_log=nanny_state_dir(kernel_id) / "nanny.log",
            timeout=timeout,
            detach=False,
        )
    except (KernelNannyError, ValueError, OSError) as exc:
        log.error("the kernel did not start: %s", exc)
        await call_back(job.callback, exc if isinstance(exc, KernelNannyError) else LaunchError(str(exc)))
        return 1
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _pass_on, nanny, signum)
    try:
        report = {
            "nanny": dict(load_connection_info(connection_file)),
            "node": socket.gethostname(),
            # What the scheduler granted and where: the launcher keeps it in the kernel's state.
            "environment": {name: value for name, value in os.environ.items() if name.startswith("SLURM_")},
        }
        await call_back(job.callback, report)
    except (KernelNannyError, OSError) as exc:
        log.error("could not report the nanny to the launcher: %s; stopping it", exc)
        _pass_on(nanny, signal.SIGTERM)
        await nanny.wait()
        return 1  # the job failed: nobody could use its kernel
    return await nanny.wait()


def _pass_on(nanny: asyncio.subprocess.Process, signum: int) -> None:
    if nanny.returncode is None:
        nanny.send_signal(signum)


def main() -> int:
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        job = JobKernel.from_json(os.environ.get(JOB_ENV, ""))
    except LaunchError as exc:
        log.error("%s", exc)
        return 2
    # The job's nanny keeps its files in a private directory on the node, not in the user's runtime
    # directory: that may be shared with the login and other nodes (a network home), where these
    # would show up as the user's own kernels and be taken for stale (their pids are not there).
    runtime = tempfile.mkdtemp(prefix=f"kernel-nanny-job-{os.environ.get('SLURM_JOB_ID', os.getpid())}-")
    os.environ["JUPYTER_RUNTIME_DIR"] = runtime
    try:
        return asyncio.run(run(job))
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
