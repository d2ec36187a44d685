"""The ``kernel-nanny`` command: wiring only; the work is done by the library."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__
from ._exceptions import ConfigError, KernelDied, KernelError, KernelNannyError, NannyUnavailable, NoSuchKernel
from ._progress import Progress
from .client import DaemonClient, ManagerClient
from .client.follow import follow_output, recorded_output
from .client.running import find_running_kernel, list_running_kernels
from .config import CONFIG_ENV, JournalLimits, RestartPolicy
from .daemon.config import DaemonConfig, load_config
from .daemon.keys import DaemonKeys, check_client_name
from .daemon.service import NannyDaemon
from .defaults import (
    DEFAULT_JOURNAL_DISK_BYTES,
    DEFAULT_JOURNAL_MEMORY_BYTES,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_RESTART_WINDOW,
    DEFAULT_STARTUP_TIMEOUT,
    EXEC_REJOIN_HINT_AFTER,
    MAX_POOL_WAIT,
    NANNY_PROBE_TIMEOUT,
)
from .discovery import DaemonProvider, KernelFinder
from .execution import KernelExecution, OutputPrinter
from .gateway.settings import parse_address
from .launch import LaunchParams
from .launch.params import TRANSPORTS
from .launch.progress import listening
from .launch.request import LaunchRequest
from .nanny.output_log import read_log
from .paths import public_connection_file, secure_directory, systemd_user_unit_dir, write_private_file
from .protocol import Message
from .protocol.errors import is_known_error
from .protocol.nanny import JournalEntry, NannyInfo
from .providers.slurm import SlurmProvider, stray_jobs
from .providers.slurm_config import LOGIN_HOST_NAME
from .providers.slurm_job import state_file
from .providers.ssh import SSHProvider, add_known_host, fetch_host_key
from .start import start_kernel

log = logging.getLogger("kernel_nanny.cli")

#: Exit codes of ``kernel-nanny exec``.
EXIT_OK, EXIT_CODE_RAISED, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """The command line asks for something that cannot be done (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is not _cmd_serve:
        level = (args.log_level or "warning").upper()
        logging.basicConfig(level=level, format="kernel-nanny: %(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except KernelNannyError as exc:
        print(f"kernel-nanny: error: {_error_text(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except UsageError as exc:
        args.subparser.print_usage(sys.stderr)
        print(f"{args.subparser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. piped into head: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:  # what was being started has been stopped on the way out (start.py)
        print("kernel-nanny: interrupted (whatever was being started has been stopped)", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernel-nanny",
        description="Find, run and manage Jupyter kernels: 'list' the kernel types, 'exec' code in a new "
        "kernel, or 'start' kernels behind nannies that keep them running, then 'ps', 'exec', 'interrupt', "
        "'restart', 'stop', 'kill', 'logs', 'output', 'attach' and 'events' by kernel id or name.",
        epilog="Run 'kernel-nanny COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"kernel-nanny {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="how much kernel-nanny itself logs to stderr (default: warning; for 'serve', its configuration's)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    list_cmd = commands.add_parser(
        "list",
        help="list the kernel types that can be started",
        description=(
            "List every kernel type the installed providers offer: kernelspecs (spec/NAME), "
            "the ipykernel of kernel-nanny's own Python (pyimport/kernel), the kernel types of SSH hosts "
            "(ssh/HOST/TYPE) and Docker images (docker/NAME) set up in the [providers.ssh] and "
            "[providers.docker] tables of the configuration, Python environments with ipykernel (conda/NAME, "
            "venv/NAME, uv/PROJECT, pixi/PROJECT/ENV, and .../SPEC for each kernelspec inside one), shown "
            "with the environment's directory, other daemons' types ([remote_daemons]), and "
            "those of any third-party provider registered in the 'kernel_nanny.kernel_providers' entry-point "
            "group. SSH hosts and Docker images are listed from the settings, without connecting."
        ),
    )
    list_cmd.add_argument("--json", action="store_true", help="print a JSON list with every attribute")
    list_cmd.set_defaults(handler=_cmd_list)

    exec_cmd = commands.add_parser(
        "exec",
        help="run code in a new kernel and print what it outputs",
        description=(
            "Run CODE (or the file FILE) in a kernel and print its output as it arrives (stdout, stderr, "
            "results, tracebacks). Given a kernel TYPE, a new kernel is started for the run and shut down "
            "after it; given a running KERNEL, the code runs there and the kernel keeps running. "
            "With --group, the kernel is kept behind a nanny and reused by later runs of the same group. "
            "A run in a kernel behind a nanny (a group's, or a running KERNEL) outlives this command: "
            "its commands are queued in the kernel, and its output kept in the nanny's journal. If this "
            "command dies, 'kernel-nanny exec --rejoin ID' (the ID it prints once the run has taken 2 s) "
            "shows the run's output and "
            "ends with its status; and the same command with --group re-joins a run of the same code that is "
            "still going in the group instead of starting a second one. "
            "Ctrl-C interrupts the running code; a second Ctrl-C kills a kernel started for the run "
            "(or the group's, which the next run replaces), or stops waiting for a running one."
        ),
        epilog=(
            "exit status: 0 the code ran without error, 1 the code raised an exception, "
            "2 usage error, 3 the kernel could not be started or died, 130 killed by a second Ctrl-C. "
            "examples: kernel-nanny exec pyimport/kernel -c 'print(6 * 7)'; "
            "kernel-nanny exec spec/python3 --group etl load.py; "
            "kernel-nanny exec --python ~/venvs/ml -c 'import torch'; "
            "kernel-nanny exec --rejoin 3f2a9c41d0e7"
        ),
    )
    exec_cmd.add_argument(
        "target",
        nargs="?",
        metavar="TYPE|KERNEL",
        help="a kernel type id (as 'kernel-nanny list' shows it) to start a new kernel, "
        "or the id, id prefix or name of a running kernel (as 'kernel-nanny ps' shows it); "
        "omitted with --python",
    )
    source = exec_cmd.add_mutually_exclusive_group()
    source.add_argument("-c", dest="code", metavar="CODE", help="the code to run")
    source.add_argument("file", nargs="?", metavar="FILE", help="a file of code to run ('-' reads standard input)")
    exec_cmd.add_argument("--cwd", metavar="DIR", help="the kernel's working directory (default: the current one)")
    _add_transport(exec_cmd)
    _add_startup_timeout(exec_cmd)
    exec_cmd.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="give up after this long (a kernel started for the run is stopped; "
        "a running kernel or a --group kernel keeps running)",
    )
    exec_cmd.add_argument(
        "--python",
        metavar="ENV",
        help="run in the ipykernel of this Python environment (the directory of a venv or conda "
        "environment, which needs ipykernel installed) instead of a kernel TYPE",
    )
    exec_cmd.add_argument(
        "--group",
        metavar="KEY",
        help="reuse one kernel per (TYPE or --python, --switch, KEY) across runs: the first run starts it "
        "behind a nanny under a name derived from them and leaves it running, later runs (from any process) "
        "find it by that name; 'kernel-nanny ps' shows it, 'kernel-nanny stop NAME' ends it",
    )
    exec_cmd.add_argument(
        "--rejoin",
        metavar="ID",
        help="instead of running code, follow run ID (printed by the exec that began it) to its end: all its "
        "output from the nanny's journal, then the rest as it comes; the exit status is the run's",
    )
    exec_cmd.add_argument(
        "--switch",
        dest="switches",
        action="append",
        default=[],
        metavar="ARG",
        help="add ARG to the kernel's command line (repeatable; write --switch=--opt=value for an ARG "
        "that starts with '-'), e.g. --switch=--HistoryManager.enabled=False",
    )
    exec_cmd.set_defaults(handler=_cmd_exec)

    start = commands.add_parser(
        "start",
        help="start a kernel behind its own nanny process, in the background",
        description=(
            "Start a nanny process that launches a kernel of type TYPE and supervises it: it restarts the "
            "kernel after a crash (within the restart policy), captures its output, and answers "
            "'kernel-nanny interrupt|restart|stop|kill|logs|events'. The kernel keeps running after this "
            "command returns, and dies with its nanny. Prints the kernel id, then the path of its "
            "connection file (usable with 'jupyter console --existing FILE')."
        ),
    )
    start.add_argument("type_id", metavar="TYPE", help="kernel type id, as 'kernel-nanny list' shows it")
    start.add_argument("--name", help="a name to refer to the kernel by, instead of its id")
    start.add_argument("--cwd", metavar="DIR", help="the kernel's working directory (default: the current one)")
    _add_transport(start)
    _add_startup_timeout(start)
    start.add_argument(
        "--max-restarts",
        type=int,
        metavar="N",
        help=f"automatic restarts allowed within the window (default: {DEFAULT_MAX_RESTARTS}; 0 disables)",
    )
    start.add_argument(
        "--restart-window",
        type=_seconds,
        metavar="SECONDS",
        help=f"the restart window (default: {DEFAULT_RESTART_WINDOW:g} s)",
    )
    start.add_argument(
        "--journal-memory",
        metavar="SIZE",
        help="how much of the kernel's output its nanny keeps in memory for replay ('kernel-nanny output'), "
        f"e.g. 16MiB (default: {DEFAULT_JOURNAL_MEMORY_BYTES // 2**20} MiB); 0 with --journal-disk 0 keeps no "
        "journal",
    )
    start.add_argument(
        "--journal-disk",
        metavar="SIZE",
        help="how much of it the nanny keeps on disk, in its private state directory; 0 keeps it in memory "
        f"only (default: {DEFAULT_JOURNAL_DISK_BYTES // 2**20} MiB)",
    )
    start.set_defaults(handler=_cmd_start)

    ps = commands.add_parser(
        "ps",
        help="list the kernels running behind nannies",
        description="List kernels running behind nannies on this machine (found through their connection files "
        "in the Jupyter runtime directory), each checked alive. Files left by nannies that no longer run are removed. "
        "While a daemon runs, its launches under way are listed too, with no ID yet: 'starting', or 'pending' with "
        "what they wait for (a Slurm job in the queue); 'stop --all' cancels them.",
    )
    ps.add_argument("--json", action="store_true", help="print a JSON list with each nanny's full info")
    ps.add_argument(
        "--all",
        action="store_true",
        help="also list the daemon's pooled kernels: started ahead of time, waiting for a launch to take them "
        "(NAME shows '(pooled)'; see [pool] in the configuration)",
    )
    ps.set_defaults(handler=_cmd_ps)

    pools = commands.add_parser(
        "pools",
        help="show the daemon's kernel pools: ready kernels per type, and why a pool is not full",
        description="Show each [pool] of the running daemon: its kernel type, size, ready and starting kernels, "
        "and its state: full, filling, held back by a [pool] limit, or failing (its kernels do not start: the "
        "last error is shown, and the pool tries again after 1 s, 2 s, 4 s... up to 5 minutes). A launch takes a "
        "ready kernel in milliseconds; see the 'Fast starts' how-to.",
    )
    pools.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait up to SECONDS for every pool to fill (or be held back, or fail); status 3 if they do not",
    )
    pools.add_argument("--json", action="store_true", help="print the daemon's pools reply as JSON")
    pools.set_defaults(handler=_cmd_pools)

    for command, text, extra in (
        ("interrupt", "interrupt the code running in a kernel (signal or message, per its interrupt mode)", None),
        ("restart", "restart a kernel in place (same connection file and ports)", "now"),
        ("stop", "shut a kernel down (shutdown request, then SIGTERM, then SIGKILL); its nanny exits", "now"),
        (
            "kill",
            "SIGKILL a kernel; its nanny stays (see 'ps'), does not restart it, and 'restart' revives it. "
            "A nanny that does not answer (stopped, hung) is SIGKILLed itself, and its kernel goes with it",
            None,
        ),
    ):
        sub = commands.add_parser(command, help=text, description=text[0].upper() + text[1:] + ".")
        if command == "stop":
            sub.add_argument("kernel", metavar="KERNEL", nargs="?", help="kernel id, id prefix or name (see 'ps')")
            sub.add_argument(
                "--all",
                action="store_true",
                help="stop every kernel running behind a nanny (one that cannot be stopped is reported, not fatal); "
                "through a daemon, also cancel its launches under way (a Slurm job still in the queue)",
            )
        else:
            sub.add_argument("kernel", metavar="KERNEL", help="kernel id, id prefix or name (see 'kernel-nanny ps')")
        if extra == "now":
            sub.add_argument("--now", action="store_true", help="skip the graceful steps: SIGKILL at once")
        sub.set_defaults(handler=_cmd_control, command=command)

    logs = commands.add_parser(
        "logs",
        help="print what a kernel process wrote to its stdout and stderr",
        description="Print the kernel process's own stdout/stderr as captured by its nanny (start-up messages, "
        "output of C code and subprocesses, crashes), up to the log size bound. The code's output, which goes "
        "to clients, is not included unless the kernel echoes it.",
    )
    logs.add_argument("kernel", metavar="KERNEL", help="kernel id, id prefix or name")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the kernel stops")
    logs.set_defaults(handler=_cmd_logs)

    output = commands.add_parser(
        "output",
        help="print a kernel's recorded output (its nanny's journal), also what nobody was there to see",
        description="Print what the kernel sent on iopub, as its nanny recorded it under sequence numbers: "
        "streams, results, errors and display data rendered as 'exec' prints them, and markers where the "
        "kernel started, died or restarted. The journal is bounded (by default 8 MiB in memory, 64 MiB on disk; "
        "'start --journal-memory/--journal-disk', or [journal] in the configuration): "
        "older output is dropped first, and a gap says how many entries went. Remember the last SEQ you "
        "saw and pass it to --since to print only what came after.",
    )
    output.add_argument("kernel", metavar="KERNEL", help="kernel id, id prefix or name")
    output.add_argument("--since", type=int, default=0, metavar="SEQ", help="only entries after sequence number SEQ")
    output.add_argument("--last", type=int, metavar="N", help="only the last N entries")
    output.add_argument(
        "--parent", metavar="MSG_ID", help="only the output of this request (an execute_request's msg_id)"
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per entry: seq, received, kind, msg_type, parent_msg_id, content (for scripts)",
    )
    output.set_defaults(handler=_cmd_output)

    attach = commands.add_parser(
        "attach",
        help="show what a kernel is doing and follow its output live (Ctrl-C detaches; the kernel keeps running)",
        description="Show the kernel's last execution (its input, and the output it printed so far, from the "
        "nanny's journal, also while nobody was connected), then follow its output as it comes, like 'tail -f': "
        "streams, results, errors and display data rendered as 'exec' prints them; markers (kernel died, "
        "restarted) on stderr. Each message shows once, in order, across the switch from recorded to live. "
        "Ctrl-C detaches and never interrupts the kernel, unless --interrupt-on-ctrl-c. Ends when the "
        "nanny exits (status 0), or with status 3 if the nanny stops answering or the kernel is dead.",
    )
    attach.add_argument("kernel", metavar="KERNEL", help="kernel id, id prefix or name")
    attach.add_argument(
        "--since", type=int, metavar="SEQ", help="show the recorded entries after sequence number SEQ instead"
    )
    attach.add_argument("--last", type=int, metavar="N", help="show the last N recorded entries instead")
    attach.add_argument(
        "--interrupt-on-ctrl-c",
        action="store_true",
        help="the first Ctrl-C interrupts the kernel (through its nanny), a second detaches",
    )
    attach.set_defaults(handler=_cmd_attach)

    events = commands.add_parser(
        "events",
        help="print a kernel's nanny events as they happen",
        description="Print the events a kernel's nanny publishes (kernel_started, kernel_died, kernel_restarted, "
        "restart_failed, stream, nanny_exiting) until the nanny exits or Ctrl-C.",
    )
    events.add_argument("kernel", metavar="KERNEL", help="kernel id, id prefix or name")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--heartbeats", action="store_true", help="include the periodic heartbeat events")
    events.set_defaults(handler=_cmd_events)
    serve = commands.add_parser(
        "serve",
        help="run the daemon: launches kernels behind nannies on request and keeps an index of them",
        description=(
            "Run the kernel-nanny daemon in the foreground (under systemd: Type=notify). It serves a local "
            "API socket in the runtime directory (0600) and, if configured, a tcp endpoint that requires "
            "CurveZMQ with an allow-listed client key. Kernels live in their own nanny processes and keep "
            "running when the daemon stops; a new daemon re-adopts them. While a daemon runs, 'start', 'ps' "
            "and 'stop' go through it. Configuration: /etc/kernel-nanny/config.toml, then "
            "~/.config/kernel-nanny/config.toml, or only --config; with none, the built-in defaults serve."
        ),
    )
    serve.add_argument("--config", metavar="PATH", help="read only this configuration file (TOML)")
    gateway = serve.add_argument_group(
        "Jupyter Kernel Gateway API",
        "Also serve the HTTP/WebSocket API of Jupyter Kernel Gateway, for JupyterLab and jupyter_server in "
        "gateway mode: jupyter lab --gateway-url=http://127.0.0.1:PORT "
        "--GatewayClient.auth_token=$(kernel-nanny keys --gateway-token). Every request needs that token. "
        "These options override the configuration's [gateway] table.",
    )
    gateway.add_argument(
        "--gateway",
        metavar="[HOST:]PORT",
        help="serve the API on this address (HOST defaults to 127.0.0.1; PORT 0 picks a free one)",
    )
    gateway.add_argument("--gateway-certfile", metavar="PATH", type=Path, help="TLS certificate (PEM) for https/wss")
    gateway.add_argument("--gateway-keyfile", metavar="PATH", type=Path, help="the certificate's private key (PEM)")
    gateway.add_argument(
        "--gateway-insecure",
        action="store_true",
        help="allow a non-loopback address without TLS (only behind a TLS-terminating proxy)",
    )
    serve.set_defaults(handler=_cmd_serve)

    keys = commands.add_parser(
        "keys",
        help="show the daemon's CurveZMQ key and allowed clients, or make a key pair for a new remote client",
        description=(
            "Without a subcommand: print the daemon's public key and the allow-listed client keys. "
            "'keys new NAME --endpoint tcp://HOST:PORT' makes a key pair for a remote client, allows it, and "
            "writes a client connection file (0600) to hand over securely: it is all a remote DaemonClient "
            "needs. Keys live in the daemon's state directory."
        ),
    )
    keys.add_argument("--config", metavar="PATH", help="the daemon's configuration file (for its state directory)")
    keys.add_argument(
        "--gateway-token",
        action="store_true",
        help="print only the gateway API's token (made on first use), for GatewayClient.auth_token",
    )
    keys_commands = keys.add_subparsers(metavar="SUBCOMMAND")
    keys_new = keys_commands.add_parser("new", help="make, allow and export a key pair for a remote client")
    keys_new.add_argument(
        "name", metavar="NAME", help="a label for the client, kept next to its key (printable characters, one line)"
    )
    keys_new.add_argument("--endpoint", required=True, help="the daemon's tcp endpoint as the client reaches it")
    keys_new.add_argument(
        "-o", "--output", metavar="FILE", help="where to write it, 0600 (default: ./NAME.json; not a symbolic link)"
    )
    keys_new.add_argument("--force", action="store_true", help="replace FILE if it exists")
    keys_new.set_defaults(handler=_cmd_keys_new)
    keys.set_defaults(handler=_cmd_keys_show)

    install = commands.add_parser(
        "install-service",
        help="install and enable the per-user systemd service",
        description=(
            "Write ~/.config/systemd/user/kernel-nanny.service, running the daemon with this Python, then "
            "'systemctl --user daemon-reload' and 'systemctl --user enable --now kernel-nanny'. "
            "Use --no-enable to only write the unit. For a system service per user, see the "
            "kernel-nanny@.service template in the documentation."
        ),
    )
    install.add_argument("--no-enable", action="store_true", help="write the unit file only")
    install.add_argument("--print", action="store_true", help="print the unit instead of installing it")
    install.set_defaults(handler=_cmd_install_service)

    trust = commands.add_parser(
        "ssh-trust",
        help="trust an SSH host's key: add it to the host's known_hosts file",
        description=(
            "Fetch the host key that the SSH host NAME (a [providers.ssh.hosts.NAME] table of the configuration, "
            "or 'slurm-login' for the Slurm cluster's [providers.slurm.login]) presents, print its fingerprint "
            "and, once you confirm that it is the key you expect (compare it "
            "with 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' on the host), append it to the known_hosts "
            "file of the host's settings. kernel-nanny never connects to a host whose key it cannot check."
        ),
    )
    trust.add_argument(
        "host",
        metavar="NAME",
        help="the host's name in [providers.ssh.hosts], or slurm-login for the login host of [providers.slurm]",
    )
    trust.add_argument("--yes", action="store_true", help="trust the key without asking (only on a trusted network)")
    trust.add_argument("--config", metavar="PATH", help="the configuration file to read the host from")
    trust.set_defaults(handler=_cmd_ssh_trust)
    for subparser in commands.choices.values():
        subparser.set_defaults(subparser=subparser)  # a usage error shows the command's own usage
    return parser


def _kernel_type_named(ref: str) -> str | None:
    """The kernel type a bare name means when no running kernel has it (``python3``: ``spec/python3``, as Jupyter
    names kernels), if exactly one type has that name; None when ``ref`` is a running kernel."""
    try:
        find_running_kernel(ref)
        return None
    except NoSuchKernel:
        types = [type_id for type_id, _ in _finder().find_kernels() if type_id.rsplit("/", 1)[-1] == ref]
        if len(types) == 1:
            return types[0]
        if types:
            raise UsageError(
                f"no running kernel is named {ref!r}, and several kernel types are: {', '.join(types)}"
            ) from None
        raise NoSuchKernel(
            f"no running kernel {ref!r} and no kernel type of that name (see 'kernel-nanny ps' and 'kernel-nanny list')"
        ) from None


def _add_transport(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="auto (default): ipc for ipykernel and kernelspecs that declare it, else tcp on loopback; "
        "ipc: unix sockets, for this machine (some kernels cannot use it); "
        "tcp: on --ip, CurveZMQ-encrypted where the kernel supports it",
    )
    command.add_argument("--ip", help="address to bind with --transport tcp (default: 127.0.0.1)")


def _add_startup_timeout(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--startup-timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"how long a new kernel may take to become ready (default: {DEFAULT_STARTUP_TIMEOUT:g} s)",
    )


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def _error_text(exc: KernelNannyError) -> str:
    """An error for the terminal. One a nanny or daemon replied with reads like one raised here (its evalue
    names the kernel and the fix)."""
    return _printable(exc.evalue if isinstance(exc, KernelError) and is_known_error(exc) else str(exc))


def _printable(text: object) -> str:
    """``text`` safe for a terminal: control characters (escape sequences included) shown escaped."""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in str(text))


def _cmd_list(args: argparse.Namespace) -> int:
    kernels = sorted(_finder().find_kernels())
    if args.json:
        print(json.dumps([{"id": type_id, **attributes} for type_id, attributes in kernels], indent=2))
        return EXIT_OK
    if not kernels:
        print("no kernel types found (install ipykernel, or a kernelspec with 'jupyter kernelspec install')")
        return EXIT_OK
    rows: list[tuple[str, ...]] = [("TYPE", "LANGUAGE", "DISPLAY NAME")]
    rows += [(type_id, a.get("language", ""), a.get("display_name", "")) for type_id, a in kernels]
    if any("env_path" in a for _, a in kernels):  # kernels of Python environments: where each one is
        rows = [(*rows[0], "ENVIRONMENT")] + [
            (*row, a.get("env_path", "")) for row, (_, a) in zip(rows[1:], kernels, strict=True)
        ]
    _print_table(rows)
    return EXIT_OK


def _cmd_exec(args: argparse.Namespace) -> int:
    target, file = args.target, args.file
    if args.rejoin is not None:
        if target is not None or file is not None or args.code is not None or args.group or args.python:
            raise UsageError("--rejoin ID follows a run that was started already: give no code, kernel or --group")
        return asyncio.run(_rejoin(args.rejoin))
    if args.python is not None and target is not None:
        if file is not None or args.code is not None:
            raise UsageError("give a kernel TYPE or --python ENV, not both")
        target, file = None, target  # 'exec --python ENV FILE'
    if args.code is None and file is None:
        raise UsageError("give the code to run: -c CODE, or a FILE ('-' reads standard input)")
    if target is None and args.python is None:
        raise UsageError("give a kernel TYPE, a running KERNEL, or --python ENV")
    if args.code is not None:
        code = args.code
    elif file == "-":
        code = sys.stdin.read()
    else:
        try:
            with open(file, encoding="utf-8") as source:
                code = source.read()
        except OSError as exc:
            print(f"kernel-nanny: error: cannot read {file}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    if target is not None and "/" not in target and not (args.group or args.switches):
        target = _kernel_type_named(target) or target
    if target is not None and "/" not in target:
        if args.group or args.switches:
            raise UsageError("--group and --switch choose how a new kernel starts: give a kernel TYPE, not a KERNEL")
        execution = KernelExecution.attach(target)
    else:
        try:
            execution = KernelExecution(
                target,
                python=args.python,
                group=args.group,
                switches=args.switches,
                cwd=args.cwd or os.getcwd(),
                launch_params=_launch_params(args) or None,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return asyncio.run(_exec(execution, code, timeout=args.timeout, attached=target is not None and "/" not in target))


async def _exec(execution: KernelExecution, code: str, *, timeout: float | None, attached: bool) -> int:
    """Run ``code``, print its output, and turn the outcome into an exit status."""
    async with execution:
        label = _printable(execution.label)
        waiting = f"kernel {label}" if attached else f"{label} to become ready"
        async with Progress(waiting) as progress:
            with listening(progress.on_launch_event):
                await execution.start()
        if attached:
            await _say_if_busy(execution)
        if execution.group is not None and execution.started_new:
            print(
                f"kernel-nanny: started kernel {_printable(execution.name)} for group {execution.group!r}; it keeps "
                f"running for the next runs of the group ('kernel-nanny stop {_printable(execution.name)}' stops it)",
                file=sys.stderr,
            )
        if attached:
            interrupts = _InterruptCounter(execution, second_press="stop waiting; the kernel keeps running")
            cancelled_note = "kernel-nanny: stopped waiting; the kernel keeps running"
        else:
            interrupts = _InterruptCounter(execution)
            cancelled_note = "kernel-nanny: killed the kernel"
        stdin_hook = _read_terminal_input if sys.stdin.isatty() else None
        notes = _RunNotes()
        try:
            status = await execution.run(
                [code],
                output_hook=OutputPrinter(sys.stdout, sys.stderr),
                stdin_hook=stdin_hook,
                timeout=timeout,
                rejoin=execution.group is not None,
                on_queued=notes.on_queued,
            )
            return EXIT_OK if status == 0 else EXIT_CODE_RAISED
        except KernelDied as exc:
            print(f"kernel-nanny: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except asyncio.CancelledError:
            if not attached:
                await execution.kill()
            print(cancelled_note, file=sys.stderr)
            return EXIT_INTERRUPTED
        finally:
            notes.done()
            interrupts.remove()


class _RunNotes:
    """What ``exec`` says about a run that outlives it: a re-joined run at once; how to re-join a run of
    its own only once it has taken ``EXEC_REJOIN_HINT_AFTER`` seconds (a quick run says nothing)."""

    def __init__(self) -> None:
        self._hint: asyncio.TimerHandle | None = None

    def on_queued(self, execution: KernelExecution) -> None:
        record = execution.rejoined
        if record is not None:
            started = time.strftime("%H:%M:%S", time.localtime(record.started))
            print(
                f"kernel-nanny: the same code is still running in group {execution.group!r} "
                f"(run {record.execution_id}, begun at {started} by pid {record.pid}): following that run "
                "instead of starting a second one",
                file=sys.stderr,
            )
        elif execution.execution_id is not None:
            hint = (
                f"kernel-nanny: run {execution.execution_id} in kernel "
                f"{_printable(execution.name or execution.kernel_id)}; "
                f"it goes on if this command ends ('kernel-nanny exec --rejoin {execution.execution_id}' follows it)"
            )
            self._hint = asyncio.get_running_loop().call_later(
                EXEC_REJOIN_HINT_AFTER, functools.partial(print, hint, file=sys.stderr)
            )

    def done(self) -> None:
        if self._hint is not None:
            self._hint.cancel()


async def _rejoin(execution_id: str) -> int:
    """``exec --rejoin ID``: the run's output, then its status."""
    try:
        status = await KernelExecution.rejoin(execution_id, output_hook=OutputPrinter(sys.stdout, sys.stderr))
    except KernelDied as exc:
        print(f"kernel-nanny: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if status == 0 else EXIT_CODE_RAISED


async def _say_if_busy(execution: KernelExecution) -> None:
    """Code sent to a busy kernel waits for what runs there: say so, rather than wait without a word."""
    manager = execution.manager
    if isinstance(manager, ManagerClient) and sys.stderr.isatty():
        info = await manager.info()
        if info["execution_state"] == "busy":
            since = _duration(time.time() - info["execution_state_since"])
            print(
                f"kernel-nanny: kernel {_printable(execution.name or execution.label)} is busy (for {since}): this "
                "code runs "
                "when it is done. Ctrl-C interrupts the kernel; 'kernel-nanny ps' shows its state",
                file=sys.stderr,
            )


async def _read_terminal_input(request: Message) -> str:
    prompt = request.content.get("prompt", "")
    try:
        return await asyncio.get_running_loop().run_in_executor(None, input, prompt)
    except EOFError:
        return ""


class _InterruptCounter:
    """Ctrl-C interrupts the kernel; a second one cancels the run (and kills the kernel)."""

    def __init__(self, execution: KernelExecution, second_press: str = "kill it") -> None:
        self.count = 0
        self._second_press = second_press
        self._execution = execution
        self._main = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGINT, self._pressed)

    def _pressed(self) -> None:
        self.count += 1
        if self.count == 1:
            print(f"\nkernel-nanny: interrupting the kernel (Ctrl-C again to {self._second_press})", file=sys.stderr)
            self._loop.create_task(self._execution.interrupt())
        elif self._main is not None:
            self._main.cancel()

    def remove(self) -> None:
        self._loop.remove_signal_handler(signal.SIGINT)


def _finder(config: DaemonConfig | None = None) -> KernelFinder:
    """Every installed provider, plus the remote daemons the configuration names."""
    finder = KernelFinder.from_entrypoints()
    for name, connection_file in (config or load_config()).remote_daemons.items():
        finder.add_provider(DaemonProvider(name, connection_file))
    return finder


def _launch_params(args: argparse.Namespace) -> dict[str, Any]:
    """The launch parameters given by the options of :func:`_add_transport` and :func:`_add_startup_timeout`."""
    return {key: value for key in ("transport", "ip", "startup_timeout") if (value := getattr(args, key)) is not None}


def _cmd_start(args: argparse.Namespace) -> int:
    policy = {}
    if args.max_restarts is not None:
        policy["max_restarts"] = args.max_restarts
    if args.restart_window is not None:
        policy["window"] = args.restart_window
    caps = {key: value for key in ("memory", "disk") if (value := getattr(args, f"journal_{key}")) is not None}
    launch_params = _launch_params(args)
    try:
        restart_policy = RestartPolicy(**policy)
        journal = JournalLimits.from_dict(caps)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    request = LaunchRequest(
        kernel_type=args.type_id,
        cwd=args.cwd or os.getcwd(),
        params=LaunchParams.from_mapping(launch_params),
        name=args.name,
        restart_policy=restart_policy,
        journal=journal,
        supervised=True,
    )

    async def start() -> dict[str, Any]:
        # Through the daemon when one runs (its pool may have the kernel ready; its defaults apply to what the
        # command line left unset), else here.
        async with Progress(f"{request.kernel_type} to become ready") as progress:
            with listening(progress.on_launch_event):  # a queued job's state, as it changes
                info, manager = await start_kernel(request, finder=_finder(), use_daemon=True)
        assert manager is not None
        await manager.cleanup()
        return info

    # SIGTERM (timeout(1), a CI job's end) stops the start as Ctrl-C does: the launch is abandoned
    # and cleaned up (a queued Slurm job is cancelled), rather than the command dying mid-way.
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    info = asyncio.run(start())
    print(info["kernel_id"])
    local_file = public_connection_file(info["kernel_id"])
    if local_file.exists():
        print(local_file)
    else:  # launched by another daemon: its connection file is over there
        short = info["kernel_id"][:12]
        print(f"(the connection file is on the daemon that runs it; 'kernel-nanny ps' there shows {short})")
    return EXIT_OK


_KernelRows = list[tuple[Mapping[str, Any], NannyInfo | None]]


def _kernels_and_infos(pooled: bool = False) -> tuple[_KernelRows, list[dict[str, Any]]]:
    """Each kernel (id, name, type, connection_file, pool) with its nanny's info (None: unresponsive), the
    daemon's pooled kernels only if ``pooled``; and the daemon's launches under way (none without a daemon)."""

    async def gather() -> tuple[_KernelRows, list[dict[str, Any]]]:
        daemon = DaemonClient.running()
        if daemon is not None:
            async with daemon:
                listing = await daemon.list_kernels(info=True, pooled=pooled)
                launches = await daemon.list_launches()
                return [(entry, entry.get("info")) for entry in listing], launches
        rows: _KernelRows = []
        for kernel in list_running_kernels():
            if kernel.pool is not None and not pooled:
                continue
            entry = {
                "kernel_id": kernel.kernel_id,
                "name": kernel.name,
                "kernel_type": kernel.kernel_type,
                "connection_file": str(kernel.connection_file),
                "pool": kernel.pool,
            }
            async with ManagerClient(kernel.info, timeout=NANNY_PROBE_TIMEOUT) as manager:
                try:
                    rows.append((entry, await manager.info()))
                except NannyUnavailable:
                    rows.append((entry, None))
        return rows, []

    return asyncio.run(gather())


def _cmd_ps(args: argparse.Namespace) -> int:
    rows, launches = _kernels_and_infos(pooled=args.all)
    if args.json:
        listing = [{"connection_file": e["connection_file"], **(i or {**e, "state": "unresponsive"})} for e, i in rows]
        listing += [_launch_entry(launch) for launch in launches]
        print(json.dumps(listing, indent=2))
        return EXIT_OK
    table: list[tuple[str, ...]] = [("ID", "NAME", "TYPE", "PID", "STATE", "ACTIVITY", "UPTIME", "RESTARTS")]
    now = time.time()
    for entry, info in rows:
        short, name = entry["kernel_id"][:12], entry.get("name") or ("(pooled)" if entry.get("pool") else "-")
        if info is None:
            table.append((short, name, entry["kernel_type"], "-", "unresponsive", "-", "-", "-"))
            continue
        pid = str(info["pid"]) if info["alive"] and info["pid"] is not None else "-"
        uptime = _duration(now - info["started"])
        # What the kernel is doing (idle, busy since when), as its iopub status says; only while it runs.
        activity = info["execution_state"] if info["state"] == "running" else "-"
        if activity == "busy":
            activity = f"busy {_duration(now - info['execution_state_since'])}"
        state = info["state"]
        if state == "dead" and info["last_exit"] is not None:
            state = f"dead ({info['last_exit']['reason']})"  # why: exited, killed, oom, time_limit, cancelled...
        row = (short, name, info["kernel_type"], pid, state, activity, uptime, str(info["restart_count"]))
        table.append(row)
    places = [_placement(info) if info is not None else "-" for _, info in rows]
    for launch in launches:  # not kernels yet: what the daemon is starting (a Slurm job in the queue)
        shown = _launch_entry(launch)
        waited = _duration(now - shown["since"])
        table.append(("-", shown["name"] or "-", shown["kernel_type"], "-", shown["state"], "-", waited, "-"))
        places.append(str(launch["content"].get("message", "-")))  # Slurm job 12 PENDING (Resources)...
    if any(place != "-" for place in places):
        table = [(*table[0], "WHERE"), *((*row, place) for row, place in zip(table[1:], places, strict=True))]
    _print_table(table)
    placements = [info.get("placement") or {} for _, info in rows if info]
    # A launch's queued job is owned too: it is no kernel's yet, but it is no stray.
    placements += [launch["content"] for launch in launches]
    _report_stray_jobs({str(place["slurm_job"]) for place in placements if "slurm_job" in place})
    return EXIT_OK


def _launch_entry(launch: Mapping[str, Any]) -> dict[str, Any]:
    """A launch under way as ``ps --json`` lists it: no kernel (id, connection file) yet, ``pending`` while it
    waits in a queue (``pending`` holds what the queue said), else ``starting``."""
    pending = launch["event"] == "kernel_pending"
    return {
        "kernel_id": None,
        "connection_file": None,
        "name": launch["name"],
        "kernel_type": launch["type_id"],
        "state": "pending" if pending else "starting",
        "since": launch["since"],
        "pending": launch["content"] if pending else None,
    }


def _cmd_pools(args: argparse.Namespace) -> int:
    if not 0 <= args.wait <= MAX_POOL_WAIT:
        raise UsageError(f"--wait must be seconds from 0 to {MAX_POOL_WAIT:g}")

    async def ask() -> dict[str, Any]:
        async with DaemonClient.find() as daemon, Progress("the pools to fill"):
            return await daemon.pools(wait=args.wait)

    reply = asyncio.run(ask())
    if args.json:
        print(json.dumps({"pools": reply["pools"], "settled": reply["settled"]}, indent=2))
    elif not reply["pools"]:
        print('the daemon has no pools: add [pool."<kernel type>"] tables to its configuration')
    else:
        table: list[tuple[str, ...]] = [("TYPE", "SIZE", "READY", "STARTING", "STATE")]
        for pool in reply["pools"]:
            if pool["failures"]:
                state = f"failing ({pool['failures']} in a row): {pool['error']}"
            else:
                state = pool["held"] or ("full" if pool["ready"] >= pool["size"] else "filling")
            table.append((pool["kernel_type"], str(pool["size"]), str(pool["ready"]), str(pool["starting"]), state))
        _print_table(table)
    return EXIT_OK if reply["settled"] or not args.wait else EXIT_FAILED


def _placement(info: NannyInfo) -> str:
    """Where a kernel runs when not here: ``slurm job 12 on node7 RUNNING, 1h02m left``."""
    place = info.get("placement")
    if not place:
        return "-"
    if "slurm_job" in place:
        left = place.get("time_left")
        walltime = f", {_duration(left)} left" if left is not None else ""
        return f"slurm job {place['slurm_job']} on {place.get('node') or '?'} {place.get('job_state', '')}{walltime}"
    return ", ".join(f"{key} {value}" for key, value in place.items())


def _report_stray_jobs(owned: set[str]) -> None:
    """Jobs kernel-nanny submitted that no kernel here owns (``owned``: those that are), e.g. their nanny
    was killed: named, with how to take them over or end them, not hidden."""
    provider = _finder().providers.get("slurm")
    if not isinstance(provider, SlurmProvider) or not provider.cluster.kernels:
        return
    try:
        strays = asyncio.run(stray_jobs(provider, owned))
    except KernelNannyError as exc:
        print(f"kernel-nanny: could not check for Slurm jobs left behind: {exc}", file=sys.stderr)
        return
    for job in strays:
        takeover = (
            f"SlurmKernelManager.from_state_file({job.job_id!r}) takes it over, "
            if state_file(job.job_id).exists()
            else ""
        )
        print(
            f"kernel-nanny: Slurm job {job.job_id} ({job.state} on {job.node or 'no node yet'}) was started by "
            f"kernel-nanny, but no kernel here owns it: {takeover}'scancel {job.job_id}' ends it",
            file=sys.stderr,
        )


def _print_table(rows: Sequence[Sequence[object]]) -> None:
    """Aligned columns; what users and kernelspecs named (escape sequences included) is shown escaped."""
    cells = [[_printable(cell).replace("\n", "\\n") for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _cmd_control(args: argparse.Namespace) -> int:
    if args.command == "stop":
        return _stop(args)
    kernel = find_running_kernel(args.kernel)

    async def control() -> None:
        async with ManagerClient(kernel.info) as manager:
            try:
                if args.command == "interrupt":
                    await manager.interrupt()
                elif args.command == "restart":
                    await manager.restart(now=args.now)
                else:
                    await manager.kill()
            except NannyUnavailable as exc:
                if not kernel.nanny_alive():
                    raise
                if args.command == "kill" and kernel.nanny.signal_nanny(signal.SIGKILL):
                    # The last resort for a nanny that cannot answer: its kernel goes with it (the lifeline).
                    note = f"kernel-nanny: the nanny (pid {kernel.nanny_pid}) did not answer: killed it and its kernel"
                    print(note, file=sys.stderr)
                    list_running_kernels()  # removes the files the killed nanny left
                    return
                raise kernel.unresponsive() from exc

    asyncio.run(control())
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    """Stop one kernel, or all (through the daemon when one runs, so its index follows).

    With --all, a kernel that cannot be stopped (its nanny hangs) is reported and the others are still stopped.
    """
    if bool(args.kernel) == bool(args.all):
        raise UsageError("give a KERNEL to stop, or --all")

    async def stop() -> list[str]:
        failures = []
        daemon = DaemonClient.running()
        if daemon is not None:
            async with daemon:
                if args.all:  # first the launches under way, so that none becomes a kernel while the rest stop
                    for launch in await daemon.cancel_launches():
                        print(f"kernel-nanny: cancelled the launch of {_printable(launch['type_id'])}", file=sys.stderr)
                targets = [e["kernel_id"] for e in await daemon.list_kernels()] if args.all else [args.kernel]
                for ref in targets:
                    try:
                        await daemon.shutdown_kernel(ref, now=args.now)
                    except KernelNannyError as exc:
                        failures.append(_error_text(exc))
            return failures
        for kernel in list_running_kernels() if args.all else [find_running_kernel(args.kernel)]:
            try:
                async with ManagerClient(kernel.info) as manager:
                    await manager.shutdown(now=args.now)
            except NannyUnavailable as exc:
                failures.append(_error_text(kernel.unresponsive() if kernel.nanny_alive() else exc))
            except KernelNannyError as exc:
                failures.append(_error_text(exc))
        return failures

    failures = asyncio.run(stop())
    for failure in failures:
        print(f"kernel-nanny: error: {failure}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    config = _with_gateway_options(load_config(args.config), args)
    # Under systemd, journald stamps each line: no timestamp of our own.
    journald = "INVOCATION_ID" in os.environ or "JOURNAL_STREAM" in os.environ
    stamp = "" if journald else "%(asctime)s "
    logging.basicConfig(
        level=(args.log_level or config.log_level).upper(), format=stamp + "%(levelname)s %(name)s: %(message)s"
    )
    if args.config is not None:  # its nannies read their providers' settings from the same file
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    # The daemon indexes the nannies of this machine; other daemons' kernels are theirs to index.
    daemon = NannyDaemon(config, KernelFinder.from_entrypoints(config=args.config))

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop, f"received {signal.Signals(signum).name}")
        await daemon.run()

    asyncio.run(serve())
    return EXIT_OK


def _with_gateway_options(config: DaemonConfig, args: argparse.Namespace) -> DaemonConfig:
    """The configuration with ``serve``'s gateway options over its ``[gateway]`` table."""
    given = args.gateway is not None or args.gateway_certfile or args.gateway_keyfile or args.gateway_insecure
    if not given:
        return config
    settings = config.gateway
    if args.gateway is not None:
        try:
            host, port = parse_address(args.gateway)
        except ValueError as exc:
            raise UsageError(f"--gateway: {exc}") from None
        settings = dataclasses.replace(settings, host=host, port=port)
    settings = dataclasses.replace(
        settings,
        certfile=args.gateway_certfile or settings.certfile,
        keyfile=args.gateway_keyfile or settings.keyfile,
        insecure=args.gateway_insecure or settings.insecure,
    )
    if not settings.on:
        raise UsageError("the gateway options need an address: --gateway [HOST:]PORT (or [gateway] address)")
    problem = settings.problem()
    if problem:
        raise UsageError(f"--gateway: {problem}")
    return dataclasses.replace(config, gateway=settings)


def _cmd_keys_show(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    keys = DaemonKeys(config.state_dir, config.allowed_client_keys)
    if args.gateway_token:
        print(keys.gateway_token())
        return EXIT_OK
    if not keys.server_key_file.exists():
        print(f"created the daemon's key pair in {keys.server_key_file} (its tcp endpoint's identity)", file=sys.stderr)
    print(f"daemon public key: {keys.server_keypair()[0].decode()}")
    allowed = sorted(keys.allowed_keys().items())
    print(f"allowed client keys ({len(allowed)}; {keys.authorized_keys_file}):")
    for key, label in allowed:
        print(f"  {key}  {_printable(label)}".rstrip())
    gateway = f"{config.gateway.url} ([gateway])" if config.gateway.on else "off unless 'serve --gateway [HOST:]PORT'"
    print(f"gateway API: {gateway}; token: {keys.gateway_token()} ({keys.state_dir / 'gateway.token'})")
    return EXIT_OK


def _cmd_keys_new(args: argparse.Namespace) -> int:
    if not args.endpoint.startswith("tcp://"):
        raise UsageError("--endpoint must look like tcp://HOST:PORT (the daemon's tcp_endpoint as clients reach it)")
    try:
        check_client_name(args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = load_config(args.config)
    keys = DaemonKeys(config.state_dir, config.allowed_client_keys)
    output = Path(args.output or f"{args.name}.json").absolute()  # not resolve(): a symlink is refused, not followed
    if output.is_symlink():
        raise UsageError(
            f"{output} is a symbolic link (to {os.readlink(output)}); a secret key is never written "
            "through one: remove it, or choose another --output"
        )
    if output.exists() and not args.force:
        raise UsageError(f"{output} exists; choose another --output, or --force to replace it")
    write_private_file(output, json.dumps(keys.new_client(args.name, args.endpoint), indent=2).encode())
    print(output)
    print(
        f"Client {args.name!r} is allowed. Give it {output.name} over a secure channel; it connects with "
        "DaemonClient.from_file(path), or as [remote_daemons] in its configuration.",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_ssh_trust(args: argparse.Namespace) -> int:
    providers = KernelFinder.from_entrypoints(config=args.config).providers
    slurm = providers.get("slurm")
    if args.host == LOGIN_HOST_NAME and isinstance(slurm, SlurmProvider) and slurm.cluster.login is not None:
        host = slurm.cluster.login  # the Slurm cluster's login host
    else:
        provider = providers.get("ssh")
        if not isinstance(provider, SSHProvider):
            raise ConfigError("the ssh provider needs asyncssh: pip install asyncssh (the 'ssh' extra of kernel-nanny)")
        host = provider.host(args.host)
    key = asyncio.run(fetch_host_key(host))
    print(f"{host.name} ({host.address}) presents this {key.get_algorithm()} key:")
    print(f"  {key.get_fingerprint('sha256')}")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("confirm on a terminal, or pass --yes")
        if input("Trust it? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not trusted")
            return EXIT_FAILED
    print(f"added to {add_known_host(host, key)}")
    return EXIT_OK


def _cmd_install_service(args: argparse.Namespace) -> int:
    template = (resources.files("kernel_nanny") / "systemd" / "kernel-nanny.service").read_text()
    unit = re.sub(r"(?m)^ExecStart=.*$", f"ExecStart={sys.executable} -m kernel_nanny serve", template)
    if args.print:
        print(unit, end="")
        return EXIT_OK
    path = systemd_user_unit_dir() / "kernel-nanny.service"
    secure_directory(path.parent)
    write_private_file(path, unit.encode())
    print(path)
    if args.no_enable:
        return EXIT_OK
    for command in (["daemon-reload"], ["enable", "--now", "kernel-nanny.service"]):
        done = subprocess.run(["systemctl", "--user", *command], capture_output=True, text=True)
        if done.returncode != 0:
            print(
                f"kernel-nanny: the unit is written, but 'systemctl --user {' '.join(command)}' failed: "
                f"{done.stderr.strip() or done.returncode}. Enable it by hand once a user manager runs.",
                file=sys.stderr,
            )
            return EXIT_FAILED
    return EXIT_OK


def _cmd_logs(args: argparse.Namespace) -> int:
    kernel = find_running_kernel(args.kernel)
    if not args.follow:
        sys.stdout.buffer.write(read_log(kernel.log_file))
        sys.stdout.flush()
        return EXIT_OK

    async def follow() -> None:
        async with ManagerClient(kernel.info) as manager:
            events = manager.events()
            await events.__anext__()  # the nanny's greeting: from now on no output is missed
            sys.stdout.buffer.write(read_log(kernel.log_file))
            sys.stdout.flush()
            position = _size(kernel.log_file)
            async for event in events:
                if event.msg_type == "stream":
                    position = _print_new_output(kernel.log_file, position)

    return _until_interrupted(follow())


def _cmd_output(args: argparse.Namespace) -> int:
    if args.since < 0 or (args.last is not None and args.last < 0):
        raise UsageError("--since and --last take whole numbers >= 0")
    kernel = find_running_kernel(args.kernel)
    printer = OutputPrinter(sys.stdout, sys.stderr)

    async def show() -> None:
        async with ManagerClient(kernel.info) as manager:
            async for entry in manager.replay(args.since, parent_msg_id=args.parent, last=args.last):
                if args.json:
                    print(json.dumps(_entry_json(entry)), flush=False)
                else:
                    _show_entry(entry, printer)
            sys.stdout.flush()

    asyncio.run(show())
    return EXIT_OK


def _show_entry(entry: JournalEntry, printer: OutputPrinter) -> None:
    """A journal entry as 'output' and 'attach' show it: output rendered as 'exec' does, markers on stderr."""
    if entry.message is not None:
        printer(entry.message)
    elif entry.kind == "lost":
        print(f"kernel-nanny: [{entry.content['count']} entries dropped from the journal]", file=sys.stderr)
    else:
        print(f"kernel-nanny: [{entry.kind} {json.dumps(entry.content)}]", file=sys.stderr)


def _show_input(entry: JournalEntry) -> None:
    """A cell's code (an execute_input) as IPython shows it, for 'attach': ``In [N]:``, continuation lines aligned."""
    if entry.message is None or entry.message.msg_type != "execute_input":
        return
    content = entry.message.content
    prompt = f"In [{content.get('execution_count', ' ')}]: "
    lines = str(content.get("code", "")).splitlines() or [""]
    continuation = "...: ".rjust(len(prompt))
    sys.stdout.write(prompt + f"\n{continuation}".join(lines) + "\n")
    sys.stdout.flush()


def _cmd_attach(args: argparse.Namespace) -> int:
    if (args.since is not None and args.since < 0) or (args.last is not None and args.last < 0):
        raise UsageError("--since and --last take whole numbers >= 0")
    if args.since is not None and args.last is not None:
        raise UsageError("give --since or --last, not both")
    kernel = find_running_kernel(args.kernel)
    printer = OutputPrinter(sys.stdout, sys.stderr)
    label = _printable(kernel.name or kernel.kernel_id[:8])

    async def attach() -> int:
        detached = asyncio.Event()
        async with ManagerClient(kernel.info) as manager:
            interrupted = False

            def on_ctrl_c() -> None:
                nonlocal interrupted
                if args.interrupt_on_ctrl_c and not interrupted:
                    interrupted = True
                    asyncio.ensure_future(manager.interrupt())
                    print(f"kernel-nanny: interrupted kernel {label}; Ctrl-C again detaches", file=sys.stderr)
                else:
                    detached.set()

            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, on_ctrl_c)
            try:
                return await _follow(manager, args, printer, label, detached)
            finally:
                loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(attach())


async def _follow(
    manager: ManagerClient,
    args: argparse.Namespace,
    printer: OutputPrinter,
    label: str,
    detached: asyncio.Event,
) -> int:
    """Print the kernel's output until Ctrl-C (0), its nanny's exit (0) or silence (3)."""
    info = await manager.info()
    if info["state"] == "dead":
        async for entry in recorded_output(manager, since=args.since, last=args.last):
            _show_input(entry)
            _show_entry(entry, printer)
        last_exit = info["last_exit"]
        print(
            f"kernel-nanny: kernel {label} is dead ({last_exit['reason'] if last_exit else 'not started'}): "
            "nothing to follow; "
            f"'kernel-nanny restart {label}' starts it again",
            file=sys.stderr,
        )
        return EXIT_FAILED

    async def show() -> int:
        async for entry in follow_output(manager, since=args.since, last=args.last):
            _show_input(entry)
            _show_entry(entry, printer)
        print(f"kernel-nanny: the nanny of kernel {label} exited", file=sys.stderr)
        return EXIT_OK

    following = asyncio.ensure_future(show())
    detaching = asyncio.ensure_future(detached.wait())
    try:
        await asyncio.wait({following, detaching}, return_when=asyncio.FIRST_COMPLETED)
        if detaching.done():
            print(f"kernel-nanny: detached; kernel {label} keeps running", file=sys.stderr)
            return EXIT_OK
        try:
            return following.result()
        except NannyUnavailable as exc:
            print(f"kernel-nanny: {exc}", file=sys.stderr)
            return EXIT_FAILED
    finally:
        following.cancel()
        detaching.cancel()


def _entry_json(entry: JournalEntry) -> dict[str, Any]:
    """A journal entry as ``output --json`` prints it."""
    message = entry.message
    return {
        "seq": entry.seq,
        "received": entry.received,
        "kind": entry.kind,
        "msg_type": message.msg_type if message else None,
        "parent_msg_id": message.parent_header.get("msg_id") if message else None,
        "content": message.content if message else entry.content,
    }


def _cmd_events(args: argparse.Namespace) -> int:
    kernel = find_running_kernel(args.kernel)

    async def watch() -> None:
        async with ManagerClient(kernel.info) as manager:
            async for event in manager.events():
                if event.msg_type == "heartbeat" and not args.heartbeats:
                    continue
                if args.json:
                    line = json.dumps({"event": event.msg_type, "date": event.header.get("date"), **event.content})
                else:
                    stamp = event.header.get("date", "")[11:23]
                    line = f"{stamp} {event.msg_type} {json.dumps(event.content)}"
                print(line, flush=True)

    return _until_interrupted(watch())


def _until_interrupted(coro: Any) -> int:
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


def _size(path: Any) -> int:
    try:
        return int(os.stat(path).st_size)
    except OSError:
        return 0


def _print_new_output(path: Any, position: int) -> int:
    """Print what the log gained since ``position`` (from the start if it was rotated)."""
    if _size(path) < position:
        position = 0
    try:
        with open(path, "rb") as file:
            file.seek(position)
            data = file.read()
    except OSError:
        return position
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return position + len(data)


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
