"""jupyter_client's BlockingKernelClient on a connection file from ``kernel-nanny start --transport tcp``.

(jupyter_console builds its client from the ports and key alone and ignores
CurveZMQ keys, so it needs an unencrypted file: the default ipc transport, as
tests/test_cli_nanny.py runs it.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import jupyter_client_on

from .conftest import LOCAL_SPEC, running_ids

CLI = [sys.executable, "-m", "kernel_nanny"]


@pytest.fixture
def tcp_kernel() -> Iterator[tuple[str, Path]]:
    """A kernel started by the CLI on loopback tcp; its spec declares curve, so the channels are encrypted."""
    started = subprocess.run(
        [*CLI, "start", f"spec/{LOCAL_SPEC}", "--transport", "tcp"], capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    kernel_id, connection_file = started.stdout.split()
    try:
        yield kernel_id, Path(connection_file)
    finally:
        subprocess.run([*CLI, "stop", kernel_id, "--now"], capture_output=True, timeout=120)
    assert kernel_id not in running_ids()


def test_blocking_kernel_client_executes_over_encrypted_tcp(tcp_kernel):
    kernel_id, connection_file = tcp_kernel
    info = json.loads(connection_file.read_text())
    assert info["transport"] == "tcp" and info["ip"] == "127.0.0.1"
    assert info["curve_publickey"] and info["curve_secretkey"]  # jupyter_client >= 8.10 reads these
    outputs: list[dict] = []
    with jupyter_client_on(connection_file, timeout=60) as kc:
        reply = kc.execute_interactive("import os\nprint(6 * 7)\nos.getpid()", timeout=60, output_hook=outputs.append)
    assert reply["content"]["status"] == "ok"
    assert [m["content"]["text"] for m in outputs if m["msg_type"] == "stream"] == ["42\n"]
    [result] = [m for m in outputs if m["msg_type"] == "execute_result"]
    assert int(result["content"]["data"]["text/plain"]) > 0
