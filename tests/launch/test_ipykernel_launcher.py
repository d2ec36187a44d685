"""The iopub mark of the ipykernel kernels kernel-nanny starts holds a burst for every subscriber, early or late.

zmq gives a connection the mark its socket had when it was bound, whatever
it was raised to since: a subscriber that connects once the kernel is up (the
nanny's recorder, any client) would keep zmq's default of 1,000 queued
messages and lose the rest of a burst it is slow to read.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import zmq
import zmq.asyncio

from kernel_nanny import KernelClient, LaunchRequest, start_kernel
from kernel_nanny.client._sockets import connect
from kernel_nanny.defaults import KERNEL_IOPUB_SNDHWM
from kernel_nanny.protocol import Session
from kernel_nanny.protocol.connection import channel_url

BURST = 20_000  # well above zmq's default mark, well below ours
assert BURST < KERNEL_IOPUB_SNDHWM


async def test_a_subscriber_that_connects_after_the_kernel_is_up_and_reads_nothing_during_a_burst_loses_nothing():
    async with start_kernel(LaunchRequest(kernel_type="pyimport/kernel")) as (info, _manager):
        session = Session(info["key"], info["signature_scheme"])
        # Everything, and a topic of its own: ipykernel welcomes a new topic, which proves the subscription.
        own_topic = f"late-{uuid.uuid4().hex}"
        url = channel_url(info, "iopub")
        late = connect(zmq.asyncio.Context.instance(), zmq.SUB, url, info, topics=(b"", own_topic.encode()))
        late.rcvhwm = 1  # what it does not read waits in the kernel, not here
        try:
            while True:
                welcome = session.deserialize(await late.recv_multipart())
                if welcome.msg_type == "iopub_welcome" and welcome.content.get("subscription") == own_topic:
                    break
            async with KernelClient(info) as kc:
                result = await kc.execute_interactive(
                    f"for i in range({BURST}):\n    print(i, flush=True)", timeout=300
                )
            assert result.ok, result.error
            printed: list[str] = []
            while True:  # only now does it read; a dropped burst ends in silence (its idle went too)
                try:
                    frames = await asyncio.wait_for(late.recv_multipart(), 30)
                except TimeoutError:
                    pytest.fail(f"the late subscriber got {len(''.join(printed).split())} of {BURST} lines")
                msg = session.deserialize(frames)
                if msg.parent_id != result.reply.parent_id:
                    continue
                if msg.msg_type == "stream":
                    printed.append(msg.content["text"])
                elif msg.msg_type == "status" and msg.content["execution_state"] == "idle":
                    break
        finally:
            late.close(linger=0)
    assert "".join(printed).split() == [str(i) for i in range(BURST)]
