"""The daemon's kernel pool with real kernels: hits, refills, take-time binding, disturbed and dead pooled
kernels, misses, limits, back-off, survival of a daemon SIGKILL, listings, culling, owners."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kernel_nanny import DaemonClient, KernelClient, KernelExecution, ManagerClient

QUIET = {"echo_output": False}
POOL = '[pool."pyimport/kernel"]\nsize = 2\n'
PROBE = {
    "cwd": "__import__('os').getcwd()",
    "path": "repr(__import__('sys').path)",
    "count": "get_ipython().execution_count",
    "dh": "repr(_dh)",
    "var": "__import__('os').environ.get('POOL_TEST_VAR')",
}


async def _warm(client: DaemonClient) -> list[str]:
    """Wait until the pools are full; the pooled kernels' ids."""
    status = await client.pools(wait=120)
    assert status["settled"], status
    return [e["kernel_id"] for e in await client.list_kernels(pooled=True) if e["pool"]]


async def _probe(info: dict[str, Any]) -> dict[str, str]:
    """What the kernel says about itself, asked silently (its execution count is left alone)."""
    async with KernelClient(info) as kc:
        await kc.wait_for_ready(timeout=30)
        reply = await kc.execute("", silent=True, store_history=False, user_expressions=PROBE, timeout=30)
    expressions = reply.content["user_expressions"]
    assert all(e["status"] == "ok" for e in expressions.values()), expressions
    return {key: e["data"]["text/plain"] for key, e in expressions.items()}


def _ps(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "kernel_nanny", "ps", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_launch_takes_a_pooled_kernel_and_the_pool_refills(make_daemon):
    daemon = await make_daemon(POOL)
    async with daemon.client() as client:
        pooled = await _warm(client)
        assert len(pooled) == 2
        assert (await client.info())["kernels"] == 0  # pooled kernels are nobody's yet
        info, manager = result = await client.launch("pyimport/kernel", launch_params=QUIET, name="mine")
        assert result.pool == "hit"
        assert info["kernel_id"] == pooled[0]  # the oldest first
        assert [e["name"] for e in await client.list_kernels()] == ["mine"]
        refilled = await _warm(client)
        assert len(refilled) == 2 and pooled[1] in refilled and info["kernel_id"] not in refilled
        async with KernelClient(info) as kc:
            await kc.wait_for_ready(timeout=30)
            result_ = await kc.execute_interactive("print(6 * 7)", timeout=30)
        assert result_.stream_text() == "42\n" and result_.execution_count == 1
        await manager.cleanup()
    assert "launched pyimport/kernel from the pool as 'mine'" in daemon.log()


async def test_a_hit_takes_the_launchs_directory_and_environment_as_a_fresh_kernel_would(make_daemon, tmp_path):
    """Compared with a kernel started in that directory with that variable (a miss, the pool being empty)."""
    project = tmp_path / "project"
    project.mkdir()
    daemon = await make_daemon('[pool."pyimport/kernel"]\nsize = 1\n')
    params = {**QUIET, "env": {"POOL_TEST_VAR": "bound"}}
    async with daemon.client() as client:
        await _warm(client)
        hit = await client.launch("pyimport/kernel", cwd=str(project), launch_params=params)
        fresh = await client.launch("pyimport/kernel", cwd=str(project), launch_params=params)
        assert (hit.pool, fresh.pool) == ("hit", "miss")
        bound, started = await _probe(hit.connection_info), await _probe(fresh.connection_info)
    assert bound == started
    assert bound["cwd"] == repr(str(project))
    assert bound["var"] == "'bound'"
    assert bound["count"] == "1"  # the first cell the user runs is In [1]
    assert str(project) in bound["dh"]


async def test_a_pooled_kernel_that_died_or_ran_code_is_never_handed_out(make_daemon):
    daemon = await make_daemon(POOL)
    async with daemon.client() as client:
        first, second = await _warm(client)
        entries = {e["kernel_id"]: e for e in await client.list_kernels(pooled=True, info=True)}
        # One dies while pooled (its nanny restarts it: it is no longer a kernel that never ran)...
        os.kill(entries[first]["info"]["pid"], signal.SIGKILL)
        # ... the other runs someone's code.
        async with KernelClient(entries[second]["connection_info"]) as kc:
            await kc.wait_for_ready(timeout=30)
            assert (await kc.execute_interactive("x = 1", timeout=30)).ok
        taken = []
        for _ in range(2):
            info, manager = result = await client.launch("pyimport/kernel", launch_params=QUIET)
            taken.append(info["kernel_id"])
            assert result.pool in ("hit", "miss")
            assert (await _probe(info))["count"] == "1"
            await manager.cleanup()
        assert not {first, second} & set(taken)
        assert not {first, second} & set(await _warm(client))  # retired, and replaced
    log = daemon.log()
    assert "retiring pooled kernel" in log
    assert "while it was pooled" in log or "died while pooled" in log


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"launch_params": {**QUIET, "transport": "tcp"}}, "other settings than the pool's"),
        ({"launch_params": {**QUIET, "env": {"PYTHONPATH": "/nowhere"}}}, "PYTHONPATH take effect only"),
        ({"restart_policy": {"max_restarts": 0}}, "other settings than the pool's"),
    ],
)
async def test_a_launch_the_pool_cannot_serve_starts_a_fresh_kernel(make_daemon, change, why):
    from kernel_nanny import RestartPolicy

    daemon = await make_daemon('[pool."pyimport/kernel"]\nsize = 1\n')
    kwargs = dict(change)
    if "restart_policy" in kwargs:
        kwargs["restart_policy"] = RestartPolicy(**kwargs["restart_policy"])
    async with daemon.client() as client:
        pooled = await _warm(client)
        info, manager = result = await client.launch("pyimport/kernel", **kwargs)
        assert result.pool == "miss"
        assert info["kernel_id"] not in pooled
        assert await _warm(client) == pooled  # untouched
        await manager.cleanup()
    assert why in daemon.log()


