"""The Docker provider: a kernel in a container, launch -> ready, next to local cold starts in the same run.

The engine is ``$KN_TEST_DOCKER_HOST`` / ``$DOCKER_HOST`` if one answers there; otherwise Debian's
dockerd is started the way ``tests/providers`` starts it (same data root, so the ``localhost/ipykernel:bookworm``
image the tests import is there; it is imported from mmdebstrap's root file system if not), and stopped
afterwards. The three starts are interleaved, the order turning each round; each kernel is stopped
(untimed) before the next start. Nothing here asserts on a timing: the goal is reported.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from _common import Config, Row, goal_over_local, sample_interleaved, timed_start
from _sides import READY_TIMEOUT, Ours, Theirs

from kernel_nanny.providers.docker import DockerProvider
from kernel_nanny.providers.docker_config import parse_docker_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the engine helpers of the tests
from tests.providers.docker_engines import (  # noqa: E402
    IMAGE,
    engine_from_environment,
    ensure_image,
    start_dockerd,
    stop_server,
)

#: The issue's goal: a Docker launch -> ready within the local cold start + this many seconds.
GOAL_EXTRA_SECONDS = 1.5


async def in_docker(provider: DockerProvider) -> Ours:
    """docker/python: ``localhost/ipykernel:bookworm`` (Debian's python3-ipykernel) through the Docker provider."""
    return await Ours.through(provider, "python", {"echo_output": False, "startup_timeout": READY_TIMEOUT})


async def bench_docker_launch(cfg: Config) -> list[Row]:
    """Cold start -> ready: a kernel in a container, a local kernel (ours, ipc), jupyter_client's (tcp)."""
    rounds = cfg.n(8, 3)
    host = engine_from_environment()
    dockerd = None
    log_dir = Path(tempfile.mkdtemp(prefix="kn-bench-dockerd-"))
    if host is None:
        host, dockerd = await asyncio.to_thread(start_dockerd, log_dir)
    try:
        import docker

        client = docker.DockerClient(base_url=host, timeout=120)
        try:
            await asyncio.to_thread(ensure_image, client)
            engine_version = client.version().get("Version", "?")
        finally:
            client.close()
        provider = DockerProvider(parse_docker_config({"host": host, "images": {"python": {"image": IMAGE}}}))
        jobs = {
            "docker": timed_start(lambda: in_docker(provider)),
            "local": timed_start(Ours.local),
            "theirs": timed_start(Theirs.launch),
        }
        samples = await sample_interleaved(jobs, rounds, settle=0.2)  # settle: the previous kernel's teardown
    finally:
        if dockerd is not None:
            await asyncio.to_thread(stop_server, dockerd)

    note = (
        f"docker-launch: DockerProvider.launch('python') on Docker Engine {engine_version} ({host}): create the "
        "container (ports published on 127.0.0.1), start it, wait until ready; the image runs Debian's python3 "
        "3.11 + ipykernel 6.17 (the local kernels: this Python + its ipykernel). local = launch_local of "
        "pyimport/kernel (ipc, ours' default); theirs = AsyncKernelManager start_kernel + wait_for_ready (tcp). "
        "Interleaved, each kernel stopped (untimed) before the next start"
    )
    return [
        Row(
            "docker-launch",
            "cold start -> ready: docker/python / jc start_kernel+wait_for_ready tcp",
            samples["docker"],
            samples["theirs"],
            notes=[note],
            **goal_over_local(samples, "docker", GOAL_EXTRA_SECONDS),
        ),
        Row(
            "docker-launch",
            "cold start -> ready: launch_local ipc / jc tcp",
            samples["local"],
            samples["theirs"],
        ),
    ]
