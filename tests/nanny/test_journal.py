"""The nanny's journal (issue 13): sequence numbers, the memory ring, disk segments, reads and their
``lost`` counts, permissions, and a full disk. Real files in temporary directories throughout; the
full disk is a real 1 MiB tmpfs (needs root; skipped otherwise)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from kernel_nanny.defaults import JOURNAL_FLUSH_INTERVAL
from kernel_nanny.nanny.journal import MAGIC, MESSAGE, Entry, Journal
from kernel_nanny.protocol import DELIMITER, Session, split_identities

KEY = b"journal-test-key"
KiB = 1024


class Kernel:
    """Signed iopub messages as a kernel publishes them, cut as the nanny will hand them over."""

    def __init__(self) -> None:
        self.session = Session(KEY)
        self.requests: dict[str, str] = {}

    def execute_request(self) -> str:
        request = self.session.msg("execute_request", {"code": "print(1)"})
        msg_id: str = request.header["msg_id"]
        self.requests[msg_id] = request.header
        return msg_id

    def stream(self, parent: str | None, text: str = "x\n", *, buffers: list[bytes] | None = None) -> list[bytes]:
        parent_header = {"header": self.requests[parent]} if parent else None
        msg = self.session.msg("stream", {"name": "stdout", "text": text}, parent=parent_header, buffers=buffers)
        frames = self.session.serialize(msg, identities=[b"kernel.stream"])
        return [bytes(frame) for frame in split_identities([bytes(f) for f in frames])[1]]


def append(journal: Journal, kernel: Kernel, parent: str | None = None, text: str = "x\n") -> int:
    return journal.append(kernel.stream(parent, text), received=time.time(), parent_msg_id=parent, msg_type="stream")


def read_all(journal: Journal, since: int = 0, **kwargs: object) -> list[Entry]:
    """Every entry after ``since``, paging batch by batch as a client does."""
    entries: list[Entry] = []
    while True:
        batch = journal.read(since, **kwargs)  # type: ignore[arg-type]
        entries += batch.entries
        if not batch.more:
            return entries
        assert batch.last_seq is not None
        since = batch.last_seq


def segment_files(journal: Journal) -> list[Path]:
    return sorted(journal.directory.glob("*.seg"))


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


def test_sequence_numbers_start_at_one_and_markers_share_them(tmp_path, kernel):
    journal = Journal(tmp_path)
    assert (journal.first_seq, journal.last_seq) == (1, 0)
    assert journal.mark("kernel_started", {"pid": 42}) == 1
    assert [append(journal, kernel) for _ in range(3)] == [2, 3, 4]
    assert journal.mark("kernel_died", {"status": -9}) == 5
    assert journal.mark("kernel_restarted", {"pid": 43}) == 6
    assert append(journal, kernel) == 7
    entries = journal.read(0).entries
    assert [e.seq for e in entries] == list(range(1, 8))
    assert [e.kind for e in entries] == ["kernel_started", *[MESSAGE] * 3, "kernel_died", "kernel_restarted", MESSAGE]
    assert entries[4].marker_content() == {"status": -9}
    with pytest.raises(ValueError, match="not a marker"):
        entries[1].marker_content()
    with pytest.raises(ValueError, match="marker kind"):
        journal.mark(MESSAGE, {})


def test_frames_come_back_byte_for_byte_and_still_verify_from_memory_and_disk(tmp_path, kernel):
    parent = kernel.execute_request()
    sent = [kernel.stream(parent, f"line {i}\n", buffers=[os.urandom(100)]) for i in range(50)]
    journal = Journal(tmp_path, memory_bytes=10 * KiB)  # most of them only on disk
    for frames in sent:
        journal.append(frames, received=123.5, parent_msg_id=parent, msg_type="stream")
    entries = journal.read(0).entries
    assert journal.read(journal.last_seq - 1).entries[0] is journal._ring[-1]  # the newest, from memory
    assert [list(e.frames) for e in entries] == sent
    assert {(e.received, e.msg_type, e.parent_msg_id) for e in entries} == {(123.5, "stream", parent)}
    client = Session(KEY)
    texts = [client.deserialize([DELIMITER, *e.frames]).content["text"] for e in entries]
    assert texts == [f"line {i}\n" for i in range(50)]


def test_the_ring_drops_oldest_first_and_older_entries_are_read_from_disk(tmp_path, kernel):
    journal = Journal(tmp_path, memory_bytes=8 * KiB)
    for _ in range(200):
        append(journal, kernel)
    ring = list(journal._ring)
    assert 0 < len(ring) < 200 and ring[-1].seq == 200
    assert [e.seq for e in ring] == list(range(ring[0].seq, 201))  # a contiguous newest run
    batch = journal.read(0)
    assert [e.seq for e in batch.entries] == list(range(1, 201))
    assert (batch.lost, batch.more, journal.first_seq) == (0, False, 1)


def test_memory_only_journal_counts_what_its_ring_dropped(tmp_path, kernel):
    journal = Journal(tmp_path, memory_bytes=8 * KiB, disk_bytes=0)
    for _ in range(200):
        append(journal, kernel)
    assert not (tmp_path / "journal").exists()
    first = journal.first_seq
    assert first > 1
    batch = journal.read(0)
    assert [e.seq for e in batch.entries] == list(range(first, 201))
    assert batch.lost == first - 1
    assert journal.read(first - 3).lost == 2
    assert journal.read(first - 1).lost == 0


def test_segments_rotate_and_the_oldest_go_when_the_disk_cap_is_reached(tmp_path, kernel):
    journal = Journal(tmp_path, memory_bytes=0, disk_bytes=16 * KiB, segment_bytes=4 * KiB)
    for _ in range(300):
        append(journal, kernel)
    journal.close()
    files = segment_files(journal)
    assert len(files) == 4
    assert sum(f.stat().st_size for f in files) <= 16 * KiB
    assert all(f.read_bytes().startswith(MAGIC) for f in files)
    assert all(f.stat().st_size <= 4 * KiB for f in files)
    first = journal.first_seq
    assert files[0].name == f"{first:020d}.seg"
    batch = journal.read(0)
    assert [e.seq for e in batch.entries] == list(range(first, 301))
    assert batch.lost == first - 1
    assert journal.read(first + 9).lost == 0
    assert journal.read(first - 2).lost == 1


def test_lost_counts_the_gap_left_after_disk_journaling_stopped(tmp_path, kernel, caplog):
    journal = Journal(tmp_path, memory_bytes=8 * KiB)
    for _ in range(100):
        append(journal, kernel)
    journal.flush()
    journal._disable_disk(OSError(28, "No space left on device"))  # what a full disk calls; see the tmpfs test
    for _ in range(200):
        append(journal, kernel)
    ring_first = journal._ring[0].seq
    assert ring_first > 101
    batch = journal.read(0)
    assert [e.seq for e in batch.entries] == [*range(1, 101), *range(ring_first, 301)]
    assert batch.lost == ring_first - 101
    assert journal.read(100).lost == ring_first - 101
    assert journal.read(ring_first - 1).lost == 0


def test_parent_filter_and_last(tmp_path, kernel):
    first, second = kernel.execute_request(), kernel.execute_request()
    journal = Journal(tmp_path, memory_bytes=4 * KiB, segment_bytes=4 * KiB)
    expected: dict[str | None, list[int]] = {first: [], second: [], None: []}
    for i in range(120):
        parent = (first, second, None)[i % 3]
        expected[parent].append(append(journal, kernel, parent))
    assert len(segment_files(journal)) > 2 and journal._ring[0].seq > 1  # on disk, in several segments, and in memory
    for parent in (first, second):
        assert [e.seq for e in read_all(journal, parent_msg_id=parent)] == expected[parent]
        assert [e.seq for e in read_all(journal, 50, parent_msg_id=parent)] == [s for s in expected[parent] if s > 50]
        assert {e.parent_msg_id for e in read_all(journal, parent_msg_id=parent)} == {parent}
        batch = journal.read(0, parent_msg_id=parent, last=5)
        assert [e.seq for e in batch.entries] == expected[parent][-5:]
    assert journal.read(0, parent_msg_id="no-such-request").entries == ()
    assert [e.seq for e in journal.read(0, last=7).entries] == list(range(114, 121))
    assert [e.seq for e in journal.read(117, last=7).entries] == [118, 119, 120]
    assert journal.read(0, last=0).entries == ()


def test_filtered_reads_say_how_many_of_that_parents_entries_were_dropped(tmp_path, kernel):
    old, new = kernel.execute_request(), kernel.execute_request()
    journal = Journal(tmp_path, memory_bytes=0, disk_bytes=8 * KiB, segment_bytes=4 * KiB)
    old_seqs = [append(journal, kernel, old) for _ in range(60)]
    new_seqs = [append(journal, kernel, new) for _ in range(5)]
    kept = [e.seq for e in read_all(journal, parent_msg_id=old)]
    assert kept and kept[0] > 1  # the first of them went with the oldest segment
    assert journal.read(0, parent_msg_id=old).lost == old_seqs.index(kept[0])
    assert journal.read(0, parent_msg_id=new).lost == 0
    assert [e.seq for e in read_all(journal, parent_msg_id=new)] == new_seqs
    assert journal.read(kept[0] - 1, parent_msg_id=old).lost == 0


def test_batches_hold_at_most_max_bytes_and_page_through_everything_once(tmp_path, kernel):
    journal = Journal(tmp_path, memory_bytes=16 * KiB)
    for i in range(400):
        append(journal, kernel, text=f"{i:05d}\n" * (i % 7 + 1))
    big = journal.append(
        kernel.stream(None, buffers=[b"b" * 5000]), received=0.0, parent_msg_id=None, msg_type="stream"
    )
    since, pages, seen = 0, 0, []
    while True:
        batch = journal.read(since, max_bytes=2 * KiB)
        assert batch.lost == 0
        assert sum(e.nbytes for e in batch.entries) <= 2 * KiB or [e.seq for e in batch.entries] == [big]
        seen += [e.seq for e in batch.entries]
        pages += 1
        if not batch.more:
            break
        assert batch.last_seq is not None
        since = batch.last_seq
    assert seen == list(range(1, big + 1))
    assert pages > 10
    assert journal.read(big).entries == () and not journal.read(big).more


def test_files_are_0600_in_a_0700_directory_and_remove_deletes_them(tmp_path, kernel):
    os.umask(0o022)
    journal = Journal(tmp_path, segment_bytes=4 * KiB)
    for _ in range(100):
        append(journal, kernel)
    journal.flush()
    files = segment_files(journal)
    assert len(files) > 1
    assert stat.S_IMODE(journal.directory.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    journal.remove()
    assert not journal.directory.exists()
    assert tmp_path.exists()


def test_a_new_journal_starts_empty_and_deletes_a_dead_nannys_segments(tmp_path, kernel):
    old = Journal(tmp_path, segment_bytes=4 * KiB)
    for _ in range(100):
        append(old, kernel)
    old.close()  # a new nanny starts a new journal: the old one is not reopened
    journal = Journal(tmp_path, segment_bytes=4 * KiB)
    assert segment_files(journal) == []
    assert (journal.first_seq, journal.last_seq) == (1, 0)
    assert append(journal, kernel) == 1


def test_a_symbolic_link_where_a_segment_goes_is_never_written_through(tmp_path, kernel, caplog):
    journal = Journal(tmp_path)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    (journal.directory / f"{1:020d}.seg").symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="kernel_nanny.nanny"):
        assert append(journal, kernel) == 1
    assert target.read_bytes() == b"precious"
    assert not journal.disk_enabled
    assert "symbolic link" in caplog.text
    assert [e.seq for e in journal.read(0).entries] == [1]


async def test_pending_entries_are_written_within_the_flush_interval(tmp_path, kernel):
    journal = Journal(tmp_path)
    append(journal, kernel)
    [segment] = segment_files(journal)
    assert segment.stat().st_size == 0  # pending: an append makes no system call
    after_flush = asyncio.get_running_loop().create_future()
    # Timers fire in deadline order: this one, armed after the journal's, fires after it.
    asyncio.get_running_loop().call_later(JOURNAL_FLUSH_INTERVAL, after_flush.set_result, None)
    await after_flush
    assert segment.stat().st_size == journal._segments[0].size


def test_close_writes_everything(tmp_path, kernel):
    journal = Journal(tmp_path)
    for _ in range(10):
        append(journal, kernel)
    journal.close()
    journal.close()
    [segment] = segment_files(journal)
    assert segment.stat().st_size == journal._segments[0].size


def test_sizes_are_validated(tmp_path):
    with pytest.raises(ValueError, match="must hold at least one segment"):
        Journal(tmp_path, disk_bytes=1 * KiB, segment_bytes=4 * KiB)
    with pytest.raises(ValueError, match="positive"):
        Journal(tmp_path, memory_bytes=-1)


@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 1 MiB tmpfs (a disk that fills) needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    mount.chmod(0o700)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_turns_disk_journaling_off_with_one_warning(small_tmpfs, kernel, caplog):
    journal = Journal(small_tmpfs, memory_bytes=64 * KiB, disk_bytes=4 * 1024 * KiB, segment_bytes=256 * KiB)
    payload = "y" * 900
    with caplog.at_level(logging.WARNING, logger="kernel_nanny.nanny"):
        for _ in range(3000):  # ~3 MiB: the 1 MiB file system fills on the way
            append(journal, kernel, text=payload)
        journal.flush()
    assert not journal.disk_enabled
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "No space left on device" in warnings[0].getMessage()
    assert journal.last_seq == 3000
    batch_entries = read_all(journal)
    seqs = [e.seq for e in batch_entries]
    on_disk_last = journal._segments[-1].last_seq
    ring_first = journal._ring[0].seq
    assert 1 < on_disk_last < ring_first
    assert seqs == [*range(1, on_disk_last + 1), *range(ring_first, 3001)]
    assert journal.read(0).lost == ring_first - on_disk_last - 1
    client = Session(KEY)
    assert all(client.deserialize([DELIMITER, *e.frames]).content["text"] == payload for e in batch_entries)
    journal.remove()


def test_a_symbolic_link_in_place_of_the_journal_directory_is_refused(tmp_path, kernel, caplog):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{7:020d}.seg").write_bytes(b"not the journal's")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "journal").symlink_to(elsewhere)
    with caplog.at_level(logging.WARNING, logger="kernel_nanny.nanny"):
        journal = Journal(state)
    assert not journal.disk_enabled
    assert "symbolic link" in caplog.text
    assert append(journal, kernel) == 1
    assert [e.seq for e in journal.read(0).entries] == [1]
    journal.remove()
    assert sorted(p.name for p in elsewhere.iterdir()) == [f"{7:020d}.seg"]
    assert (state / "journal").is_symlink()


def test_an_absurd_parent_msg_id_is_kept_unindexed_instead_of_breaking_the_record(tmp_path, kernel):
    journal = Journal(tmp_path, memory_bytes=0)  # read back from disk
    frames = kernel.stream(None)
    seq = journal.append(frames, received=0.0, parent_msg_id="p" * 70_000, msg_type="stream")
    journal.mark("kernel_died", {"frames": 1})
    assert journal.disk_enabled
    [entry, _] = journal.read(0).entries
    assert (entry.seq, entry.parent_msg_id, list(entry.frames)) == (seq, None, frames)
