"""The async KernelClient against real ipykernel processes."""

from __future__ import annotations

import asyncio
import logging

import pytest
import zmq
import zmq.asyncio

from kernel_nanny import ClientClosed, KernelClient, KernelTimeout
from kernel_nanny.protocol import Session


async def test_wait_for_ready_returns_kernel_info(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        reply = await kc.wait_for_ready(timeout=30)
    assert reply.msg_type == "kernel_info_reply"
    assert reply.content["status"] == "ok"
    assert reply.content["language_info"]["name"] == "python"


async def test_execute_interactive_gathers_outputs_in_order(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        seen = []
        result = await kc.execute_interactive(
            "import sys\nprint('one')\nprint('two', file=sys.stderr)\n6 * 7", output_hook=seen.append, timeout=30
        )
    assert result.ok and result.error is None
    assert result.stream_text("stdout") == "one\n"
    assert result.stream_text("stderr") == "two\n"
    assert result.outputs[-1].msg_type == "execute_result"
    assert result.outputs[-1].content["data"]["text/plain"] == "42"
    assert [m.msg_id for m in seen] == [m.msg_id for m in result.outputs]
    assert all(m.parent_id == result.reply.parent_id for m in result.outputs)


async def test_execute_interactive_reports_errors(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        first = await kc.execute_interactive("x = 1", timeout=30)
        result = await kc.execute_interactive("1 / 0", timeout=30)
    assert not result.ok
    assert result.error["ename"] == "ZeroDivisionError"
    assert any(m.msg_type == "error" for m in result.outputs)
    assert result.execution_count == first.execution_count + 1


async def test_concurrent_requests_get_their_own_replies(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        await kc.wait_for_ready(timeout=30)
        replies = await asyncio.gather(
            kc.execute("import time; time.sleep(0.2); a = 5"),
            kc.complete("impo"),
            kc.is_complete("for i in range(3):"),
            kc.kernel_info(),
            kc.comm_info(),
            kc.inspect("len"),
        )
    kinds = [r.msg_type for r in replies]
    assert kinds == [
        "execute_reply",
        "complete_reply",
        "is_complete_reply",
        "kernel_info_reply",
        "comm_info_reply",
        "inspect_reply",
    ]
    assert "import" in replies[1].content["matches"]
    assert replies[2].content["status"] == "incomplete"
    assert replies[5].content["found"] is True


async def test_history_returns_executed_code(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        await kc.execute_interactive("marker = 'h1'", timeout=30)
        reply = await kc.history(hist_access_type="tail", n=5)
    assert any("marker = 'h1'" in entry[2] for entry in reply.content["history"])


async def test_iopub_handlers_see_everything_even_if_one_fails(kernel, caplog):
    got = []

    def broken(msg):
        raise RuntimeError("handler bug")

    async with KernelClient(kernel.connection_info) as kc:
        kc.add_iopub_handler(broken)
        kc.add_iopub_handler(got.append)
        with caplog.at_level(logging.ERROR, logger="kernel_nanny.client"):
            await kc.execute_interactive("print('x')", timeout=30)
        kc.remove_iopub_handler(broken)
    assert "stream" in [m.msg_type for m in got]
    assert "handler bug" in caplog.text


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_stdin_hook_answers_input(kernel, asynchronous):
    prompts = []

    def answer(request):
        prompts.append(request.content["prompt"])
        return "Ada"

    async def answer_async(request):
        return answer(request)

    async with KernelClient(kernel.connection_info) as kc:
        result = await kc.execute_interactive(
            "name = input('who? ')\nprint('hello', name)",
            stdin_hook=answer_async if asynchronous else answer,
            timeout=30,
        )
    assert prompts == ["who? "]
    assert result.stream_text() == "hello Ada\n"


async def test_input_without_hook_fails_in_the_kernel(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        result = await kc.execute_interactive("input()", timeout=30)
    assert result.error["ename"] == "StdinNotImplementedError"


async def test_interrupt_request_on_control_stops_running_code(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        await kc.wait_for_ready(timeout=30)
        started = asyncio.Event()

        def on_output(msg):
            if msg.msg_type == "stream":
                started.set()

        execution = asyncio.ensure_future(
            kc.execute_interactive("import time\nprint('go', flush=True)\ntime.sleep(60)", output_hook=on_output)
        )
        await asyncio.wait_for(started.wait(), 30)
        reply = await kc.interrupt(timeout=10)
        result = await asyncio.wait_for(execution, 30)
    assert reply.msg_type == "interrupt_reply"
    assert result.error["ename"] == "KeyboardInterrupt"


async def test_shutdown_request_ends_the_kernel(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        await kc.wait_for_ready(timeout=30)
        reply = await kc.shutdown(timeout=10)
    status = await asyncio.wait_for(kernel.manager.wait(), 30)
    assert reply.content["restart"] is False
    assert status.exit_code == 0


async def test_heartbeat_follows_kernel_liveness(kernel):
    async with KernelClient(kernel.connection_info) as kc:
        assert await kc.heartbeat(timeout=5) is True
        await kernel.manager.kill()
        assert await kc.heartbeat(timeout=0.5) is False
        assert await kc.heartbeat(timeout=0.5) is False  # the stuck REQ socket was replaced


async def test_request_to_dead_kernel_times_out(kernel):
    await kernel.manager.kill()
    async with KernelClient(kernel.connection_info) as kc:
        with pytest.raises(KernelTimeout, match="kernel_info_request"):
            await kc.kernel_info(timeout=0.3)
        with pytest.raises(KernelTimeout, match="execution"):
            await kc.execute_interactive("1", timeout=0.3)
        with pytest.raises(TimeoutError):  # KernelTimeout is also the builtin TimeoutError
            await kc.wait_for_ready(timeout=0.3)


async def test_close_fails_pending_requests_and_later_use(kernel):
    kc = KernelClient(kernel.connection_info)
    await kc.wait_for_ready(timeout=30)
    pending = asyncio.ensure_future(kc.execute("import time; time.sleep(5)"))
    await asyncio.sleep(0)  # let the request be sent
    kc.close()
    kc.close()  # idempotent
    with pytest.raises(ClientClosed):
        await pending
    with pytest.raises(ClientClosed):
        await kc.kernel_info()
    await kc.wait_closed()
    assert kc.closed
    assert "state=closed" in repr(kc)


async def test_tcp_kernel_is_curve_encrypted(tcp_kernel):
    info = tcp_kernel.connection_info
    assert info["transport"] == "tcp" and info["ip"] == "127.0.0.1"
    assert info["curve_publickey"] and info["curve_secretkey"]
    async with KernelClient(info) as kc:
        result = await kc.execute_interactive("print('secret')", timeout=30)
    assert result.stream_text() == "secret\n"
    # A client that does not speak CurveZMQ gets nothing through.
    plain = {k: v for k, v in info.items() if not k.startswith("curve_")}
    async with KernelClient(plain) as kc:
        with pytest.raises(KernelTimeout):
            await kc.kernel_info(timeout=0.5)


async def test_bad_messages_from_the_kernel_side_are_dropped(caplog):
    """A peer that sends junk, unsigned and wrongly signed replies before the real one:
    the client logs and drops them, and still gets the real reply."""
    ctx = zmq.asyncio.Context.instance()
    server = ctx.socket(zmq.ROUTER)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    info = {"transport": "tcp", "ip": "127.0.0.1", "key": "k" * 16, "signature_scheme": "hmac-sha256"}
    info.update({f"{c}_port": port for c in ("shell", "iopub", "stdin", "control", "hb")})
    peer = Session(info["key"])
    try:
        async with KernelClient(info) as kc:
            with caplog.at_level(logging.WARNING, logger="kernel_nanny.client"):
                request = asyncio.ensure_future(kc.kernel_info(timeout=10))
                ident, *frames = await asyncio.wait_for(server.recv_multipart(), 10)
                parent = peer.deserialize(frames)
                reply = peer.msg("kernel_info_reply", {"status": "ok"}, parent=parent)
                good = peer.serialize(reply)
                unsigned = Session("").serialize(Session("").msg("kernel_info_reply", parent=parent))
                forged = Session("other").serialize(Session("other").msg("kernel_info_reply", parent=parent))
                for junk in ([b"garbage"], unsigned, forged, good[:3]):
                    await server.send_multipart([ident, *junk])
                await server.send_multipart([ident, *good])
                answer = await request
            assert answer.msg_id == reply.msg_id
            assert caplog.text.count("dropped a message on shell") == 4
    finally:
        server.close(linger=0)
