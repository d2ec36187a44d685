"""Follow a kernel's output: what its nanny's journal recorded, then live, with no gap and no duplicate at the seam.

Live iopub messages carry no sequence number, so the seam is made from their
msg_ids. The order of the steps is what makes it hold:

1. subscribe to the kernel's iopub (and the nanny's events), queueing what arrives;
2. prove the subscription live: a ``kernel_info_request`` on the control
   channel makes the kernel publish a ``status`` whose parent is that request,
   also while a cell runs; once it arrives, everything published after it
   reaches the queue;
3. replay the journal from the chosen cursor until it holds that ``status``
   (the nanny records in the kernel's order, so everything before it is in
   the journal); replayed messages that also arrived live are noted;
4. yield the queued messages not noted, then live ones as they come.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from .._exceptions import KernelTimeout
from .._tasks import wait_for
from ..defaults import IOPUB_CONFIRM_INTERVAL, NANNY_REQUEST_TIMEOUT
from ..protocol import Message
from ..protocol.nanny import JournalEntry
from ._sockets import within
from .kernel import KernelClient
from .manager import ManagerClient

log = logging.getLogger(__name__)

#: How many of the journal's last entries the search for the last ``execute_input`` reads first (then 4x more).
_FIRST_LOOK_BACK = 256
#: The nanny events that become markers in the followed output.
_MARKERS = ("kernel_started", "kernel_died", "kernel_restarted", "restart_failed")


async def last_execution_cursor(manager: ManagerClient) -> int:
    """The cursor just before the journal's last ``execute_input``: replaying from it gives the last
    execution's input and its output so far. Without one, the journal's end (nothing of the past)."""
    look_back, end = _FIRST_LOOK_BACK, 0
    while True:
        found, count = None, 0
        async for entry in manager.replay(last=look_back):
            if entry.kind == "lost":
                continue
            count, end = count + 1, entry.seq
            if entry.message is not None and entry.message.msg_type == "execute_input":
                found = entry.seq
        if found is not None:
            return found - 1
        if count < look_back:  # the whole journal was read
            return end
        look_back *= 4


async def _last_cursor(manager: ManagerClient, last: int) -> int:
    """The cursor from which the journal's last ``last`` entries are replayed (its end when ``last`` is 0)."""
    async for entry in manager.replay(last=max(last, 1)):
        if entry.kind != "lost":
            return entry.seq - 1 if last else entry.seq
    return 0  # an empty journal


async def start_cursor(manager: ManagerClient, *, since: int | None = None, last: int | None = None) -> int:
    """Where showing the journal starts: after ``since``, at the last ``last`` entries, or (neither
    given) at the last execution's ``execute_input``."""
    if since is not None:
        return since
    return await last_execution_cursor(manager) if last is None else await _last_cursor(manager, last)


async def recorded_output(
    manager: ManagerClient, *, since: int | None = None, last: int | None = None
) -> AsyncIterator[JournalEntry]:
    """The journal's entries after ``since``, or its last ``last``, or (neither given) the last execution's
    input and output so far: what :func:`follow_output` shows before it follows."""
    async for entry in manager.replay(await start_cursor(manager, since=since, last=last)):
        yield entry


async def follow_output(
    manager: ManagerClient, *, since: int | None = None, last: int | None = None
) -> AsyncIterator[JournalEntry]:
    """The kernel's recorded output, then its live output, each message once and in order, until the nanny exits.

    From the journal: the entries after ``since``, or the last ``last``, or
    (neither given) the last execution's input and output so far. Recorded
    entries have their ``seq``; live ones have ``seq`` 0 (live iopub carries
    none). The nanny's events become markers (``kind`` ``kernel_died`` and
    so on); ``nanny_exiting`` is the last entry. Raises
    :exc:`~kernel_nanny.NannyUnavailable` if the nanny stops beating.
    """
    queue: asyncio.Queue[tuple[str, Message | BaseException]] = asyncio.Queue()
    live_ids: set[str] = set()  # of the messages that arrived live while the journal was read
    replaying = True
    asked: set[str] = set()
    proof: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_iopub(msg: Message) -> None:
        if replaying:
            live_ids.add(msg.msg_id)
        queue.put_nowait(("iopub", msg))
        if msg.msg_type == "status" and msg.parent_id in asked and not proof.done():
            proof.set_result(msg.msg_id)

    async def pump_events() -> None:
        try:
            async for event in manager.events():
                if event.msg_type in _MARKERS or event.msg_type == "nanny_exiting":
                    queue.put_nowait(("event", event))
        except Exception as exc:  # NannyUnavailable: raised where the entries are read
            queue.put_nowait(("error", exc))

    since = await start_cursor(manager, since=since, last=last)  # before subscribing: the welcome is recorded too
    kernel = KernelClient(manager.connection_info)
    kernel.add_iopub_handler(on_iopub)
    events = asyncio.ensure_future(pump_events())
    try:
        await manager.subscribe()
        info = await manager.info()
        proof_id = await _prove_subscription(kernel, asked, proof) if info["state"] != "dead" else None
        seen_live: set[str] = set()
        replayed, cursor = manager.replay(since), since
        reached = proof_id is None  # without a proof, the journal's end at this reading is the seam
        while True:
            async for entry in replayed:
                cursor = entry.seq
                message = entry.message
                if message is not None:
                    if (proof_id is not None and reached) or message.msg_id in live_ids:
                        seen_live.add(message.msg_id)  # recorded after the proof: it may arrive live too
                    reached = reached or message.msg_id == proof_id
                yield entry
            if reached:
                break
            replayed = manager.replay(cursor)  # the nanny has not recorded the proof yet: read on
        replaying = False
        live_ids.clear()
        while True:
            source, item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if source == "event":
                yield JournalEntry(seq=0, received=time.time(), kind=item.msg_type, content=dict(item.content))
                if item.msg_type == "nanny_exiting":
                    return
            elif item.msg_id in seen_live:
                seen_live.discard(item.msg_id)
            else:
                yield JournalEntry(seq=0, received=time.time(), kind="iopub", message=item)
    finally:
        events.cancel()
        kernel.close()
        await kernel.wait_closed()


async def _prove_subscription(kernel: KernelClient, asked: set[str], proof: asyncio.Future[str]) -> str | None:
    """The msg_id of a ``status`` that proves the iopub subscription live (asked for on control, repeatedly,
    as late joiners miss the first); None if the kernel publishes none for control requests."""

    async def ask() -> str:
        while True:
            asked.add(await kernel.send("kernel_info_request", channel="control"))
            try:
                return await wait_for(asyncio.shield(proof), IOPUB_CONFIRM_INTERVAL)
            except asyncio.TimeoutError:
                continue

    try:
        proof_id: str = await within(ask(), NANNY_REQUEST_TIMEOUT, "a status on iopub")
        return proof_id
    except KernelTimeout:
        log.warning("the kernel published no status for a control request: output at the seam may be missed")
        return None
