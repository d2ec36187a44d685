"""The nanny's journal of its kernel's output, read back through ``ManagerClient.replay`` (real kernels and nannies)."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernel_nanny import (
    InvalidRequest,
    JournalEntry,
    KernelClient,
    LaunchRequest,
    ManagerClient,
    NannyUnavailable,
    start_kernel,
)
from kernel_nanny.paths import nanny_state_dir


async def _replay(manager: ManagerClient, since: int = 0, **filters: Any) -> list[JournalEntry]:
    return [entry async for entry in manager.replay(since, **filters)]


def _printed(entries: list[JournalEntry]) -> str:
    return "".join(
        e.message.content["text"] for e in entries if e.message is not None and e.message.msg_type == "stream"
    )


async def _run(info: dict[str, Any], code: str) -> str:
    """Execute ``code``; the execute_request's msg_id."""
    async with KernelClient(info) as client:
        await client.wait_for_ready(timeout=30)
        result = await client.execute_interactive(code, timeout=30)
        assert result.ok, result.error
        return str(result.reply.parent_header["msg_id"])


async def _until(
    manager: ManagerClient, done: Callable[[list[JournalEntry]], bool], **filters: Any
) -> list[JournalEntry]:
    """The journal's entries once ``done`` says they are all in (recording is asynchronous: within milliseconds)."""
    while not done(entries := await _replay(manager, **filters)):
        await asyncio.sleep(0.05)  # bounded by the test's timeout
    return entries


async def _until_recorded(manager: ManagerClient, parent: str) -> list[JournalEntry]:
    """The entries of request ``parent`` once its final idle status is in the journal."""

    def idle(entries: list[JournalEntry]) -> bool:
        return any(
            e.message is not None
            and e.message.msg_type == "status"
            and e.message.content.get("execution_state") == "idle"
            for e in entries
        )

    return await _until(manager, idle, parent_msg_id=parent)


async def test_output_is_recorded_in_order_and_replayed_verified_with_a_cursor(nanny_kernel):
    info, manager = nanny_kernel
    parent = await _run(info, "for i in range(200): print(i, flush=True)")
    entries = await _until_recorded(manager, parent)
    assert _printed(entries) == "".join(f"{i}\n" for i in range(200))
    everything = await _replay(manager)
    seqs = [e.seq for e in everything]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert everything[0].kind == "kernel_started"  # a marker, in the same sequence
    # The messages are the kernel's own, still signed: msg ids and types as a live client saw them.
    assert {e.message.parent_id for e in entries if e.message is not None} == {parent}
    # A cursor: exactly what came after it, once.
    middle = entries[len(entries) // 2].seq
    after = await _replay(manager, middle, parent_msg_id=parent)
    assert [e.seq for e in after] == [e.seq for e in entries if e.seq > middle]
    # The last N.
    assert [e.seq for e in await _replay(manager, last=3)] == seqs[-3:]


async def test_output_printed_while_no_client_listens_is_kept(nanny_kernel):
    info, manager = nanny_kernel
    await _run(info, "import threading\nthreading.Timer(0.5, print, ('while you were away',), {'flush': True}).start()")
    # The client is gone before the kernel prints.
    entries = await _until(manager, lambda entries: "while you were away" in _printed(entries))
    assert _printed(entries).count("while you were away\n") == 1


async def test_restarts_and_deaths_are_markers_in_the_sequence(nanny_kernel):
    info, manager = nanny_kernel
    before = (await _replay(manager))[-1].seq
    await manager.restart(now=True)
    await _run(info, "print('after')")
    kinds = [e.kind for e in await _replay(manager, before)]
    assert kinds.index("kernel_died") < kinds.index("kernel_restarted")


async def test_the_journal_is_private_and_goes_with_the_kernel():
    info, manager = await start_kernel(
        LaunchRequest(kernel_type="pyimport/kernel", supervised=True, params={"echo_output": False})
    )
    assert isinstance(manager, ManagerClient)
    await _run(info, "print('x' * 1000)")
    journal = nanny_state_dir(info["kernel_id"], create=False) / "journal"
    assert stat.S_IMODE(journal.stat().st_mode) == 0o700
    segments = list(journal.iterdir())
    assert segments and all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in segments)
    await manager.shutdown()
    await manager.cleanup()
    assert not Path(journal).exists()


@pytest.mark.parametrize(
    "request_content",
    [
        {"since": -1},
        {"since": "0"},
        {"since": 0, "last": -2},
        {"since": 0, "max_bytes": 0},
        {},
        {"since": 0, "wait": -1},
        {"since": 0, "wait": "1"},
        {"since": 0, "wait": True},
    ],
    ids=["negative", "text", "negative-last", "zero-bytes", "missing", "negative-wait", "text-wait", "yes-wait"],
)
async def test_a_malformed_replay_request_is_refused_and_the_nanny_carries_on(nanny_kernel, request_content):
    info, manager = nanny_kernel
    with pytest.raises(InvalidRequest):
        await manager.request("replay", request_content)
    assert await manager.is_alive()


