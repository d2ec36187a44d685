"""The blocking client: the async client on a private loop thread."""

from __future__ import annotations

import threading

import pytest

from kernel_nanny import BlockingKernelClient, ClientClosed
from tests.helpers import jupyter_client_on


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kernel-nanny-client"]


async def test_blocking_client_runs_code_and_stops_its_thread(kernel):
    before = len(_loop_threads())
    seen = []
    with BlockingKernelClient.from_connection_file(kernel.manager.connection_file) as kc:
        assert len(_loop_threads()) == before + 1
        assert kc.wait_for_ready(timeout=30).msg_type == "kernel_info_reply"
        kc.add_iopub_handler(seen.append)
        result = kc.execute_interactive("print('blocking'); 2 ** 10", timeout=30)
        assert kc.execute("y = 3", timeout=30).content["status"] == "ok"
        assert kc.heartbeat(timeout=5)
    assert result.stream_text() == "blocking\n"
    assert result.outputs[-1].content["data"]["text/plain"] == "1024"
    assert any(m.msg_type == "stream" for m in seen)
    assert len(_loop_threads()) == before
    kc.close()  # idempotent


async def test_blocking_client_after_close_raises(kernel):
    kc = BlockingKernelClient(kernel.connection_info)
    kc.close()
    with pytest.raises(ClientClosed):
        kc.kernel_info(timeout=1)


async def test_calling_blocking_methods_from_a_hook_is_refused(kernel):
    errors = []
    with BlockingKernelClient(kernel.connection_info) as kc:

        def hook(msg):
            try:
                kc.kernel_info(timeout=1)
            except RuntimeError as exc:
                errors.append(str(exc))

        kc.execute_interactive("print(1)", output_hook=hook, timeout=30)
    assert errors and "own event loop thread" in errors[0]


async def test_jupyter_client_talks_to_a_kernel_we_launched(kernel):
    """Our connection file is one jupyter_client understands."""
    with jupyter_client_on(kernel.manager.connection_file) as kc:
        reply = kc.execute_interactive("print('interop')", timeout=30, output_hook=lambda m: None)
    assert reply["content"]["status"] == "ok"


async def test_our_tcp_curve_kernel_works_for_jupyter_client(tcp_kernel):
    with jupyter_client_on(tcp_kernel.manager.connection_file) as kc:
        assert kc.curve_publickey is not None
        assert kc.execute_interactive("1", timeout=30, output_hook=lambda m: None)["content"]["status"] == "ok"
