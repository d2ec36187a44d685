"""Re-attach to a kernel from its manager's JSON in a NEW process, and drive it there.

``python -m tests.reattach MODULE:CLASS STEP...`` reads the state on stdin,
calls ``CLASS.from_json`` and runs the steps through the re-attached manager,
printing one JSON line: ``{"results": [...]}``, or ``{"error": <class name>,
"message": ...}`` if something raised. Steps: ``alive``, ``execute:<code>``
(the code's stdout), ``interrupt`` (the interrupted cell's ``ename``),
``restart``, ``kill`` (then how the kernel ended), ``shutdown``, ``repr``.
The tests call :func:`reattach_elsewhere`.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from typing import Any

from kernel_nanny import KernelClient

from .helpers import interrupted


async def _step(manager: Any, step: str) -> Any:
    if step == "alive":
        return await manager.is_alive()
    if step.startswith("execute:"):
        async with KernelClient(manager.connection_info) as client:
            await client.wait_for_ready(timeout=30)
            result = await client.execute_interactive(step.removeprefix("execute:"), timeout=30)
        return "".join(m.content.get("text", "") for m in result.outputs if m.msg_type == "stream")
    if step == "interrupt":
        return (await interrupted(manager.connection_info, manager)).error["ename"]
    if step == "restart":
        await manager.restart()
        return "restarted"
    if step == "kill":
        await manager.kill()
        return str(await asyncio.wait_for(manager.wait(), 30))
    if step == "shutdown":
        await manager.shutdown()
        return "shut down"
    if step == "repr":
        return repr(manager)
    raise ValueError(f"unknown step {step!r}")


async def _main(target: str, steps: list[str]) -> dict[str, Any]:
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    try:
        manager = await cls.from_json(sys.stdin.read())
        results = [await _step(manager, step) for step in steps]
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"results": results}


async def reattach_elsewhere(target: str, state: str, *steps: str) -> dict[str, Any]:
    """Run ``python -m tests.reattach target *steps`` with ``state`` on stdin; its one JSON line, parsed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reattach",
        target,
        *steps,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate(state.encode())
    assert process.returncode == 0, stdout
    return dict(json.loads(stdout.decode().strip().splitlines()[-1]))


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(sys.argv[1], sys.argv[2:]))))
