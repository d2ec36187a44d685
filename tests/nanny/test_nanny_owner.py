"""The owner of a kernel: recorded in the request where it is made, watched by the nanny with a pidfd."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from kernel_nanny import KernelCommand, LaunchError, LaunchRequest
from kernel_nanny.client.running import ProcessIdentity
from kernel_nanny.nanny.owner import OwnerWatch

COMMAND = KernelCommand(argv=[sys.executable, "-c", "pass"])


@pytest.fixture
def process():
    """A process of our own to own things, ended by the test (or afterwards)."""
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as child:
        yield child
        child.kill()


def request(**fields) -> LaunchRequest:
    return LaunchRequest(kernel_type="test/owner", command=COMMAND, supervised=True, **fields)


def test_the_owner_start_time_is_recorded_where_the_request_is_made_and_round_trips():
    made = request(owner=os.getpid())
    assert made.owner_start_time == ProcessIdentity.of(os.getpid()).start_time
    assert LaunchRequest.from_dict(made.to_dict()) == made
    assert request().owner is None and request().to_dict()["owner"] is None  # persistent


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"owner": 0}, "'owner' must be a process id"),
        ({"owner": True}, "'owner' must be a process id"),
        ({"owner": "1"}, "'owner' must be a process id"),
        ({"owner": os.getpid(), "owner_start_time": -1}, "'owner_start_time' must be clock ticks"),
        ({"owner_start_time": 5}, "'owner_start_time' needs an 'owner'"),
        ({"owner": os.getpid(), "supervised": False}, "'owner' applies to supervised kernels"),
    ],
)
def test_bad_owners_fail_at_the_edge_naming_the_field(fields, message):
    with pytest.raises(LaunchError, match=message):
        LaunchRequest(**{"kernel_type": "test/owner", "command": COMMAND, "supervised": True, **fields})


def test_an_owner_that_is_not_running_is_refused(process):
    process.kill()
    process.wait()
    with pytest.raises(LaunchError, match=f"no process {process.pid} is running"):
        request(owner=process.pid)


async def test_the_watch_ends_when_its_owner_ends_even_by_sigkill(process):
    watch = OwnerWatch.open(process.pid, ProcessIdentity.of(process.pid).start_time)
    try:
        ended = asyncio.ensure_future(watch.ended())
        await asyncio.sleep(0)  # watching now
        assert not ended.done()
        process.kill()
        await asyncio.wait_for(ended, 30)
    finally:
        watch.close()


async def test_an_owner_gone_already_or_a_recycled_pid_is_an_ended_owner(process):
    start_time = ProcessIdentity.of(process.pid).start_time
    assert start_time is not None
    recycled = OwnerWatch.open(process.pid, start_time + 1)  # the pid names a process started at another time
    await asyncio.wait_for(recycled.ended(), 30)
    process.kill()
    process.wait()
    gone = OwnerWatch.open(process.pid, start_time)
    await asyncio.wait_for(gone.ended(), 30)
    gone.close()
    recycled.close()
