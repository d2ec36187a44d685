"""The daemon under concurrent load from several client processes: every request succeeds.

Each client process lists and asks while it launches and shuts down kernels of
its own, so listings ask nannies that are being shut down and shutdowns finish
while listings still wait on the same nanny (issue 11, item 14).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from kernel_nanny import DaemonClient, KernelNannyError

CLIENTS = 10
REQUESTS = 100
CYCLES = 2

_ROOT = Path(__file__).resolve().parents[2]


async def client_process(requests: int, cycles: int) -> list[str]:
    """One client's load: ``cycles`` launch/shutdown cycles, with listings and queries all the while.

    At least ``requests`` of them, and more until the cycles are done, so they overlap every launch and
    shutdown. Returns every error as ``"what: ErrorType: message"`` (none is the expected result).
    """
    errors: list[str] = []
    async with DaemonClient.find() as client:
        cycles_done = asyncio.Event()

        async def ask() -> None:
            queries = (lambda: client.list_kernels(info=True), client.info, client.list_kernels)
            i = 0
            while i < requests or not cycles_done.is_set():
                try:
                    await queries[i % len(queries)]()
                except KernelNannyError as exc:
                    errors.append(f"request {i}: {type(exc).__name__}: {exc}")
                i += 1

        async def cycle() -> None:
            try:
                for i in range(cycles):
                    try:
                        info, manager = await client.launch("pyimport/kernel", launch_params={"echo_output": False})
                        await manager.cleanup()
                        await client.shutdown_kernel(info["kernel_id"])
                    except KernelNannyError as exc:
                        errors.append(f"cycle {i}: {type(exc).__name__}: {exc}")
            finally:
                cycles_done.set()

        await asyncio.gather(ask(), cycle())
    return errors


async def test_concurrent_clients_launch_list_and_shut_down_without_errors(make_daemon):
    daemon = await make_daemon()
    code = (
        "import asyncio, json\n"
        "from tests.daemon.test_daemon_load import client_process\n"
        f"print(json.dumps(asyncio.run(client_process({REQUESTS}, {CYCLES}))))\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, cwd=_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(CLIENTS)
    ]
    outputs = await asyncio.gather(*(process.communicate() for process in processes))
    errors = []
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
        errors += json.loads(stdout)
    assert errors == [], f"{len(errors)} failed requests:\n" + "\n".join(errors)
    async with daemon.client() as client:
        assert await client.list_kernels() == []
