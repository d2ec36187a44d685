"""The ``kernel-nanny`` command: wiring only; the work is done by the library."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from . import __version__
from ._exceptions import KernelDied, KernelNannyError
from .client import ExecutionResult, KernelClient
from .discovery import KernelFinder
from .protocol import KernelManager, Message

log = logging.getLogger("kernel_nanny.cli")

#: Exit codes of ``kernel-nanny exec``.
EXIT_OK, EXIT_CODE_RAISED, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="kernel-nanny: %(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except KernelNannyError as exc:
        print(f"kernel-nanny: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernel-nanny",
        description="Find, run and manage Jupyter kernels.",
        epilog="Run 'kernel-nanny COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"kernel-nanny {__version__}")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="how much kernel-nanny itself logs to stderr (default: warning)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    list_cmd = commands.add_parser(
        "list",
        help="list the kernel types found on this machine",
        description=(
            "List every kernel type the installed providers offer: kernelspecs (spec/NAME), "
            "the ipykernel of kernel-nanny's own Python (pyimport/kernel) and any third-party "
            "provider registered in the 'kernel_nanny.kernel_providers' entry-point group."
        ),
    )
    list_cmd.add_argument("--json", action="store_true", help="print a JSON list with every attribute")
    list_cmd.set_defaults(handler=_cmd_list)

    exec_cmd = commands.add_parser(
        "exec",
        help="run code in a new kernel and print what it outputs",
        description=(
            "Start a kernel of type TYPE, run CODE (or the file FILE) in it, print its output as it "
            "arrives (stdout, stderr, results, tracebacks), then shut the kernel down. "
            "Ctrl-C interrupts the running code; a second Ctrl-C kills the kernel."
        ),
        epilog=(
            "exit status: 0 the code ran without error, 1 the code raised an exception, "
            "2 usage error, 3 the kernel could not be started or died, 130 killed by a second Ctrl-C. "
            "example: kernel-nanny exec pyimport/kernel -c 'print(6 * 7)'"
        ),
    )
    exec_cmd.add_argument("type_id", metavar="TYPE", help="kernel type id, as 'kernel-nanny list' shows it")
    source = exec_cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", dest="code", metavar="CODE", help="the code to run")
    source.add_argument("file", nargs="?", metavar="FILE", help="a file of code to run ('-' reads standard input)")
    exec_cmd.add_argument("--cwd", metavar="DIR", help="the kernel's working directory (default: the current one)")
    exec_cmd.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="give up (and stop the kernel) after this long"
    )
    exec_cmd.set_defaults(handler=_cmd_exec)
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    kernels = sorted(KernelFinder.from_entrypoints().find_kernels())
    if args.json:
        print(json.dumps([{"id": type_id, **attributes} for type_id, attributes in kernels], indent=2))
        return EXIT_OK
    if not kernels:
        print("no kernel types found (install ipykernel, or a kernelspec with 'jupyter kernelspec install')")
        return EXIT_OK
    rows = [("TYPE", "LANGUAGE", "DISPLAY NAME")]
    rows += [(type_id, a.get("language", ""), a.get("display_name", "")) for type_id, a in kernels]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip())
    return EXIT_OK


def _cmd_exec(args: argparse.Namespace) -> int:
    if args.code is not None:
        code = args.code
    elif args.file == "-":
        code = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as file:
                code = file.read()
        except OSError as exc:
            print(f"kernel-nanny: error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    return asyncio.run(_exec(args.type_id, code, cwd=args.cwd, timeout=args.timeout))


async def _exec(type_id: str, code: str, *, cwd: str | None, timeout: float | None) -> int:
    finder = KernelFinder.from_entrypoints()
    _, manager = await finder.launch(type_id, cwd=cwd or os.getcwd(), launch_params={"echo_output": False})
    assert manager is not None
    printer = OutputPrinter(sys.stdout, sys.stderr)
    interrupts = _InterruptCounter(manager)
    try:
        async with KernelClient(manager.connection_info) as client:
            result = await _run_until_done_or_died(client, manager, code, printer, timeout)
        return EXIT_OK if result.ok else EXIT_CODE_RAISED
    except KernelDied as exc:
        print(f"kernel-nanny: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except asyncio.CancelledError:
        print("kernel-nanny: killed the kernel", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        interrupts.remove()
        await manager.shutdown(now=interrupts.count > 1)


async def _run_until_done_or_died(
    client: KernelClient, manager: KernelManager, code: str, printer: OutputPrinter, timeout: float | None
) -> ExecutionResult:
    stdin_hook = _read_terminal_input if sys.stdin.isatty() else None
    execution = asyncio.ensure_future(
        client.execute_interactive(code, output_hook=printer, stdin_hook=stdin_hook, timeout=timeout)
    )
    death = asyncio.ensure_future(manager.wait())
    try:
        await asyncio.wait({execution, death}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        death.cancel()
    if not execution.done():
        execution.cancel()
        status = death.result()
        raise KernelDied("the kernel died while running the code", exit_code=status.exit_code, signal=status.signal)
    return execution.result()


async def _read_terminal_input(request: Message) -> str:
    prompt = request.content.get("prompt", "")
    try:
        return await asyncio.get_running_loop().run_in_executor(None, input, prompt)
    except EOFError:
        return ""


class _InterruptCounter:
    """Ctrl-C interrupts the kernel; a second one cancels the run (and kills the kernel)."""

    def __init__(self, manager: KernelManager) -> None:
        self.count = 0
        self._manager = manager
        self._main = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGINT, self._pressed)

    def _pressed(self) -> None:
        self.count += 1
        if self.count == 1:
            print("\nkernel-nanny: interrupting the kernel (Ctrl-C again to kill it)", file=sys.stderr)
            self._loop.create_task(self._manager.interrupt())
        elif self._main is not None:
            self._main.cancel()

    def remove(self) -> None:
        self._loop.remove_signal_handler(signal.SIGINT)


class OutputPrinter:
    """Renders iopub output on a terminal: streams as they come, results as text, tracebacks."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    def __call__(self, msg: Message) -> None:
        content: dict[str, Any] = msg.content
        if msg.msg_type == "stream":
            self._write(self.err if content.get("name") == "stderr" else self.out, content.get("text", ""))
        elif msg.msg_type in ("execute_result", "display_data"):
            data = content.get("data", {})
            text = data.get("text/plain") or f"[{', '.join(data) or 'empty'} output]"
            self._write(self.out, text + "\n")
        elif msg.msg_type == "error":
            traceback = "\n".join(content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"])
            self._write(self.err, traceback + "\n")

    @staticmethod
    def _write(stream: TextIO, text: str) -> None:
        if not stream.isatty():
            text = _ANSI.sub("", text)
        stream.write(text)
        stream.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
