"""The journal's size caps, from a LaunchRequest and from ``kernel-nanny start``, as the nanny reports them
(real kernels and nannies)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from kernel_nanny import (
    ConnectionInfoError,
    InvalidRequest,
    JournalLimits,
    KernelClient,
    LaunchError,
    LaunchRequest,
    ManagerClient,
    start_kernel,
)
from kernel_nanny.defaults import DEFAULT_JOURNAL_DISK_BYTES, DEFAULT_JOURNAL_MEMORY_BYTES
from tests.nanny.test_nanny_journal import _until_recorded

KiB = 1024


@pytest.mark.parametrize("disk", [0, 256 * KiB], ids=["memory-only", "small-disk"])
async def test_tiny_caps_reach_the_nanny_which_keeps_to_them_and_says_what_it_dropped(disk):
    request = LaunchRequest(kernel_type="pyimport/kernel", supervised=True, journal={"memory": "64K", "disk": disk})
    async with start_kernel(request) as (info, manager):
        assert isinstance(manager, ManagerClient)
        async with KernelClient(info) as client:
            await client.wait_for_ready(timeout=30)
            # About 1 MiB of output: far more than either cap.
            result = await client.execute_interactive("for i in range(1000): print('x' * 1000, flush=True)", timeout=60)
            assert result.ok, result.error
        await _until_recorded(manager, result.reply.parent_header["msg_id"])  # then nothing more comes
        journal = (await manager.info())["journal"]
        assert journal is not None
        assert (journal["memory_bytes"], journal["disk_bytes"], journal["disk_enabled"]) == (64 * KiB, disk, disk > 0)
        assert 0 < journal["memory_used"] <= 64 * KiB and journal["disk_used"] <= disk
        assert 1 < journal["first_seq"] <= journal["last_seq"]
        entries = [entry async for entry in manager.replay(0)]
        assert entries[0].kind == "lost" and entries[0].content["count"] == journal["first_seq"] - 1
        assert [entry.seq for entry in entries[1:]] == list(range(journal["first_seq"], journal["last_seq"] + 1))


async def test_the_default_caps_are_used_when_none_are_given():
    async with start_kernel(LaunchRequest(kernel_type="pyimport/kernel", supervised=True)) as (info, manager):
        assert isinstance(manager, ManagerClient)
        journal = (await manager.info())["journal"]
        assert journal is not None
        assert (journal["memory_bytes"], journal["disk_bytes"], journal["disk_enabled"]) == (
            DEFAULT_JOURNAL_MEMORY_BYTES,
            DEFAULT_JOURNAL_DISK_BYTES,
            True,
        )
        assert journal["first_seq"] == 1 and journal["disk_used"] > 0  # the kernel_started marker at least


@pytest.mark.parametrize(
    ("journal", "expected"),
    [
        ({"memory": "8 bananas"}, "journal memory: must be a size in bytes"),
        ({"memory": 1000}, "journal memory: must be 0 (with disk 0: no journal) or a size from 64KiB"),
        ({"disk": -1}, "journal disk: must be 0 (memory only) or a size from 64KiB"),
        ({"disk": True}, "journal disk: must be a size in bytes"),
        ({"ring": "1MiB"}, "unknown journal setting(s): ring"),
    ],
)
def test_a_wrong_cap_in_a_request_is_refused_naming_the_setting(journal, expected):
    with pytest.raises(LaunchError, match=r"launch request field 'journal': ") as caught:
        LaunchRequest(kernel_type="pyimport/kernel", supervised=True, journal=journal)
    assert expected in str(caught.value)


def test_sizes_read_with_units_and_round_trip():
    limits = JournalLimits.from_dict({"memory": "8MiB", "disk": "1 GiB"})
    assert limits == JournalLimits(memory=8 * 1024 * KiB, disk=1024**3)
    assert JournalLimits.from_dict(limits.to_dict()) == limits
    assert JournalLimits.from_dict({"memory": "512K", "disk": 0}) == JournalLimits(memory=512 * KiB, disk=0)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kernel_nanny", *args], capture_output=True, text=True, timeout=120)


def test_kernel_nanny_start_passes_the_caps_to_the_nanny():
    started = _cli("start", "pyimport/kernel", "--journal-memory", "1MiB", "--journal-disk", "0")
    assert started.returncode == 0, started.stderr
    kernel_id = started.stdout.split()[0]
    try:
        listing = json.loads(_cli("ps", "--json").stdout)
        journal = next(entry["journal"] for entry in listing if entry["kernel_id"] == kernel_id)
        assert (journal["memory_bytes"], journal["disk_bytes"], journal["disk_enabled"]) == (1024 * KiB, 0, False)
    finally:
        _cli("stop", kernel_id, "--now")


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--journal-memory", "lots", "journal memory: must be a size in bytes"),
        ("--journal-disk", "10", "journal disk: must be 0 (memory only) or a size from 64KiB"),
    ],
)
def test_kernel_nanny_start_refuses_a_wrong_cap_naming_the_option(option, value, expected):
    result = _cli("start", "pyimport/kernel", option, value)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


async def test_a_nanny_without_a_journal_records_nothing_and_clients_read_the_kernel():
    request = LaunchRequest(kernel_type="pyimport/kernel", supervised=True, journal={"memory": 0, "disk": 0})
    async with start_kernel(request) as (info, manager):
        assert isinstance(manager, ManagerClient)
        assert info["nanny_journal"] is False and (await manager.info())["journal"] is None
        async with KernelClient(info) as kc:
            assert not kc.journal  # the kernel's own socket
            result = await kc.execute_interactive("print('unrecorded')")
        assert result.stream_text() == "unrecorded\n"
        with pytest.raises(InvalidRequest, match="keeps no journal"):
            await manager.request("replay", {"since": 0})
        # What the nanny acts on, it still reads (its own subscription, which may see the idle after this client did).
        while (await manager.info())["execution_state"] != "idle":
            await asyncio.sleep(0.02)
        with pytest.raises(ConnectionInfoError, match="keeps a journal"):
            KernelClient(info, journal=True)
