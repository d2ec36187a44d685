"""A kernel file whose nanny pid now belongs to another program: never adopted, listed or signalled.

A nanny's published file names its pid; once the nanny is gone that pid may
pass to an unrelated process. These tests plant such files (as a nanny
writes them, with the pid of a real ``sleep`` of "another program" and a wrong
or missing start time) and run every reader: the daemon's adoption and index,
``kernel-nanny ps``, ``stop --all`` and a group run whose kernel name matches.
The sleep must survive each, and the files must be gone.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_nanny import KernelExecution
from kernel_nanny.client.running import ProcessIdentity

CLI = [sys.executable, "-m", "kernel_nanny"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def other_program() -> Iterator[subprocess.Popen]:
    """A process that is none of ours."""
    sleep = subprocess.Popen(["sleep", "300"])
    yield sleep
    sleep.kill()
    sleep.wait()


@pytest.fixture
def nanny_file_content(isolated) -> dict:
    """What a real nanny published (its kernel is stopped again): ports, key and all."""
    started = run("start", "pyimport/kernel")
    assert started.returncode == 0, started.stderr
    kernel_id, connection_file = started.stdout.split()
    content = json.loads(Path(connection_file).read_text())
    assert run("stop", kernel_id, "--now").returncode == 0
    return content


class Planted:
    """Kernel files naming ``pid``: one with a wrong start time, one with none."""

    def __init__(self, content: dict, pid: int, name: str) -> None:
        self.content, self.pid, self.name = content, pid, name
        self.files: list[Path] = []

    def plant(self) -> None:
        runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
        real = ProcessIdentity.of(self.pid).start_time
        assert real is not None
        wrong = {**self.content, "nanny_start_time": real + 1, "name": self.name}
        missing = {k: v for k, v in self.content.items() if k != "nanny_start_time"} | {"name": None}
        self.files = []
        for content in (wrong, missing):
            content = {**content, "kernel_id": uuid.uuid4().hex, "nanny_pid": self.pid}
            path = runtime / f"kernel-{content['kernel_id']}.json"
            path.write_text(json.dumps(content))
            self.files.append(path)

    @property
    def ids(self) -> set[str]:
        return {path.stem.removeprefix("kernel-") for path in self.files}

    def gone(self) -> bool:
        return not any(path.exists() for path in self.files)


async def test_a_pid_that_is_another_process_now_is_never_adopted_listed_or_signalled(
    make_daemon, nanny_file_content, other_program
):
    group = KernelExecution("pyimport/kernel", group=f"foreign{os.getpid()}")
    planted = Planted(nanny_file_content, other_program.pid, name=str(group.name))

    # The daemon's adoption at start, and its index afterwards.
    planted.plant()
    daemon = await make_daemon()
    async with daemon.client() as client:
        assert not planted.ids & {entry["kernel_id"] for entry in await client.list_kernels()}
    assert planted.gone()

    planted.plant()
    listing = json.loads(run("ps", "--json").stdout)
    assert not planted.ids & {entry["kernel_id"] for entry in listing}
    assert planted.gone()

    planted.plant()
    stopped = run("stop", "--all", "--now")
    assert stopped.returncode == 0, stopped.stderr
    assert planted.gone()

    # A group run finds no kernel of that name (the file is stale): it starts one, and signals nothing.
    planted.plant()
    async with group:
        assert await group.run(["x = 1"]) == 0
        assert group.started_new
    assert planted.gone()
    assert run("stop", str(group.name), "--now").returncode == 0

    assert other_program.poll() is None, "the other program's process was signalled"


def test_a_nanny_publishes_its_start_time_and_is_proven_by_it(isolated, other_program):
    started = run("start", "pyimport/kernel")
    assert started.returncode == 0, started.stderr
    kernel_id, connection_file = started.stdout.split()
    content = json.loads(Path(connection_file).read_text())
    nanny = ProcessIdentity(content["nanny_pid"], content["nanny_start_time"])
    exited = os.pidfd_open(nanny.pid)
    try:
        assert nanny == ProcessIdentity.of(nanny.pid) and nanny.is_nanny()
        # A process of another program is not a nanny, and a nanny's pid without its start time proves nothing.
        assert not ProcessIdentity.of(other_program.pid).is_nanny()
        assert not ProcessIdentity(nanny.pid, None).is_nanny()
        assert run("stop", kernel_id, "--now").returncode == 0
        assert select.select([exited], [], [], 60)[0], "the nanny did not exit"
    finally:
        os.close(exited)
    assert not nanny.is_nanny() and not nanny.signal_nanny(0)
