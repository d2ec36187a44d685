"""No lost output under load (issue 13, item 3): 100,000 flushed prints while other processes saturate the CPUs.

A kernel's iopub is a PUB socket: a subscriber that falls behind loses
messages. A ``KernelClient`` of a kernel behind a nanny reads iopub from the
nanny's journal instead, so a slow reader (this one pauses every 1,000 lines)
reads on from the record and gets everything recorded, once and in order.
What the kernel's socket drops before the nanny reads it is in no record, so
the kernel's socket must not drop: the ipykernel kernels kernel-nanny starts
queue 50,000 messages per subscriber, the nanny's recorder among them
(:mod:`kernel_nanny.ipykernel_launcher`). jupyter_client's count on the same
machine is in ``bench/run.py --only lossless``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from kernel_nanny import KernelClient, LaunchRequest, ManagerClient, Message, start_kernel

pytestmark = pytest.mark.slow

LINES = 100_000


@pytest.fixture
def saturated_cpus() -> Iterator[None]:
    """One busy loop per CPU, at the same priority as the kernel, its nanny and the client."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


async def test_every_recorded_line_of_a_flood_reaches_a_slow_client_once_in_order_with_the_cpus_saturated(
    saturated_cpus,
):
    request = LaunchRequest(kernel_type="pyimport/kernel", supervised=True, params={"echo_output": False})
    async with start_kernel(request) as (info, manager):
        assert isinstance(manager, ManagerClient)
        seqs: list[int] = []

        def slow_consumer(msg: Message) -> None:
            assert msg.seq is not None
            seqs.append(msg.seq)
            if len(seqs) % 1000 == 0:
                time.sleep(0.05)

        async with KernelClient(info) as kc:
            assert kc.journal  # the default for a kernel behind a nanny
            await kc.wait_for_ready(timeout=60)
            code = f"for i in range({LINES}):\n    print(i, flush=True)"
            result = await kc.execute_interactive(code, output_hook=slow_consumer, timeout=900)
            assert kc.lost == 0
        recorded = [
            entry.message
            async for entry in manager.replay(0, parent_msg_id=result.reply.parent_id)
            if entry.message is not None and entry.message.msg_type == "stream"
        ]
    assert result.ok, result.error
    lines = result.stream_text("stdout").splitlines()
    # What the nanny recorded, the client got: every line, once, in order, however slow it read.
    assert lines == "".join(m.content["text"] for m in recorded).splitlines()
    assert all(later > earlier for earlier, later in zip(seqs, seqs[1:], strict=False)), "journal order broken"
    # And the nanny recorded all of it: the kernel's socket queues the burst for it (ipykernel_launcher).
    assert lines == [str(i) for i in range(LINES)], f"{len(lines)} of {LINES} lines were recorded"


async def test_a_client_resumes_after_the_last_seq_it_processed(nanny_kernel):
    """Exactly the missed messages, once, in order, then live: no gap and no duplicate at the seam."""
    info, _ = nanny_kernel
    async with KernelClient(info) as first:
        await first.wait_for_ready(timeout=30)
        await first.execute_interactive("print('before')")
        remembered = first.last_seq
    assert remembered is not None
    async with KernelClient(info, journal=False) as other:  # output the first client was not there for
        await other.execute_interactive("for i in range(3): print('missed', i)")
    seen: list[Message] = []
    async with KernelClient(info, since=remembered) as resumed:
        resumed.add_iopub_handler(seen.append)
        await resumed.execute_interactive("print('live')")
    texts = [m.content["text"] for m in seen if m.msg_type == "stream"]
    assert "".join(texts) == "missed 0\nmissed 1\nmissed 2\nlive\n"
    seqs = [m.seq for m in seen]
    assert seqs == list(range(remembered + 1, remembered + 1 + len(seqs)))  # every entry once, in order
