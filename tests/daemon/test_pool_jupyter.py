"""Jupyter's tools get pooled kernels through the provisioner when a daemon runs: jupyter_client's
KernelManager and nbclient, with a kernelspec that selects the kernel-nanny provisioner."""

from __future__ import annotations

import json
import sys

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

SPEC = "kn-pool-python"
#: The pool JupyterLab and nbclient can take from: jupyter_client's kernels are on tcp, without CurveZMQ.
POOL = f'[pool."spec/{SPEC}"]\nsize = 2\ntransport = "tcp"\nencryption = "disabled"\n'


def _spec(isolated, monkeypatch, name: str = SPEC) -> None:
    folder = isolated / "data" / "kernels" / name
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": "kernel-nanny"}},
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(isolated / "data"))


async def _pooled(client) -> list[str]:
    assert (await client.pools(wait=120))["settled"]
    return [e["kernel_id"] for e in await client.list_kernels(pooled=True) if e["pool"]]


async def test_a_kernel_manager_gets_a_pooled_kernel_in_its_directory(make_daemon, isolated, monkeypatch, tmp_path):
    _spec(isolated, monkeypatch)
    daemon = await make_daemon(POOL)
    async with daemon.client() as client:
        pooled = await _pooled(client)
        km = AsyncKernelManager(kernel_name=SPEC)
        await km.start_kernel(cwd=str(tmp_path))
        try:
            kc = km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=60)
            reply = await kc.execute_interactive("import os; print(os.getcwd())", timeout=60)
            assert reply["content"]["status"] == "ok" and reply["content"]["execution_count"] == 1
            kc.stop_channels()
            (entry,) = await client.list_kernels()
            assert entry["name"] == km.kernel_id  # the daemon's kernel, named by jupyter_client's id
            assert entry["kernel_id"] in pooled
        finally:
            await km.shutdown_kernel(now=True)
        assert await client.list_kernels() == []
    assert "from the pool" in daemon.log()


async def test_nbclient_runs_a_notebook_in_a_pooled_kernel(make_daemon, isolated, monkeypatch, tmp_path):
    _spec(isolated, monkeypatch)
    daemon = await make_daemon(POOL)
    async with daemon.client() as client:
        await _pooled(client)
    nb = new_notebook(
        cells=[new_code_cell("import os\nprint(os.getcwd())"), new_code_cell("x = 6 * 7\nx")],
        metadata={"kernelspec": {"name": SPEC, "display_name": SPEC, "language": "python"}},
    )
    await NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).async_execute()
    assert nb.cells[0].outputs[0].text == f"{tmp_path}\n"
    assert nb.cells[1].outputs[0].data["text/plain"] == "42"
    assert nb.cells[1].execution_count == 2
    nbformat.validate(nb)
    assert "from the pool" in daemon.log()


async def test_nbclient_on_a_python3_spec_takes_a_pool_with_its_history_switch(
    make_daemon, isolated, monkeypatch, tmp_path
):
    """nbclient adds ``--HistoryManager.hist_file=:memory:`` to kernels named python3: a pool with that switch
    serves it (one without would not: its kernels keep their history on disk)."""
    _spec(isolated, monkeypatch, "python3")
    switch = "--HistoryManager.hist_file=:memory:"
    daemon = await make_daemon(
        f'[pool."spec/python3"]\nsize = 1\ntransport = "tcp"\nencryption = "disabled"\nswitches = ["{switch}"]\n'
    )
    async with daemon.client() as client:
        (pooled,) = await _pooled(client)
    nb = new_notebook(
        cells=[new_code_cell("get_ipython().history_manager.hist_file")],
        metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}},
    )
    await NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).async_execute()
    assert nb.cells[0].outputs[0].data["text/plain"] == "':memory:'"
    assert f"[kernel={pooled[:8]}] launched spec/python3 from the pool" in daemon.log()
