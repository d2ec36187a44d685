"""The kernel's record: every iopub message, as received and still signed, under a sequence number.

A client that was away, or too slow for ZeroMQ's PUB queue, reads what it missed from here
(issue 13). Each entry goes to two bounded places at once:

* a **memory ring** of at most ``memory_bytes`` (payload plus a per-object allowance, so the figure
  is close to what the ring costs in RSS), which answers recent replays without touching the disk;
* **on-disk segments** in ``<state dir>/journal/`` (0700; files 0600, never through a symbolic link):
  append-only files of length-prefixed records, a new one every ``segment_bytes``, the oldest
  deleted when the total would pass ``disk_bytes``.

Oldest entries go first in both. A reader is told how many entries after its cursor are gone
(``Batch.lost``), never left to guess. Kernel restarts and deaths are entries too (markers), so
they sit in the same sequence as the output around them.

Record format (little-endian), one per entry, each segment starting with the 8-byte :data:`MAGIC`::

    u32 record length (this header included)  u64 seq  f64 received (epoch seconds)
    u8 len(kind)  u16 len(msg_type)  u16 len(parent msg_id), 0xFFFF for none  u32 frame count
    u32 length of each frame
    kind, msg_type, parent msg_id (UTF-8), then the frames, byte for byte

The frames are the message as the kernel signed it (``signature, header, parent_header, metadata,
content, *buffers``), never re-serialised: a replayed message verifies with the kernel's key like a
live one. A marker has one frame, its JSON content.

**Flush policy.** An append packs its record into a pending buffer (no system call); the buffer is
written with one ``os.write`` when it passes :data:`FLUSH_BYTES`, when the event loop has run for
``JOURNAL_FLUSH_INTERVAL`` (50 ms, in :mod:`kernel_nanny.defaults`) since the first pending entry
(a timer armed by that entry), before a read from disk, and on :meth:`Journal.close`. No fsync: a
crash of the nanny loses at most the last 50 ms of entries (never more than ``FLUSH_BYTES``) from
the files; what was written survives in the page cache, a crash of the machine may lose more.
Nothing reads a dead nanny's journal anyway: a new nanny starts a new journal (and deletes the old
segments), so the files serve the running nanny, whose memory holds the same entries.

**A full disk** (or any other write error) never stops the nanny: the journal logs one warning,
stops writing segments, keeps what was completely written readable, and goes on with the memory
ring alone.

Reads run in the nanny's event loop, so each is bounded: at most ``max_bytes`` of frames per
batch (callers page with the batch's last seq), one ``pread`` per run of consecutive records, and
per-segment indexes (offset of each seq; parent msg_id -> seqs) instead of scans of the files.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import errno
import itertools
import json
import logging
import os
import struct
import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import LaunchError
from ..defaults import DEFAULT_JOURNAL_DISK_BYTES, DEFAULT_JOURNAL_MEMORY_BYTES, JOURNAL_FLUSH_INTERVAL
from ..paths import open_private_file, secure_directory

__all__ = [
    "DEFAULT_DISK_BYTES",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "MESSAGE",
    "Batch",
    "Entry",
    "Journal",
]

log = logging.getLogger("kernel_nanny.nanny")

MiB = 1024 * 1024
DEFAULT_MEMORY_BYTES = DEFAULT_JOURNAL_MEMORY_BYTES
DEFAULT_DISK_BYTES = DEFAULT_JOURNAL_DISK_BYTES
DEFAULT_SEGMENT_BYTES = 4 * MiB
DEFAULT_READ_BYTES = 1 * MiB

#: The ``kind`` of an iopub message; any other kind is a marker (``kernel_started``, ``kernel_died``...).
MESSAGE = "iopub"
#: Written first in every segment: the format's name and version.
MAGIC = b"KNJRNL1\n"
#: Pending bytes that trigger a write at once (the longest wait is ``JOURNAL_FLUSH_INTERVAL``).
FLUSH_BYTES = 64 * 1024
#: What the memory ring charges an entry beyond its frames' bytes: the Entry, its tuple, its
#: float and strings, and each frame's bytes object header (measured with tracemalloc, rounded up).
ENTRY_OVERHEAD = 240
FRAME_OVERHEAD = 40

_HEADER = struct.Struct("<IQdBHHI")
_NO_PARENT = 0xFFFF
#: The longest msg_type or parent msg_id kept as such (characters; UTF-8 fits in a u16 length).
_MAX_NAME = 1024
_SEGMENT_SUFFIX = ".seg"


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal entry: an iopub message (``kind == MESSAGE``) or a marker."""

    seq: int
    received: float
    kind: str
    msg_type: str
    parent_msg_id: str | None
    frames: tuple[bytes, ...]

    @property
    def nbytes(self) -> int:
        """The frames' bytes: what a replay carries, and what ``max_bytes`` counts."""
        return sum(map(len, self.frames))

    def marker_content(self) -> dict[str, Any]:
        """A marker's content (what :meth:`Journal.mark` was given)."""
        if self.kind == MESSAGE:
            raise ValueError(f"journal entry {self.seq} is an iopub message, not a marker")
        content: dict[str, Any] = json.loads(self.frames[0])
        return content