async def test_kernels_that_cannot_be_bound_are_served_only_in_the_pools_directory(
    make_daemon, isolated, tmp_path, monkeypatch
):
    """A kernelspec running ipykernel its own way (not ``-m ipykernel_launcher``): nothing says how to bind it."""
    spec = isolated / "data" / "kernels" / "indirect"
    spec.mkdir(parents=True)
    argv = [
        sys.executable,
        "-c",
        "from ipykernel.kernelapp import launch_new_instance as l; l()",
        "-f",
        "{connection_file}",
    ]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "indirect", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(isolated / "data"))
    daemon = await make_daemon(f'[pool."spec/indirect"]\nsize = 1\ncwd = "{tmp_path}"\n')
    async with daemon.client() as client:
        pooled = await _warm(client)
        elsewhere = await client.launch("spec/indirect", cwd="/", launch_params=QUIET)
        here = await client.launch("spec/indirect", cwd=str(tmp_path), launch_params=QUIET)
        assert (elsewhere.pool, here.pool) == ("miss", "hit")
        assert here.connection_info["kernel_id"] == pooled[0]
        assert (await _probe(elsewhere.connection_info))["cwd"] == "'/'"
    assert "cannot take another directory or environment" in daemon.log()


async def test_pooled_kernels_survive_a_daemon_sigkill_and_serve_the_next_daemon(make_daemon):
    daemon = await make_daemon(POOL)
    async with daemon.client() as client:
        pooled = await _warm(client)
    await daemon.kill()
    await daemon.start()
    async with daemon.client() as client:
        assert sorted(await _warm(client)) == sorted(pooled)  # re-adopted as pool members, none started
        info, manager = result = await client.launch("pyimport/kernel", launch_params=QUIET)
        assert result.pool == "hit" and info["kernel_id"] in pooled
        await manager.cleanup()
    assert "2 pooled kernel(s) kept from before" in daemon.log()


async def test_a_pool_no_longer_configured_is_retired_by_the_next_daemon(make_daemon):
    daemon = await make_daemon(POOL)
    async with daemon.client() as client:
        pooled = await _warm(client)
    await daemon.stop()
    daemon.config_file.write_text("")
    await daemon.start()
    async with daemon.client() as client:
        assert await client.list_kernels(pooled=True) == []
    for kernel_id in pooled:
        assert not (Path(os.environ["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kernel_id}.json").exists()


async def test_ps_lists_pooled_kernels_only_with_all(make_daemon):
    daemon = await make_daemon(POOL)
    async with daemon.client() as client:
        pooled = await _warm(client)
    assert "(pooled)" not in _ps() and pooled[0][:12] not in _ps()
    listing = _ps("--all")
    assert listing.count("(pooled)") == 2 and pooled[0][:12] in listing
    await daemon.stop()  # without a daemon, from the nannies' own files
    assert "(pooled)" not in _ps() and _ps("--all").count("(pooled)") == 2


async def test_the_pools_command_waits_for_the_pools_and_shows_their_state(make_daemon, isolated, monkeypatch):
    spec = isolated / "data" / "kernels" / "broken"
    spec.mkdir(parents=True)
    argv = ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "broken", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(isolated / "data"))
    await make_daemon(POOL + '[pool."spec/broken"]\nsize = 1\n')
    done = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", "pools", "--wait", "120"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "SIZE", "READY", "STARTING", "STATE"]
    assert lines[1].split()[:5] == ["pyimport/kernel", "2", "2", "0", "full"]
    assert lines[2].startswith("spec/broken") and "failing (" in lines[2] and "/nonexistent/python" in lines[2]
    as_json = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", "pools", "--json"], capture_output=True, text=True, timeout=60
    )
    assert json.loads(as_json.stdout)["pools"][0]["ready"] == 2


