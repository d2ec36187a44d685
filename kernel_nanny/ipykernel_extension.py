"""An IPython extension for the ipykernel kernels kernel-nanny starts: an iopub send queue that holds a burst.

ipykernel publishes iopub on a PUB socket with zmq's default high-water mark,
1,000 messages per subscriber. A cell that prints in a tight loop hands
messages to that socket faster than zmq's I/O thread writes them out whenever
the thread is short of CPU (a busy machine), and beyond 1,000 queued
messages the socket drops them, for every subscriber at once: the nanny's
journal never sees them, so no client can get them back. Loaded with
``--IPKernelApp.extra_extensions`` (which adds to the user's own extensions
rather than replacing them), this raises the mark to
:data:`~kernel_nanny.defaults.KERNEL_IOPUB_SNDHWM`, for the subscribers
already connected too (zmq applies a changed mark to existing pipes).

It runs in the kernel, so it imports nothing of kernel-nanny but its
defaults, and changes the socket from the iopub thread that owns it (zmq
sockets are not thread-safe).
"""

from __future__ import annotations

from typing import Any

from .defaults import KERNEL_IOPUB_SNDHWM


def load_ipython_extension(shell: Any) -> None:
    import zmq
    from ipykernel.kernelapp import IPKernelApp

    if not IPKernelApp.initialized():
        return  # IPython without a kernel (a terminal): no iopub
    thread = IPKernelApp.instance().iopub_thread
    thread.schedule(lambda: thread.socket.setsockopt(zmq.SNDHWM, KERNEL_IOPUB_SNDHWM))