@dataclass(frozen=True, slots=True)
class Batch:
    """What one :meth:`Journal.read` returns.

    ``lost``: entries after the cursor (matching the filter, as far as known) that were dropped
    before this read. ``more``: further entries are there; read again from ``last_seq``.
    """

    entries: tuple[Entry, ...]
    lost: int
    more: bool

    @property
    def last_seq(self) -> int | None:
        """The cursor for the next page (``None`` for an empty batch: keep the old one)."""
        return self.entries[-1].seq if self.entries else None


def _pack(entry: Entry) -> bytes:
    kind, msg_type = entry.kind.encode(), entry.msg_type.encode()
    parent = b"" if entry.parent_msg_id is None else entry.parent_msg_id.encode()
    frames = entry.frames
    lengths = array("I", map(len, frames)).tobytes()
    size = _HEADER.size + len(lengths) + len(kind) + len(msg_type) + len(parent) + sum(map(len, frames))
    header = _HEADER.pack(
        size,
        entry.seq,
        entry.received,
        len(kind),
        len(msg_type),
        _NO_PARENT if entry.parent_msg_id is None else len(parent),
        len(frames),
    )
    return b"".join((header, lengths, kind, msg_type, parent, *frames))


def _unpack(data: bytes, offset: int) -> tuple[Entry, int]:
    """The record at ``offset`` in ``data``, and the offset of the next one."""
    size, seq, received, kind_len, type_len, parent_len, count = _HEADER.unpack_from(data, offset)
    pos = offset + _HEADER.size
    lengths = struct.unpack_from(f"<{count}I", data, pos)
    pos += 4 * count
    kind = data[pos : pos + kind_len].decode()
    pos += kind_len
    msg_type = data[pos : pos + type_len].decode()
    pos += type_len
    parent = None
    if parent_len != _NO_PARENT:
        parent = data[pos : pos + parent_len].decode()
        pos += parent_len
    frames = []
    for length in lengths:
        frames.append(data[pos : pos + length])
        pos += length
    return Entry(seq, received, kind, msg_type, parent, tuple(frames)), offset + size


class _Segment:
    """One file's index: where each of its records starts, and which seqs answer each parent."""

    __slots__ = ("durable", "first_seq", "offsets", "parents", "path", "size")

    def __init__(self, path: Path, first_seq: int) -> None:
        self.path = path
        self.first_seq = first_seq
        self.offsets = array("Q")  # offsets[seq - first_seq]
        self.parents: dict[str, array[int]] = {}
        self.size = len(MAGIC)  # including what is still pending
        self.durable = 0  # bytes known to be in the file

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.offsets) - 1

    def end(self, index: int) -> int:
        return self.offsets[index + 1] if index + 1 < len(self.offsets) else self.size

    def keep_durable(self) -> None:
        """Forget the records not completely written (after a write failed)."""
        count = len(self.offsets)
        while count and self.end(count - 1) > self.durable:
            count -= 1
        self.size = self.end(count - 1) if count else len(MAGIC)
        del self.offsets[count:]
        last = self.first_seq + count - 1
        for parent, seqs in list(self.parents.items()):
            del seqs[bisect.bisect_right(seqs, last) :]
            if not seqs:
                del self.parents[parent]


