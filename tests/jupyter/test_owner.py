"""A papermill-like run, modelled: nbclient in a subprocess, killed mid-cell, leaves no nanny behind.

As with jupyter_client's local provisioner, a kernel ends with the process
that started it, however that process ends (``timeout`` sends SIGTERM, an
out-of-memory killer SIGKILL), unless its kernelspec configures the
provisioner as persistent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from kernel_nanny import ManagerClient
from kernel_nanny.client.running import list_running_kernels

from ..helpers import ProcessExit
from .conftest import NANNY_SPEC, PERSISTENT_SPEC

#: Runs a one-cell notebook with nbclient; the cell tells the FIFO its parent (the nanny) and itself, then sleeps.
RUN_NOTEBOOK = textwrap.dedent(
    """
    import sys
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    spec, fifo = sys.argv[1:]
    code = (
        "import json, os, time\\n"
        f"with open({fifo!r}, 'w') as f:\\n"
        "    f.write(json.dumps([os.getppid(), os.getpid()]))\\n"
        "time.sleep(600)"
    )
    metadata = {"kernelspec": {"name": spec, "display_name": spec, "language": "python"}}
    NotebookClient(new_notebook(cells=[new_code_cell(code)], metadata=metadata), timeout=600).execute()
    """
)


async def mid_cell(fifo: Path) -> tuple[int, int]:
    """The (nanny, kernel) pids the running cell wrote into ``fifo``: the cell is running once they arrive."""
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # no writer yet: it becomes readable when the cell writes
    loop = asyncio.get_running_loop()
    arrived = loop.create_future()
    loop.add_reader(reader, lambda: arrived.done() or arrived.set_result(None))
    try:
        await asyncio.wait_for(arrived, 120)
        # The writer is there now and closes right after writing: block until its EOF (non-blocking reads could
        # find the FIFO empty between its write and its close).
        os.set_blocking(reader, True)
        data = b""
        while chunk := os.read(reader, 4096):  # the cell closes the FIFO after writing: read to EOF
            data += chunk
    finally:
        loop.remove_reader(reader)
        os.close(reader)
    nanny_pid, kernel_pid = json.loads(data)
    return nanny_pid, kernel_pid


@pytest.mark.parametrize(
    ("spec", "signum"),
    [(NANNY_SPEC, signal.SIGTERM), (NANNY_SPEC, signal.SIGKILL), (PERSISTENT_SPEC, signal.SIGKILL)],
)
async def test_a_notebook_run_killed_mid_cell_leaves_no_nanny_unless_persistent(tmp_path, spec, signum):
    fifo = tmp_path / "cell-running"
    os.mkfifo(fifo)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", RUN_NOTEBOOK, spec, str(fifo))
    try:
        nanny_pid, kernel_pid = await mid_cell(fifo)
        nanny, kernel = ProcessExit(nanny_pid), ProcessExit(kernel_pid)
        [listed] = [k for k in list_running_kernels() if k.nanny_pid == nanny_pid]
        process.send_signal(signum)
        await process.wait()
        if spec == PERSISTENT_SPEC:
            async with ManagerClient(listed.info) as manager:
                assert await manager.is_alive()  # outlived the run, as configured
                await manager.shutdown(now=True)
        await nanny.wait()
        await kernel.wait()
        assert not listed.connection_file.exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
