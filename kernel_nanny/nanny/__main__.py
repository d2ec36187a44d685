"""``python -m kernel_nanny.nanny``: one nanny process for one kernel.

Started by :func:`kernel_nanny.start_kernel` for a supervised request, never by
hand: the kernel to run comes on stdin and the nanny reports on stdout (the
contract is :mod:`kernel_nanny.nanny.startup`). It forks once so that it is
nobody's child but init's (the starter must not have to reap it), starts the
kernel, reports, and serves until asked to stop, sent SIGTERM/SIGINT, or (for a
kernel with an owner, :mod:`kernel_nanny.nanny.owner`) its owner ends. Its own
log goes to stderr.

A nanny can also be forked, its modules already imported, by the fork server
(:mod:`kernel_nanny.nanny.forkserver`), which calls :func:`main` in the child
with ``--no-detach``: the child is in a session of its own already, and the
fork server reaps it, so it does not fork again.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..launch.spawn import StartedKernel
    from .startup import Handover


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kernel_nanny.nanny", description=__doc__)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-detach", dest="detach", action="store_false", help="stay the starter's child")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one nanny (``argv``: its options); its exit status."""
    args = _parse(argv)
    from .startup import NANNY_STARTED, Handover, write_progress, write_report

    try:
        handover = Handover.decode(sys.stdin.buffer.read())
    except Exception as exc:  # a bad handover is reported, not a traceback
        write_report(error=exc)
        return 2
    if args.detach and os.fork() > 0:
        os._exit(0)  # the starter reaps this at once; the nanny lives on, adopted by init
    write_progress(NANNY_STARTED, {"pid": os.getpid()})  # whom the starter stops if it gives up

    import logging

    from .._exceptions import KernelNannyError

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,  # a forked nanny replaces its fork server's handler
    )
    try:
        _serve(handover, _start_kernel_early(handover))
    except (KernelNannyError, ValueError, OSError) as exc:
        logging.getLogger("kernel_nanny.nanny").error("%s", exc)
        write_report(error=exc)  # harmless once the ready report went out: stdout is /dev/null by then
        return 1
    return 0


def _start_kernel_early(handover: Handover) -> StartedKernel | None:
    """A command kernel starts now, before the nanny's heavy imports (asyncio, zmq, the clients, the server:
    some 80 ms), so it boots meanwhile. Its lifeline guards it already. None for a provider's kernel."""
    command = handover.resolved.command
    if command is None:
        return None
    from ..launch.spawn import start_local
    from .startup import kernel_params

    request = handover.request
    params = kernel_params(handover.kernel_id, request.params)
    return start_local(command, params, kernel_name=request.kernel_type, cwd=request.cwd)


def _serve(handover: Handover, started: StartedKernel | None) -> None:
    import asyncio
    import signal

    from ..launch.progress import listening
    from .core import KernelNanny
    from .startup import write_progress, write_report

    async def serve() -> None:
        nanny = KernelNanny(handover.kernel_id, handover.request, handover.resolved, started=started)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, nanny.stop, f"received {signal.Signals(signum).name}")
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # a closed terminal is no reason to die
        with listening(write_progress):  # a queued job's state reaches the starter while it waits
            await nanny.run(lambda path: write_report(connection_file=path))

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
