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

    import asyncio
    import logging
    import signal

    from .._exceptions import KernelNannyError, NoSuchKernelType
    from ..config import RestartPolicy
    from ..discovery import KernelFinder
    from ..launch import KernelCommand
    from .core import DEFAULT_HEARTBEAT_INTERVAL, KernelNanny

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

    async def serve() -> None:
        nanny = KernelNanny(
            args.kernel_id,
            args.type_id,
            finder=KernelFinder.from_entrypoints(),
            name=args.name,
            cwd=args.cwd,
            launch_params=json.loads(args.launch_params),
            restart_policy=RestartPolicy.from_dict(json.loads(args.restart_policy)),
            heartbeat_interval=args.heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL,
            command=KernelCommand.from_dict(json.loads(args.command)) if args.command else None,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, nanny.stop, f"received {signal.Signals(signum).name}")
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # a closed terminal is no reason to die
        await nanny.run(ready)

    try:
        asyncio.run(serve())
    except (KernelNannyError, ValueError) as exc:
        logging.getLogger("kernel_nanny.nanny").error("%s", exc)
        if not reported:
            ename = "NoSuchKernelType" if isinstance(exc, NoSuchKernelType) else type(exc).__name__
            _report({"status": "error", "ename": ename, "evalue": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