async def test_the_output_command_prints_the_journal_as_text_and_as_json(nanny_kernel, capsys):
    from kernel_nanny.cli import main as cli_main

    info, manager = nanny_kernel
    parent = await _run(info, "print('recorded'); 6 * 7")
    await _until_recorded(manager, parent)
    assert await asyncio.to_thread(cli_main, ["output", info["kernel_id"], "--parent", parent]) == 0
    assert capsys.readouterr().out == "recorded\n42\n"
    assert await asyncio.to_thread(cli_main, ["output", info["kernel_id"], "--json", "--parent", parent]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["msg_type"] for line in lines if line["msg_type"] != "status"] == [
        "execute_input",
        "stream",
        "execute_result",
    ]
    assert all(line["parent_msg_id"] == parent and line["kind"] == "iopub" for line in lines)
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(seqs)


async def test_a_replay_that_waits_is_answered_by_the_next_entry(nanny_kernel):
    info, manager = nanny_kernel
    end = (await manager.info())["journal"]["last_seq"]
    waiting = asyncio.ensure_future(manager.request("replay", {"since": end, "wait": 20}, timeout=30))
    await manager.info()  # a round trip through the nanny that publishes nothing on iopub
    assert not waiting.done()  # nothing new: the request waits in the nanny
    await _run(info, "print('news')")
    reply = await asyncio.wait_for(waiting, 10)
    assert reply["entries"] and reply["entries"][0]["seq"] == end + 1


async def test_following_ends_when_the_nanny_exits():
    info, manager = await start_kernel(
        LaunchRequest(kernel_type="pyimport/kernel", supervised=True, params={"echo_output": False})
    )
    assert isinstance(manager, ManagerClient)
    await _run(info, "print('last words')")
    seen: list[JournalEntry] = []

    async def follow() -> None:
        async with ManagerClient(info) as follower:
            async for entry in follower.follow(0):
                seen.append(entry)

    following = asyncio.ensure_future(follow())
    await _until(manager, lambda entries: len(seen) >= len(entries))  # caught up: waiting in the nanny
    await manager.shutdown()
    await manager.cleanup()
    await asyncio.wait_for(following, 10)  # ends, without an error
    assert "last words" in _printed(seen)


async def test_a_nanny_that_exited_is_not_asked_again():
    """After nanny_exiting, a second shutdown returns at once and other requests fail at once, naming it."""
    info, manager = await start_kernel(
        LaunchRequest(kernel_type="pyimport/kernel", supervised=True, params={"echo_output": False})
    )
    assert isinstance(manager, ManagerClient)
    await manager.shutdown()
    await asyncio.wait_for(manager.shutdown(), 1)  # already gone: nothing to wait for
    with pytest.raises(NannyUnavailable, match="has exited"):
        await asyncio.wait_for(manager.info(), 1)
    await manager.cleanup()


async def test_a_follower_told_of_dropped_entries_is_told_once_and_waits_for_more():
    """A message bigger than a memory-only journal is dropped as soon as it is recorded, leaving the journal empty
    for a while: a follower hears of it once (one ``lost`` entry), then waits in the nanny for what comes next."""
    info, manager = await start_kernel(
        LaunchRequest(
            kernel_type="pyimport/kernel",
            supervised=True,
            params={"echo_output": False},
            journal={"memory": 64 * 1024, "disk": 0},
        )
    )
    assert isinstance(manager, ManagerClient)
    try:
        await _run(info, "print('ready')")
        start = (await manager.info())["journal"]["last_seq"]
        seen: list[JournalEntry] = []

        async def follow() -> None:
            async with ManagerClient(info) as follower:
                async for entry in follower.follow(start):
                    seen.append(entry)
                    if "after" in _printed([entry]):
                        return

        following = asyncio.ensure_future(follow())
        await _run(info, "import time\nprint('x' * 200_000, flush=True)\ntime.sleep(2)\nprint('after')")
        await asyncio.wait_for(following, 30)
        lost = [entry for entry in seen if entry.kind == "lost"]
        assert len(lost) == 1 and lost[0].content["count"] >= 1, [(e.kind, e.seq) for e in seen]
        assert "x" * 1000 not in _printed(seen)
    finally:
        await manager.shutdown()
        await manager.cleanup()


async def test_the_kernels_greetings_of_the_nannys_own_subscriptions_are_not_recorded(nanny_kernel):
    """ipykernel 7 greets each new subscription (``iopub_welcome``): the nanny's reader takes 95 of them, one per
    printable character, whose greetings arrive whenever the kernel gets to them. They are not output: a client
    replaying the journal (the gateway's browsers, ``attach``) must not receive them."""
    info, manager = nanny_kernel
    await _run(info, "print('output')")
    entries = await _replay(manager)
    assert "output" in _printed(entries)
    assert [e.seq for e in entries if e.message is not None and e.message.msg_type == "iopub_welcome"] == []