async def test_the_pools_command_without_a_daemon_says_so(isolated):
    done = subprocess.run([sys.executable, "-m", "kernel_nanny", "pools"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "no kernel-nanny daemon is running" in done.stderr


async def test_pooled_kernels_are_not_culled_while_idle(make_daemon):
    daemon = await make_daemon(POOL + "[culling]\nidle_timeout = 1\n")
    async with daemon.client() as client:
        pooled = await _warm(client)
        info, manager = await client.launch("pyimport/kernel", launch_params=QUIET)
        async with ManagerClient(info) as watcher:  # the taken kernel is culled: wait for its nanny to exit
            await watcher.subscribe()
            async for event in watcher.events():
                if event.msg_type == "nanny_exiting":
                    break
        await manager.cleanup()
        assert set(await _warm(client)) >= set(pooled) - {info["kernel_id"]}
    assert "culling: idle for" in daemon.log()


async def test_a_taken_kernel_ends_with_its_owner(make_daemon):
    daemon = await make_daemon('[pool."pyimport/kernel"]\nsize = 1\n')
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        async with daemon.client() as client:
            await _warm(client)
            with open(f"/proc/{owner.pid}/stat") as stat:
                start_time = int(stat.read().rsplit(")", 1)[1].split()[19])
            info, manager = result = await client.launch(
                "pyimport/kernel", launch_params=QUIET, owner=owner.pid, owner_start_time=start_time
            )
            assert result.pool == "hit"
            await manager.subscribe()
            owner.kill()
            async for event in manager.events():
                if event.msg_type == "nanny_exiting":
                    assert f"process {owner.pid}, ended" in event.content["reason"]
                    break
            await manager.cleanup()
    finally:
        owner.kill()
        owner.wait()


async def test_a_pool_whose_kernels_fail_backs_off_and_says_why(make_daemon, isolated, monkeypatch):
    spec = isolated / "data" / "kernels" / "broken"
    spec.mkdir(parents=True)
    argv = ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "broken", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(isolated / "data"))
    daemon = await make_daemon('[pool."spec/broken"]\nsize = 1\n' + POOL)
    async with daemon.client() as client:
        status = await client.pools(wait=120)
        assert status["settled"]
        broken = next(p for p in status["pools"] if p["kernel_type"] == "spec/broken")
        assert broken["ready"] == 0 and broken["failures"] >= 1
        assert "/nonexistent/python" in broken["error"]
        working = next(p for p in status["pools"] if p["kernel_type"] == "pyimport/kernel")
        assert working["ready"] == 2  # the other pool fills regardless
    assert "pool spec/broken: a kernel failed to start" in daemon.log()
    assert "trying again in 1 s" in daemon.log()


async def test_the_pools_together_keep_to_max_kernels(make_daemon):
    daemon = await make_daemon("[pool]\nmax_kernels = 1\n" + POOL)
    async with daemon.client() as client:
        status = await client.pools(wait=120)
        assert status["settled"]
        (pool,) = status["pools"]
        assert pool["ready"] == 1 and "max_kernels = 1" in pool["held"]


async def test_kernel_execution_and_exec_take_pooled_kernels(make_daemon, tmp_path):
    daemon = await make_daemon('[pool."pyimport/kernel"]\nsize = 1\n')
    async with daemon.client() as client:
        pooled = await _warm(client)
        async with KernelExecution("pyimport/kernel", cwd=str(tmp_path)) as execution:
            assert await execution.run(["import os; print(os.getcwd())"]) == 0
            assert execution.kernel_id == pooled[0]
        pooled = await _warm(client)
    done = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", "exec", "pyimport/kernel", "-c", "import os; print(os.getcwd())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path}\n"
    assert f"[kernel={pooled[0][:8]}] launched pyimport/kernel from the pool" in daemon.log()


async def test_without_a_daemon_kernel_execution_starts_its_own_kernel(isolated):
    async with KernelExecution("pyimport/kernel") as execution:
        assert await execution.run(["print(1)"]) == 0
        assert not isinstance(execution.manager, ManagerClient)  # the process's own, unsupervised kernel
    assert not list(Path(os.environ["JUPYTER_RUNTIME_DIR"]).glob("kernel-*.json"))
