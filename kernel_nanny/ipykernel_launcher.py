"""Start the ipykernel kernels kernel-nanny starts: ``python -m kernel_nanny.ipykernel_launcher -f FILE``.

ipykernel's own kernel, with one change: an iopub send queue that holds a
burst. ipykernel publishes iopub on a PUB socket with zmq's default
high-water mark, 1,000 messages per subscriber. A cell that prints in a tight
loop hands messages to that socket faster than zmq's I/O thread writes them
out whenever the thread is short of CPU (a busy machine), and beyond the mark
the socket drops them, for every subscriber at once: the nanny's journal
never sees them, so no client can get them back. Here the mark is
:data:`~kernel_nanny.defaults.KERNEL_IOPUB_SNDHWM`.

It is set before the socket is bound, because zmq gives a connection the
mark its socket had when it was bound: raising it later (say from an IPython
extension) reaches the subscribers connected at the time but not the nanny's
recorder or a client that connects afterwards.

It runs in the kernel's Python, so it imports nothing of kernel-nanny but its
defaults; everything else (options, config files, ``-f``) is ipykernel's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def main() -> None:
    """Run ipykernel's kernel application with the raised iopub mark."""
    import zmq
    from ipykernel.kernelapp import IPKernelApp

    from .defaults import KERNEL_IOPUB_SNDHWM

    class KernelApp(IPKernelApp):
        def init_iopub(self, context: zmq.Context[Any]) -> None:
            context.setsockopt(zmq.SNDHWM, KERNEL_IOPUB_SNDHWM)  # for the sockets made from here on
            try:
                super().init_iopub(context)  # type: ignore[no-untyped-call]  # makes and binds the iopub socket
            finally:
                context.sockopts.pop(zmq.SNDHWM)

    KernelApp.launch_instance()


if __name__ == "__main__":
    # As ipykernel_launcher: the working directory leaves the path while the kernel loads (the user's
    # files must not shadow its modules) and is put back by IPython for the user's code.
    if sys.path[0] in ("", str(Path.cwd())):
        del sys.path[0]
    main()
