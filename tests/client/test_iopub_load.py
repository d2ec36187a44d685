"""Kernel output under load: the client's own iopub queue drops nothing (issue 11, item 15).

A kernel that prints faster than the client reads fills the client's iopub
receive queue; ZeroMQ then stops reading, the kernel's PUB queue fills in turn
and the kernel drops what follows. With both CPUs busy the client falls behind
easily: at ZeroMQ's default high-water mark (1,000 messages) it lost lines.
With CPU burners added, the kernel's own send queue can still overflow when
the client's I/O thread gets no CPU at all; that loss is the kernel's, and
the nanny's journal (issue 13) is what fills it, so this test leaves the
CPUs alone and measures our queue.

The client here is also made slow on purpose (its output hook pauses 50 ms
every 100 lines), so it falls far behind on every run, not only when the
scheduler says so: what is measured is its own queue, not the machine's load.
"""

from __future__ import annotations

import time

import pytest

from kernel_nanny import KernelClient

pytestmark = pytest.mark.slow

#: Flushed lines the kernel prints: more than the kernels we start queue per subscriber themselves
#: (``KERNEL_IOPUB_SNDHWM``, 50,000) plus zmq's default receive high-water mark (1,000), so that only the
#: client's own deep queue keeps them all.
LINES = 70_000


async def test_every_flushed_line_reaches_a_slow_client_once_and_in_order(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        await kc.wait_for_ready(timeout=30)
        code = f"for i in range({LINES}):\n    print(i, flush=True)"
        seen = 0

        def slow_consumer(msg: object) -> None:
            nonlocal seen
            seen += 1
            if seen % 100 == 0:
                time.sleep(0.05)

        result = await kc.execute_interactive(code, output_hook=slow_consumer, timeout=240)
    assert result.ok, result.error
    lines = result.stream_text("stdout").splitlines()
    assert lines == [str(i) for i in range(LINES)], f"{LINES - len(lines)} of {LINES} lines lost or extra"
