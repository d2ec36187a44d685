"""The nanny's iopub journal (issue 13), alone: no kernel, no sockets. jupyter_client has no
counterpart, so every row is ours only.

* ``journal``: append cost per entry (memory ring + disk segments, and memory only), replay cost per
  message from the memory ring and from disk segments (paging in 1 MiB batches as the nanny will),
  against the issue's goals (>= 50,000 msg/s from memory, >= 20,000 msg/s from disk); and the RSS of
  a process holding the nanny's imports and a full default ring (goal <= 45 MiB), in a child process
  so that this one's heap does not count.

Messages are signed iopub ``stream`` messages of a typical print (~490 bytes), each frame copied into a
bytes object of its exact size as ``recv_multipart`` gives them (orjson's own output over-allocates to
1 KiB, which would measure orjson, not the journal).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Config, Row

from kernel_nanny.nanny.journal import DEFAULT_MEMORY_BYTES, Journal
from kernel_nanny.protocol import Session, split_identities

GOAL_MEMORY_RATE = 50_000
GOAL_DISK_RATE = 20_000
GOAL_RSS = 45 * 1024 * 1024


def _messages(count: int) -> list[list[bytes]]:
    kernel = Session(b"bench-key")
    parent = kernel.msg("execute_request", {"code": "for i in range(10**6): print(i, flush=True)"})
    frames = []
    for i in range(count):
        msg = kernel.msg("stream", {"name": "stdout", "text": f"{i}\n"}, parent=parent)
        raw = [memoryview(f).tobytes() for f in kernel.serialize(msg, identities=[b"kernel.stream"])]
        frames.append(split_identities(raw)[1])
    return frames


def _fill(journal: Journal, messages: list[list[bytes]], count: int, parent: str) -> list[float]:
    """Append ``count`` entries in rounds of 1000; per-entry seconds of each round."""
    per_entry = []
    for start in range(0, count, 1000):
        t0 = time.perf_counter()
        for i in range(start, start + 1000):
            journal.append(messages[i % len(messages)], received=0.0, parent_msg_id=parent, msg_type="stream")
        per_entry.append((time.perf_counter() - t0) / 1000)
    journal.flush()
    return per_entry


def _replay(journal: Journal, since: int) -> tuple[float, int]:
    """Page through everything after ``since``; (seconds per message, messages)."""
    count = 0
    t0 = time.perf_counter()
    while True:
        batch = journal.read(since)
        count += len(batch.entries)
        if not batch.more or batch.last_seq is None:
            break
        since = batch.last_seq
    return (time.perf_counter() - t0) / max(count, 1), count


def _rate_goal(row: Row, rate: int) -> Row:
    median = statistics.median(row.ours)
    row.goal = f">= {rate:,} msg/s"
    row.goal_met = 1 / median >= rate
    row.goal_detail = f"{1 / median:,.0f} msg/s (median of {len(row.ours)} replays)"
    return row


_RSS_SCRIPT = """
import sys, time
import kernel_nanny.nanny.core  # what a nanny imports
from kernel_nanny.nanny.journal import Journal
from kernel_nanny.protocol import Session, split_identities

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

kernel = Session(b"bench-key")
parent = kernel.msg("execute_request", {})
before = rss()
journal = Journal(__import__("pathlib").Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    msg = kernel.msg("stream", {"name": "stdout", "text": f"{i}\\n"}, parent=parent)
    raw = [memoryview(f).tobytes() for f in kernel.serialize(msg, identities=[b"kernel.stream"])]
    frames = split_identities(raw)[1]
    journal.append(frames, received=time.time(), parent_msg_id=parent.header["msg_id"], msg_type="stream")
journal.close()
print(before, rss(), len(journal._ring))
"""


def _rss_with_full_ring(directory: Path, entries: int) -> tuple[int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(directory), str(entries)], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, ring = (int(x) for x in out)
    return before, after, ring


def bench_journal(cfg: Config) -> list[Row]:
    rounds = cfg.n(10, 3)
    messages = _messages(1000)
    parent = "a" * 32 + "_1"
    root = Path(tempfile.mkdtemp(prefix="kn-bench-journal-"))
    try:
        append_disk: list[float] = []
        append_memory: list[float] = []
        replay_memory: list[float] = []
        replay_disk: list[float] = []
        counts = {"memory": 0, "disk": 0}
        for r in range(rounds):
            journal = Journal(root / f"disk{r}")
            append_disk += _fill(journal, messages, cfg.n(50_000, 20_000), parent)
            ring_first = journal._ring[0].seq
            seconds, counts["memory"] = _replay(journal, ring_first - 1)
            replay_memory.append(seconds)
            journal.remove()

            memory_only = Journal(root / f"mem{r}", disk_bytes=0)
            append_memory += _fill(memory_only, messages, cfg.n(20_000, 10_000), parent)

            disk_only = Journal(root / f"seg{r}", memory_bytes=0)
            _fill(disk_only, messages, cfg.n(100_000, 30_000), parent)
            seconds, counts["disk"] = _replay(disk_only, 0)
            replay_disk.append(seconds)
            disk_only.remove()
        before, after, ring = _rss_with_full_ring(root / "rss", 40_000)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    size = sum(map(len, messages[0]))
    rss_row = Row(
        "journal",
        "RSS: python + the nanny's imports + a full default ring (8 MiB)",
        [float(after)],
        unit="B",
        notes=[
            f"RSS before filling {before / 2**20:.1f} MiB; the ring ({ring} entries of ~{size} B, "
            f"{DEFAULT_MEMORY_BYTES / 2**20:g} MiB by its count) added {(after - before) / 2**20:.1f} MiB"
        ],
    )
    rss_row.goal, rss_row.goal_met = "<= 45 MiB", after <= GOAL_RSS
    rss_row.goal_detail = f"{after / 2**20:.1f} MiB"
    return [
        Row("journal", f"append (memory ring + disk), per entry, ~{size} B messages", append_disk),
        Row("journal", "append (memory ring only, disk_bytes=0), per entry", append_memory),
        _rate_goal(
            Row("journal", f"replay from the memory ring, per message ({counts['memory']} msgs)", replay_memory),
            GOAL_MEMORY_RATE,
        ),
        _rate_goal(
            Row("journal", f"replay from disk segments, per message ({counts['disk']} msgs)", replay_disk),
            GOAL_DISK_RATE,
        ),
        rss_row,
    ]
