"""Follow a kernel's output: what its nanny's journal recorded, then live, with no gap and no duplicate.

Both come from the journal (:meth:`ManagerClient.follow`), so there is no
seam to stitch: only the choice of where to start, the last execution's
input by default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..protocol.nanny import JournalEntry
from .manager import ManagerClient

#: How many of the journal's last entries the search for the last ``execute_input`` reads first (then 4x more).
_FIRST_LOOK_BACK = 256


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
    (neither given) the last execution's input and output so far; then what
    the journal records next, as it does (:meth:`ManagerClient.follow`), its
    markers included. Ends when the nanny exits; raises
    :exc:`~kernel_nanny.NannyUnavailable` if the nanny stops beating.
    """
    async for entry in manager.follow(await start_cursor(manager, since=since, last=last)):
        yield entry
