"""A restarted jupyter_server, modelled: a new process takes over a kernel through the provisioner info."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import pytest
from jupyter_client.manager import AsyncKernelManager

from kernel_nanny import KernelNannyError
from kernel_nanny.client.running import pid_alive
from kernel_nanny.jupyter.provisioner import reattach

from .conftest import LOCAL_SPEC, NANNY_SPEC, PERSISTENT_SPEC, running_ids
from .test_provisioner import PORTS, connected, interrupted_sleep, nanny_of, run

#: Starts a kernel, leaves a variable in it, prints the provisioner info and exits without shutting down
#: (a persistent kernel, as a server's must be to outlive it).
FIRST_SERVER = textwrap.dedent(
    f"""
    import asyncio, json
    from jupyter_client.manager import AsyncKernelManager

    async def main():
        km = AsyncKernelManager(kernel_name={PERSISTENT_SPEC!r})
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        await kc.execute_interactive("answer = 41", timeout=60)
        kc.stop_channels()
        print(json.dumps(await km.provisioner.get_provisioner_info()))

    asyncio.run(main())
    """
)


async def provisioner_info_from_another_process() -> dict:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FIRST_SERVER, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout.decode().strip().splitlines()[-1])


async def test_a_new_manager_in_a_new_process_takes_full_control():
    info = await provisioner_info_from_another_process()
    json.dumps(info)  # persistable as it is
    km = AsyncKernelManager(kernel_name=NANNY_SPEC)
    await reattach(km, info)
    try:
        assert km.kernel_id == info["kernel_id"] and await km.is_alive()
        nanny = nanny_of(km)
        assert {key: km.get_connection_info()[key] for key in PORTS} == {key: nanny.info[key] for key in PORTS}
        async with connected(km) as kc:
            reply, printed = await run(kc, "print(answer + 1)")
            assert printed == "42\n"  # the very kernel the first process started
            assert (await interrupted_sleep(km, kc))["ename"] == "KeyboardInterrupt"
        await km.restart_kernel()
        assert nanny_of(km).nanny_pid == nanny.nanny_pid  # restarted in place, by the same nanny
        async with connected(km) as kc:
            reply, _ = await run(kc, "answer")
            assert reply["ename"] == "NameError"
    finally:
        await km.shutdown_kernel()
    assert nanny.kernel_id not in running_ids()
    assert not pid_alive(nanny.nanny_pid)


async def test_reattaching_to_a_nanny_that_is_gone_says_so():
    info = await provisioner_info_from_another_process()
    km = AsyncKernelManager(kernel_name=NANNY_SPEC)
    await reattach(km, info)
    await km.shutdown_kernel()
    with pytest.raises(KernelNannyError, match="cannot be re-attached.*is gone"):
        await reattach(AsyncKernelManager(kernel_name=NANNY_SPEC), info)


async def test_reattaching_needs_a_kernelspec_that_uses_the_provisioner():
    info = await provisioner_info_from_another_process()
    km = AsyncKernelManager(kernel_name=NANNY_SPEC)
    await reattach(km, info)
    try:
        with pytest.raises(KernelNannyError, match="does not use the kernel-nanny provisioner"):
            await reattach(AsyncKernelManager(kernel_name=LOCAL_SPEC), info)
    finally:
        await km.shutdown_kernel()