class Journal:
    """A bounded, sequence-numbered record of a kernel's iopub messages and lifecycle markers.

    ``directory`` is the nanny's private state directory; the journal lives in its ``journal/``
    subdirectory. ``disk_bytes=0`` keeps the journal in memory only. ``segment_bytes`` defaults to a
    quarter of ``disk_bytes``, at most :data:`DEFAULT_SEGMENT_BYTES`. One instance per nanny, used
    from one thread (the nanny's event loop).
    """

    def __init__(
        self,
        directory: Path,
        *,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        disk_bytes: int = DEFAULT_DISK_BYTES,
        segment_bytes: int | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] = log,
    ) -> None:
        if segment_bytes is None:  # a quarter of the cap at most, so dropping the oldest keeps three quarters
            segment_bytes = min(DEFAULT_SEGMENT_BYTES, max(disk_bytes // 4, len(MAGIC) + 1))
        if memory_bytes < 0 or disk_bytes < 0 or segment_bytes <= len(MAGIC):
            raise ValueError(
                f"journal sizes must be positive (memory_bytes={memory_bytes}, disk_bytes={disk_bytes}, "
                f"segment_bytes={segment_bytes})"
            )
        if disk_bytes and disk_bytes < segment_bytes:
            raise ValueError(
                f"the journal's disk_bytes ({disk_bytes}) must hold at least one segment ({segment_bytes} bytes): "
                "raise disk_bytes or lower segment_bytes"
            )
        self.directory = directory / "journal"
        self.memory_bytes = memory_bytes
        self.disk_bytes = disk_bytes
        self.segment_bytes = segment_bytes
        self._log = logger
        self._last_seq = 0
        self._ring: collections.deque[Entry] = collections.deque()
        self._ring_bytes = 0
        self._segments: list[_Segment] = []
        self._segment_firsts: list[int] = []  # for bisect
        self._disk_total = 0
        self._fd = -1
        self._pending = bytearray()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        #: Closed: nothing more will be appended (waiting readers are answered).
        self.closed = False
        self._disk_enabled = disk_bytes > 0
        #: parent msg_id -> [first, last, count] of its dropped entries (the most recent parents only).
        self._dropped: collections.OrderedDict[str, list[int]] = collections.OrderedDict()
        if self._disk_enabled:
            try:
                if os.path.islink(self.directory):
                    raise LaunchError(f"{self.directory} is a symbolic link, and the journal never writes through one")
                secure_directory(self.directory)
                self._delete_segment_files()
            except (OSError, LaunchError) as exc:
                self._disable_disk(exc)

    def __repr__(self) -> str:
        disk = f"{len(self._segments)} segments {self._disk_total} B" if self._disk_enabled else "disk off"
        return (
            f"<Journal {self.directory} seq={self.first_seq}..{self._last_seq} "
            f"ring={len(self._ring)} entries {self._ring_bytes} B {disk}>"
        )

    # -- writing ---------------------------------------------------------------------------------

    def append(self, frames: Sequence[bytes], *, received: float, parent_msg_id: str | None, msg_type: str) -> int:
        """Record one iopub message: its signed frames after the identities and the delimiter
        (``signature, header, parent_header, metadata, content, *buffers``), kept as they are."""
        if len(msg_type) > _MAX_NAME or (parent_msg_id is not None and len(parent_msg_id) > _MAX_NAME):
            # Not a real msg_id or type (a kernel can publish anything): not indexed, never a crash.
            msg_type, parent_msg_id = msg_type[:_MAX_NAME], None
        return self._add(MESSAGE, msg_type, parent_msg_id, tuple(frames), received)

    def mark(self, kind: str, content: dict[str, Any], *, received: float | None = None) -> int:
        """Record a lifecycle fact (``kernel_started``, ``kernel_died``, ``kernel_restarted``) in the sequence."""
        if kind == MESSAGE or not kind or len(kind.encode()) > 255:
            raise ValueError(f"invalid journal marker kind {kind!r}")
        frame = json.dumps(content, separators=(",", ":")).encode()
        return self._add(kind, kind, None, (frame,), time.time() if received is None else received)

    def _add(self, kind: str, msg_type: str, parent: str | None, frames: tuple[bytes, ...], received: float) -> int:
        self._last_seq += 1
        entry = Entry(self._last_seq, received, kind, msg_type, parent, frames)
        if self._disk_enabled:
            self._write(entry)
        self._ring.append(entry)
        self._ring_bytes += _ring_cost(entry)
        while self._ring_bytes > self.memory_bytes and self._ring:
            old = self._ring.popleft()
            self._ring_bytes -= _ring_cost(old)
            if not self._on_disk(old.seq) and old.parent_msg_id is not None:
                self._tally_dropped(old.parent_msg_id, old.seq, old.seq, 1)
        if self._waiters:
            self._wake_waiters()
        return entry.seq

    def appended(self) -> asyncio.Future[None]:
        """A future resolved by the next append (or :meth:`close`): what a reader that has read
        everything waits on, instead of asking again and again."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _write(self, entry: Entry) -> None:
        try:
            record = _pack(entry)
        except (struct.error, OverflowError):  # a frame of 4 GiB or more: the record format cannot hold it
            self._disable_disk(OSError(errno.EFBIG, f"journal entry {entry.seq} is too large for a segment"))
            return
        segment = self._segments[-1] if self._segments else None
        if segment is None or (segment.offsets and segment.size + len(record) > self.segment_bytes):
            segment = self._new_segment(entry.seq, len(record))
            if segment is None:
                return
        segment.offsets.append(segment.size)
        if entry.parent_msg_id is not None:
            seqs = segment.parents.get(entry.parent_msg_id)
            if seqs is None:
                seqs = segment.parents[entry.parent_msg_id] = array("Q")
            seqs.append(entry.seq)
        segment.size += len(record)
        self._disk_total += len(record)
        self._pending += record
        if len(self._pending) >= FLUSH_BYTES:
            self.flush()
        elif self._flush_timer is None:
            self._arm_flush_timer()

    def _new_segment(self, first_seq: int, record_size: int) -> _Segment | None:
        self.flush()
        if not self._disk_enabled:
            return None
        room = max(self.segment_bytes, record_size + len(MAGIC))
        while self._segments and self._disk_total + room > self.disk_bytes:
            self._drop_oldest_segment()
        path = self.directory / f"{first_seq:020d}{_SEGMENT_SUFFIX}"
        try:
            fd = open_private_file(path, os.O_WRONLY | os.O_APPEND | os.O_TRUNC)
        except (OSError, LaunchError) as exc:
            self._disable_disk(exc)
            return None
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        segment = _Segment(path, first_seq)
        self._segments.append(segment)
        self._segment_firsts.append(first_seq)
        self._disk_total += len(MAGIC)
        self._pending += MAGIC
        return segment

    def _drop_oldest_segment(self) -> None:
        segment = self._segments.pop(0)
        del self._segment_firsts[0]
        self._disk_total -= segment.size
        ring_first = self._ring[0].seq if self._ring else self._last_seq + 1
        for parent, seqs in segment.parents.items():
            gone = bisect.bisect_left(seqs, ring_first)
            if gone:
                self._tally_dropped(parent, seqs[0], seqs[gone - 1], gone)
        try:
            segment.path.unlink()
        except OSError as exc:
            self._log.warning("cannot delete the journal segment %s: %s", segment.path, exc.strerror)

    def _tally_dropped(self, parent: str, first: int, last: int, count: int) -> None:
        tally = self._dropped.get(parent)
        if tally is None:
            self._dropped[parent] = [first, last, count]
            if len(self._dropped) > _DROPPED_PARENTS:
                self._dropped.popitem(last=False)
        else:
            tally[1] = last
            tally[2] += count
            self._dropped.move_to_end(parent)

    def _arm_flush_timer(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a script, a test): the next flush trigger writes it
        self._flush_timer = loop.call_later(JOURNAL_FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        """Write what is pending to the current segment (one ``os.write``; no fsync)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending or self._fd < 0:
            return
        segment = self._segments[-1]
        data = memoryview(self._pending)
        try:
            while data:
                written = os.write(self._fd, data)
                segment.durable += written
                data = data[written:]
        except OSError as exc:
            data.release()
            self._disable_disk(exc)
            return
        data.release()
        self._pending.clear()

    def _disable_disk(self, exc: OSError | LaunchError) -> None:
        """Go on in memory only: keep what was completely written, write nothing more."""
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self._log.warning(
            "journal: cannot write to %s (%s): journaling to disk is off for this kernel, replay keeps the "
            "last %d bytes in memory; free some space and restart the kernel's nanny to turn it back on",
            self.directory,
            reason,
            self.memory_bytes,
        )
        self._disk_enabled = False
        self._pending.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._segments:
            last = self._segments[-1]
            last.keep_durable()
            if not last.offsets:
                self._segments.pop()
                del self._segment_firsts[-1]

    @property
    def disk_enabled(self) -> bool:
        """Whether entries still go to disk (false after a write error, or with ``disk_bytes=0``)."""
        return self._disk_enabled

    @property
    def memory_used(self) -> int:
        """Bytes the memory ring holds, as counted against ``memory_bytes``."""
        return self._ring_bytes

    @property
    def disk_used(self) -> int:
        """Bytes of the segment files, as counted against ``disk_bytes`` (what is pending included)."""
        return self._disk_total

    # -- reading ---------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The newest entry's seq (0 before the first)."""
        return self._last_seq

    @property
    def first_seq(self) -> int:
        """The oldest entry still kept (``last_seq + 1`` when none is)."""
        firsts = [self._ring[0].seq] if self._ring else []
        if self._segments and self._segments[0].offsets:
            firsts.append(self._segments[0].first_seq)
        return min(firsts, default=self._last_seq + 1)

    def _disk_range(self) -> tuple[int, int]:
        """The seqs readable from disk (``first > last`` when none)."""
        if not self._segments:
            return 1, 0
        return self._segments[0].first_seq, self._segments[-1].last_seq

    def _on_disk(self, seq: int) -> bool:
        first, last = self._disk_range()
        return first <= seq <= last

    def read(
        self,
        since: int,
        *,
        parent_msg_id: str | None = None,
        last: int | None = None,
        max_bytes: int = DEFAULT_READ_BYTES,
    ) -> Batch:
        """Entries with ``seq > since``, oldest first, whose parent is ``parent_msg_id`` if given;
        with ``last=N`` only the last N of those (for the first page: continue without ``last``).

        A batch holds at most ``max_bytes`` of frames (but always one entry if there is one), so a
        read never holds the event loop for long; ``more`` says whether to read on from
        ``batch.last_seq``. ``lost`` counts the entries after ``since`` (after the first entry's
        predecessor, with ``last``) that were dropped: exact without a filter; with one, from a
        tally of the most recent parents' dropped entries, which counts all of a parent's dropped
        entries when ``since`` falls among them.
        """
        if last is not None and last < 0:
            raise ValueError(f"last must be >= 0, not {last}")
        self.flush()  # first: a write error found now changes what the disk holds
        if last is not None and parent_msg_id is None and self._lost(max(since, self._last_seq - last), None) == 0:
            since, last = max(since, self._last_seq - last), None  # the last N are all kept: no need to count
        ring_first = self._ring[0].seq if self._ring else self._last_seq + 1
        candidates: Iterator[int | Entry] = itertools.chain(
            self._disk_candidates(since, parent_msg_id, ring_first), self._ring_candidates(since, parent_msg_id)
        )
        if last is not None:
            tail = collections.deque(candidates, maxlen=last)
            if tail:
                since = _seq_of(tail[0]) - 1
            candidates = iter(tail)
        lost = self._lost(since, parent_msg_id)
        on_disk: list[int] = []
        from_ring: list[Entry] = []
        used = 0
        more = False
        for candidate in candidates:
            if isinstance(candidate, Entry):
                size = candidate.nbytes
            else:
                segment, index = self._locate(candidate)
                size = segment.end(index) - segment.offsets[index]  # >= its frames' bytes
            if used + size > max_bytes and (on_disk or from_ring):
                more = True
                break
            used += size
            if isinstance(candidate, Entry):
                from_ring.append(candidate)
            else:
                on_disk.append(candidate)
        entries = self._read_disk(on_disk) if on_disk else []
        entries += from_ring
        return Batch(tuple(entries), lost, more)

    def _lost(self, since: int, parent: str | None) -> int:
        if parent is not None:
            tally = self._dropped.get(parent)
            return 0 if tally is None or tally[1] <= since else tally[2]
        kept = 0
        disk_first, disk_last = self._disk_range()
        ring_first = self._ring[0].seq if self._ring else self._last_seq + 1
        kept += max(0, min(disk_last, ring_first - 1) - max(since + 1, disk_first) + 1)
        kept += max(0, self._last_seq - max(since + 1, ring_first) + 1)
        return max(0, self._last_seq - max(since, 0) - kept)

    def _disk_candidates(self, since: int, parent: str | None, ring_first: int) -> Iterator[int]:
        """The seqs after ``since`` (of ``parent``'s entries, if given) read from disk: those on
        disk and no longer in the ring, oldest first."""
        index = max(0, bisect.bisect_right(self._segment_firsts, since) - 1)
        for segment in self._segments[index:]:
            if segment.first_seq >= ring_first:
                break  # this one and the later ones are in the ring
            stop = min(segment.last_seq, ring_first - 1)
            if stop <= since:
                continue
            if parent is None:
                yield from range(max(since + 1, segment.first_seq), stop + 1)
            else:
                seqs = segment.parents.get(parent, ())
                for seq in itertools.islice(seqs, bisect.bisect_right(seqs, since), None):
                    if seq > stop:
                        break
                    yield seq

    def _ring_candidates(self, since: int, parent: str | None) -> Iterator[Entry]:
        """The ring's entries after ``since`` (of ``parent``, if given), oldest first."""
        if not self._ring:
            return
        entries = itertools.islice(self._ring, max(0, since + 1 - self._ring[0].seq), None)
        if parent is None:
            yield from entries
        else:
            yield from (entry for entry in entries if entry.parent_msg_id == parent)

    def _locate(self, seq: int) -> tuple[_Segment, int]:
        segment = self._segments[bisect.bisect_right(self._segment_firsts, seq) - 1]
        return segment, seq - segment.first_seq

    def _read_disk(self, seqs: list[int]) -> list[Entry]:
        """The on-disk entries ``seqs`` (ascending), one pread per run of consecutive records."""
        entries: list[Entry] = []
        run_start = 0
        for i in range(1, len(seqs) + 1):
            if i == len(seqs) or seqs[i] != seqs[i - 1] + 1 or self._locate(seqs[i])[1] == 0:
                self._read_run(seqs[run_start:i], entries)
                run_start = i
        return entries

    def _read_run(self, run: list[int], entries: list[Entry]) -> None:
        segment, first = self._locate(run[0])
        start = segment.offsets[first]
        length = segment.end(first + len(run) - 1) - start
        fd = os.open(segment.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            data = os.pread(fd, length, start)
        finally:
            os.close(fd)
        offset = 0
        for _ in run:
            entry, offset = _unpack(data, offset)
            entries.append(entry)

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is pending and close the current segment (idempotent); waiting readers wake."""
        self.closed = True
        self._wake_waiters()
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        """Close and delete the journal's files (the kernel was stopped)."""
        self.close()
        self._disk_enabled = False
        self._segments.clear()
        self._segment_firsts.clear()
        if os.path.islink(self.directory):
            return  # never ours: the journal refused it
        try:
            self._delete_segment_files()
            self.directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._log.warning("cannot remove the journal directory %s: %s", self.directory, exc.strerror)

    def _delete_segment_files(self) -> None:
        """Delete segments left in the directory (by a dead nanny, or ours); unlink never follows a link."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(_SEGMENT_SUFFIX):
                (self.directory / name).unlink(missing_ok=True)


#: How many parents' dropped-entry tallies are kept (for ``lost`` of filtered reads).
_DROPPED_PARENTS = 4096


def _ring_cost(entry: Entry) -> int:
    return sum(map(len, entry.frames)) + ENTRY_OVERHEAD + FRAME_OVERHEAD * len(entry.frames)


def _seq_of(candidate: int | Entry) -> int:
    return candidate.seq if isinstance(candidate, Entry) else candidate
