"""``python -m kernel_nanny.nanny``: one nanny process for one kernel.

Started by ``kernel-nanny start`` (or ``KernelFinder.launch(..., nanny=True)``),
not by hand. It forks once so that it is nobody's child but init's (the
starter must not have to reap it), launches the kernel, writes one JSON line
to stdout (``{"status": "ready", "connection_file": ...}`` or
``{"status": "error", ...}``), closes stdout, and serves until asked to stop or
sent SIGTERM/SIGINT. Its own log goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..launch.command import KernelCommand
    from ..launch.spawn import StartedKernel


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kernel_nanny.nanny", description=__doc__)
    parser.add_argument("--kernel-id", required=True)
    parser.add_argument("--type", dest="type_id", required=True)
    parser.add_argument("--name")
    parser.add_argument("--cwd")
    parser.add_argument("--launch-params", default="{}", help="JSON object")
    parser.add_argument("--restart-policy", default="{}", help="JSON object")
    parser.add_argument("--command", help="JSON kernel command (argv, env, ...) to run instead of looking --type up")
    parser.add_argument("--heartbeat-interval", type=float)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--no-detach", dest="detach", action="store_false")
    return parser.parse_args(argv)


def _report(result: dict[str, object]) -> None:
    """The one line the starter waits for; then stdout is closed so it sees EOF."""
    try:
        os.write(1, json.dumps(result).encode() + b"\n")
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.detach and os.fork() > 0:
        os._exit(0)  # the starter reaps this at once; the nanny lives on, adopted by init

    import logging

    from .._exceptions import KernelNannyError, NoSuchKernelType

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    reported = False

    def ready(path: object) -> None:
        nonlocal reported
        reported = True
        _report({"status": "ready", "connection_file": str(path), "kernel_id": args.kernel_id})

    try:
        _serve(args, _start_kernel_early(args), ready)
    except (KernelNannyError, ValueError) as exc:
        logging.getLogger("kernel_nanny.nanny").error("%s", exc)
        if not reported:
            ename = "NoSuchKernelType" if isinstance(exc, NoSuchKernelType) else type(exc).__name__
            _report({"status": "error", "ename": ename, "evalue": str(exc)})
        return 1
    return 0


def _start_kernel_early(args: argparse.Namespace) -> tuple[KernelCommand, StartedKernel] | None:
    """With an explicit command, start the kernel now, before the nanny's heavy imports (asyncio, zmq,
    the clients, the server: some 80 ms): the kernel boots meanwhile. Its lifeline guards it already.
    Returns the command and its launch, begun (None without a command)."""
    if not args.command:
        return None
    from ..launch.command import KernelCommand
    from ..launch.params import LaunchParams
    from ..launch.spawn import start_local
    from .kernel_params import kernel_launch_params

    params = LaunchParams.from_mapping(kernel_launch_params(args.kernel_id, json.loads(args.launch_params)))
    command = KernelCommand.from_dict(json.loads(args.command))
    return command, start_local(command, params, kernel_name=args.type_id, cwd=args.cwd)


def _serve(
    args: argparse.Namespace,
    early: tuple[KernelCommand, StartedKernel] | None,
    on_ready: Callable[[Path], None],
) -> None:
    import asyncio
    import signal

    from ..config import RestartPolicy
    from ..discovery import KernelFinder
    from .core import DEFAULT_HEARTBEAT_INTERVAL, KernelNanny

    command, started = early or (None, None)

    async def serve() -> None:
        nanny = KernelNanny(
            args.kernel_id,
            args.type_id,
            # With a command the finder is not needed: no entry-point scan on the way to the kernel.
            finder=KernelFinder.from_entrypoints() if command is None else None,
            name=args.name,
            cwd=args.cwd,
            launch_params=json.loads(args.launch_params),
            restart_policy=RestartPolicy.from_dict(json.loads(args.restart_policy)),
            heartbeat_interval=args.heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL,
            command=command,
            started=started,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, nanny.stop, f"received {signal.Signals(signum).name}")
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # a closed terminal is no reason to die
        await nanny.run(on_ready)

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
