"""The journal's caps in the daemon's configuration (``[journal]``) reach the nannies it starts (real daemon)."""

from __future__ import annotations

import pytest

from kernel_nanny import JournalLimits, LaunchError

MiB = 1024 * 1024


async def test_the_configured_caps_reach_the_nanny_and_a_client_may_override_them(make_daemon):
    daemon = await make_daemon('[journal]\nmemory = "2MiB"\ndisk = "16 MiB"\n')
    async with daemon.client() as client:
        _, manager = await client.launch("pyimport/kernel")
        journal = (await manager.info())["journal"]
        await manager.cleanup()
        assert journal is not None
        assert (journal["memory_bytes"], journal["disk_bytes"], journal["disk_enabled"]) == (2 * MiB, 16 * MiB, True)
        _, manager = await client.launch("pyimport/kernel", journal=JournalLimits(memory=MiB, disk=0))
        journal = (await manager.info())["journal"]
        await manager.cleanup()
        assert journal is not None
        assert (journal["memory_bytes"], journal["disk_bytes"], journal["disk_enabled"]) == (MiB, 0, False)


async def test_a_wrong_cap_from_a_client_is_refused_naming_the_setting(make_daemon):
    daemon = await make_daemon()
    async with daemon.client() as client:
        with pytest.raises(LaunchError, match=r"launch request field 'journal': journal memory: must be a size"):
            await client.request("launch", {"type_id": "pyimport/kernel", "journal": {"memory": "lots"}})
