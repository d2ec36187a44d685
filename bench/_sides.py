"""The two sides every benchmark compares, defined once: how each starts, stops, executes and interrupts.

* **ours** (kernel-nanny): :class:`Ours`, a kernel without a nanny of its own, started through
  ``KernelFinder.launch("pyimport/kernel")`` (what users call), ``launch_local`` of the same command
  (what the nanny runs inside) or another provider (ssh, docker); :class:`Nanny`, the same kernel
  behind its own nanny process.
* **theirs** (jupyter_client): :class:`Theirs`, an ``AsyncKernelManager`` on the ``kn-bench-python``
  kernelspec the runner installs, with its ``AsyncKernelClient``.

All start the same command, ``sys.executable -m ipykernel_launcher -f <file>``. Every kernel is
registered with ``_common.REGISTRY`` the moment it exists, so the runner can kill what a failed
benchmark leaves behind; ``stop()`` shuts it down and unregisters it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from queue import Empty
from typing import Any

from _common import BENCH_KERNEL_NAME, REGISTRY, wait_gone
from jupyter_client import AsyncKernelManager
from jupyter_client.asynchronous import AsyncKernelClient

from kernel_nanny import (
    KernelClient,
    KernelCommand,
    KernelFinder,
    KernelNannyError,
    LaunchRequest,
    ManagerClient,
    Message,
    RestartPolicy,
    start_kernel,
)
from kernel_nanny.launch import launch_local

READY_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0
#: The code every interrupt benchmark interrupts.
BUSY_LOOP = "while True:\n    pass"

TYPE_ID = "pyimport/kernel"
#: What ``pyimport/kernel`` runs (kernel_nanny.discovery.pyimport): the command behind every kernel here.
PYIMPORT_COMMAND = KernelCommand(
    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    metadata={"supported_encryption": ["curve"]},
)

_FINDER: KernelFinder | None = None


def finder() -> KernelFinder:
    """The finder of the entry-point providers, built once per run."""
    global _FINDER
    if _FINDER is None:
        _FINDER = KernelFinder.from_entrypoints()
    return _FINDER


# -- ours ----------------------------------------------------------------------------------------------------------


class Ours:
    """A kernel started by kernel-nanny without a nanny of its own (ready when this exists)."""

    def __init__(self, info: Mapping[str, Any], manager: Any, label: str) -> None:
        self.info = info
        self.manager = manager
        self.label = label
        self.token = REGISTRY.add(label, lambda: manager.shutdown(now=True))

    @classmethod
    async def launch(cls, transport: str = "ipc", encryption: str = "auto") -> Ours:
        """``KernelFinder.launch("pyimport/kernel")``, which returns when the kernel is ready."""
        params = {
            "transport": transport,
            "encryption": encryption,
            "echo_output": False,
            "startup_timeout": READY_TIMEOUT,
        }
        info, manager = await finder().launch(TYPE_ID, launch_params=params)
        return cls(info, manager, f"kernel-nanny kernel pid={manager.pid} ({transport})")

    @classmethod
    async def local(cls, transport: str = "ipc") -> Ours:
        """``launch_local`` of the same command: our own child, as the nanny runs it inside."""
        params = {"echo_output": False, "transport": transport, "startup_timeout": READY_TIMEOUT}
        info, manager = await launch_local(PYIMPORT_COMMAND, kernel_name=TYPE_ID, launch_params=params)
        return cls(info, manager, f"launch_local kernel pid={manager.pid}")

    @classmethod
    async def through(cls, provider: Any, name: str, launch_params: dict[str, Any] | None = None) -> Ours:
        """``provider.launch(name)`` of a provider built here (ssh, docker)."""
        info, manager = await provider.launch(name, launch_params=launch_params)
        return cls(info, manager, f"kernel-nanny {provider.id}/{name} kernel {manager!r}")

    async def stop(self, now: bool = True) -> None:
        try:
            await self.manager.shutdown(now=now)
        finally:
            REGISTRY.discard(self.token)


def is_nanny_process(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"kernel_nanny.nanny" in f.read()
    except OSError:
        return False


async def stop_nanny(info: Mapping[str, Any], manager: ManagerClient) -> None:
    """``shutdown(now=True)`` + ``cleanup()``, then wait for the nanny process itself to be gone.

    The nanny answers the shutdown request first and exits a few ms later (it is not our child, so
    this polls ``/proc``). If it does not exit, it is signalled (SIGTERM, then SIGKILL) and this raises,
    so the run reports it.
    """
    pid = int(info["nanny_pid"])
    error: BaseException | None = None
    try:
        await manager.shutdown(now=True)
    except KernelNannyError as exc:
        error = exc
    finally:
        await manager.cleanup()
    gone = await wait_gone([pid], 5.0)
    for sig in () if gone else (signal.SIGTERM, signal.SIGKILL):
        if is_nanny_process(pid):
            os.kill(pid, sig)
        if await wait_gone([pid], 5.0):
            break
    if error is not None or not gone:
        raise RuntimeError(f"nanny pid={pid} did not shut down cleanly (had to be signalled: {not gone})") from error


class Nanny:
    """A kernel behind its own nanny process (ready when this exists)."""

    def __init__(self, info: Mapping[str, Any], manager: ManagerClient, transport: str) -> None:
        self.info = info
        self.manager = manager
        self.nanny_pid = int(info["nanny_pid"])
        self.label = f"nanny pid={self.nanny_pid} ({transport})"
        self.token = REGISTRY.add(self.label, lambda: stop_nanny(info, manager))

    @classmethod
    async def start(
        cls,
        transport: str = "ipc",
        encryption: str = "auto",
        *,
        restart_policy: RestartPolicy | None = None,
        journal: Mapping[str, Any] | None = None,
    ) -> Nanny:
        params = {
            "echo_output": False,
            "transport": transport,
            "encryption": encryption,
            "startup_timeout": READY_TIMEOUT,
        }
        request = LaunchRequest(
            kernel_type=TYPE_ID,
            params=params,
            restart_policy=restart_policy or RestartPolicy(),
            supervised=True,
            **({"journal": journal} if journal is not None else {}),
        )
        info, manager = await start_kernel(request)
        assert isinstance(manager, ManagerClient)
        return cls(info, manager, transport)

    async def kernel_pid(self) -> int:
        return int((await self.manager.info())["pid"])

    async def stop(self, now: bool = True) -> None:
        try:
            await stop_nanny(self.info, self.manager)
        finally:
            REGISTRY.discard(self.token)


# -- theirs --------------------------------------------------------------------------------------------------------


class Theirs:
    """A kernel started by jupyter_client's AsyncKernelManager, with its AsyncKernelClient."""

    def __init__(self, transport: str = "tcp", encryption: str = "disabled") -> None:
        self.km = AsyncKernelManager(
            kernel_name=BENCH_KERNEL_NAME, transport=transport, transport_encryption=encryption
        )
        if transport == "ipc":
            # Keep the socket files in the (private, short) runtime dir, never in the cwd.
            self.km.ip = os.path.join(os.environ["JUPYTER_RUNTIME_DIR"], f"jc-{uuid.uuid4().hex[:12]}")
        self.kc: AsyncKernelClient | None = None
        self.label = f"jupyter_client kernel ({transport}, encryption {encryption})"
        self.token = REGISTRY.add(self.label, self.stop)
        self.start_kernel_time = float("nan")

    async def start(self) -> None:
        """start_kernel, then a client with its channels, then wait_for_ready: what users do."""
        t0 = time.perf_counter()
        # The kernel process's own stdout/stderr is thrown away (ours: echo_output=False).
        await self.km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.start_kernel_time = time.perf_counter() - t0
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=READY_TIMEOUT)

    @classmethod
    async def launch(cls, transport: str = "tcp", encryption: str = "disabled") -> Theirs:
        self = cls(transport, encryption)
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self, now: bool = True) -> None:
        try:
            if self.kc is not None:
                self.kc.stop_channels()
                self.kc = None
            if self.km.has_kernel:
                await self.km.shutdown_kernel(now=now)
            else:
                self.km.cleanup_connection_file()
                self.km.cleanup_ipc_files()
        finally:
            REGISTRY.discard(self.token)


