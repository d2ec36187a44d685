"""The blocking kernel client: :class:`KernelClient` on a private background loop.

Every method is the async client's, run to completion on an event loop that
this object owns in a background thread. Messages keep being received between
calls, so nothing is dropped while the caller does other work. Hooks (iopub
handlers, ``output_hook``, ``stdin_hook``) run in that background thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._loop import BlockingTwin, blocking
from ..protocol import Session, load_connection_info
from .kernel import KernelClient, OutputHook

__all__ = ["BlockingKernelClient"]


class BlockingKernelClient(BlockingTwin):
    """Speaks the Jupyter messaging protocol to one kernel, one blocking call at a time.

    Example::

        with BlockingKernelClient(info) as kc:
            kc.wait_for_ready()
            print(kc.execute_interactive("1 + 1").outputs)
    """

    _thread_name = "kernel-nanny-client"

    def __init__(self, connection_info: Mapping[str, Any], *, session: Session | None = None) -> None:
        super().__init__(KernelClient(connection_info, session=session))

    @classmethod
    def from_connection_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> BlockingKernelClient:
        """A client for the kernel described by a connection file (errors name the file)."""
        return cls(load_connection_info(path), **kwargs)

    def __enter__(self) -> BlockingKernelClient:
        self.start()
        return self

    @property
    def session(self) -> Session:
        return self._async.session  # type: ignore[no-any-return]

    def add_iopub_handler(self, handler: OutputHook) -> None:
        self._loop.call(self._async.add_iopub_handler, handler)

    def remove_iopub_handler(self, handler: OutputHook) -> None:
        self._loop.call(self._async.remove_iopub_handler, handler)

    def add_reply_handler(self, handler: OutputHook) -> None:
        self._loop.call(self._async.add_reply_handler, handler)

    def remove_reply_handler(self, handler: OutputHook) -> None:
        self._loop.call(self._async.remove_reply_handler, handler)

    start = blocking(KernelClient.start)
    wait_for_ready = blocking(KernelClient.wait_for_ready)
    request = blocking(KernelClient.request)
    send = blocking(KernelClient.send)
    kernel_info = blocking(KernelClient.kernel_info)
    execute = blocking(KernelClient.execute)
    execute_interactive = blocking(KernelClient.execute_interactive)
    complete = blocking(KernelClient.complete)
    inspect = blocking(KernelClient.inspect)
    history = blocking(KernelClient.history)
    is_complete = blocking(KernelClient.is_complete)
    comm_info = blocking(KernelClient.comm_info)
    shutdown = blocking(KernelClient.shutdown)
    interrupt = blocking(KernelClient.interrupt)
    input = blocking(KernelClient.input)
    heartbeat = blocking(KernelClient.heartbeat)