async def stop_all(kernels: list[Any], now: bool = True) -> None:
    """Stop kernels of any side at once; raises the first error after all were tried."""
    results = await asyncio.gather(*(k.stop(now=now) for k in kernels), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]


# -- executing: every timed request starts with the kernel idle and the queues empty ------------------------------


class OurIdleWatch:
    """Global iopub handler on our client: remembers which requests the kernel went idle after."""

    def __init__(self) -> None:
        self.idle: set[str] = set()
        self.changed = asyncio.Event()

    def __call__(self, msg: Message) -> None:
        if msg.msg_type == "status" and msg.content.get("execution_state") == "idle" and msg.parent_id:
            self.idle.add(msg.parent_id)
            self.changed.set()

    async def wait(self, msg_id: str, timeout: float = REPLY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while msg_id not in self.idle:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.001, deadline - time.monotonic()))
        self.idle.discard(msg_id)


async def their_idle(kc: AsyncKernelClient, msg_id: str, timeout: float = REPLY_TIMEOUT) -> None:
    """Read their iopub until the idle status of request ``msg_id``."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await kc.get_iopub_msg(timeout=max(0.001, deadline - time.monotonic()))
        if (
            msg["msg_type"] == "status"
            and msg["content"].get("execution_state") == "idle"
            and msg["parent_header"].get("msg_id") == msg_id
        ):
            return


async def drain_theirs(kc: AsyncKernelClient) -> None:
    """Empty their iopub queue (what ours reads in the background anyway)."""
    while True:
        try:
            await kc.get_iopub_msg(timeout=0.05)
        except Empty:
            return


async def their_reply(kc: AsyncKernelClient, msg_id: str) -> dict[str, Any]:
    """Their shell reply to request ``msg_id``."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while True:
        msg = await kc.get_shell_msg(timeout=max(0.001, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


async def our_first_execute_ok(client: KernelClient, timeout: float) -> bool:
    """Does the first execution after 'ready' deliver its output and its idle status?"""
    try:
        result = await client.execute_interactive("print('after-restart')", timeout=timeout)
    except Exception:
        return False
    return result.stream_text() == "after-restart\n"


async def their_first_execute_ok(kc: AsyncKernelClient, timeout: float) -> bool:
    """The same question, asked with their client."""
    got: list[dict[str, Any]] = []
    try:
        await kc.execute_interactive("print('after-restart')", output_hook=got.append, timeout=timeout)
    except Exception:
        return False
    return "".join(m["content"].get("text", "") for m in got if m["msg_type"] == "stream") == "after-restart\n"


# -- interrupting: from the call to the KeyboardInterrupt reply -----------------------------------------------------


async def time_our_interrupt(client: KernelClient, interrupt: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Ours: seconds from ``interrupt()`` to its return, and to the KeyboardInterrupt execute_reply.

    ``interrupt`` is whatever interrupts the kernel ``client`` talks to: a manager's ``interrupt``,
    a signal sent from here...
    """
    task = asyncio.ensure_future(client.execute(BUSY_LOOP, timeout=REPLY_TIMEOUT))
    await asyncio.sleep(0.25)  # well inside the loop by now (not timed)
    assert not task.done(), "busy loop finished on its own?"
    t0 = time.perf_counter()
    await interrupt()
    returned = time.perf_counter() - t0
    reply = await task
    replied = time.perf_counter() - t0
    assert reply.content.get("ename") == "KeyboardInterrupt", reply.content
    await client.kernel_info(timeout=REPLY_TIMEOUT)  # responsive again
    return returned, replied


async def time_their_interrupt(kc: Any, km: Any) -> float:
    """jupyter_client: seconds from interrupt_kernel() to the KeyboardInterrupt execute_reply."""
    msg_id = kc.execute(BUSY_LOOP)
    await asyncio.sleep(0.25)  # let the busy loop start (not timed)
    t0 = time.perf_counter()
    await km.interrupt_kernel()
    reply = await their_reply(kc, msg_id)
    t = time.perf_counter() - t0
    assert reply["content"].get("ename") == "KeyboardInterrupt", reply["content"]
    await kc.kernel_info(reply=True, timeout=REPLY_TIMEOUT)
    await drain_theirs(kc)
    return t
