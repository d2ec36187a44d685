"""``python -m kernel_nanny.nanny.forkserver``: a resident process that forks nannies with their code imported.

Why: a nanny spawned as ``python -m kernel_nanny.nanny`` pays for an
interpreter start and its imports (asyncio, zmq, the journal, the launch and
client modules: about 136 ms) on every supervised start, and holds a private
copy of all that code. A fork server pays both once. It imports everything a
nanny needs (:data:`PRELOADED`), freezes what it built (``gc.freeze()``: the
children's collections never write to those objects, so their pages stay
shared copy-on-write), and forks a nanny per request; the child runs the
nanny's own :func:`~kernel_nanny.nanny.__main__.main` a few milliseconds later.

How:

* It listens on a unix stream socket, :func:`default_socket_path` (0600, in
  the 0700 runtime directory), and accepts only peers of its own uid
  (``SO_PEERCRED``). A starter (:func:`~kernel_nanny.nanny.startup.spawn_nanny`)
  sends one JSON line, ``{"argv", "cwd", "env", "umask"}``, with three file
  descriptors attached (``SCM_RIGHTS``): the nanny's stdin, stdout and stderr.
  The server answers one JSON line: ``{"status": "forked", "pid": ...}``, or
  ``stale``, ``refused`` or ``error`` with a ``reason``, and the starter then
  spawns the nanny the classic way. It refuses what it cannot fork faithfully:
  a nanny of another Python, or with other ``PYTHON*``/``LD_*`` start-up variables, or
  for a starter whose process differs from the server's in what a child
  inherits (cgroup, limits, namespaces, capabilities...: :func:`process_context`).
* The child becomes the process ``python -m kernel_nanny.nanny`` would have
  been: default signal dispositions, a session of its own, the three
  descriptors as 0, 1 and 2, the starter's working directory, environment and
  umask, and a nanny's command line (``/proc/<pid>/cmdline``, which ``ps`` shows
  and :class:`~kernel_nanny.client.running.ProcessIdentity` checks). It runs the
  nanny without the nanny's detaching fork: it is in its own session already,
  and its parent, the fork server, reaps it (SIGCHLD is ignored there).
* Forking is only safe from a process without threads, zmq contexts or a
  running event loop, so the server has none: a ``selectors`` loop in its one
  thread, and zmq and asyncio imported but never started.
* Stale code: the server records a fingerprint of the kernel_nanny files it
  imported (path, mtime, size) and checks it before every fork. After an
  upgrade it answers ``stale`` (that start spawns) and re-executes itself,
  keeping its listening socket open across ``exec``: queued connections are
  served by the new code and the path never goes away.
* It exits when its stdin reaches end of file (the lifeline: its starter holds
  the other end of the pipe) or on SIGTERM or SIGINT, and removes its socket
  if the path is still its own. Nannies it forked run in sessions of their
  own: its death, even by SIGKILL, costs none of them.

:class:`ForkServer` is the starter's handle on one (the daemon's).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import logging
import os
import signal
import socket
import stat
import struct
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .._exceptions import LaunchError
from .._lifetime import Lifetime
from ..client.running import NANNY_MODULE, proc_stat, stat_fields
from ..defaults import (
    FORKSERVER_REPLY_TIMEOUT,
    FORKSERVER_REQUEST_TIMEOUT,
    FORKSERVER_START_TIMEOUT,
    FORKSERVER_STOP_TIMEOUT,
    MAX_REQUEST_BYTES,
    SERVER_LINGER_MS,
)
from ..launch.binding import START_ONLY_ENV_PREFIXES
from ..paths import runtime_dir
from .startup import nanny_argv

if TYPE_CHECKING:
    import asyncio
    import selectors

__all__ = [
    "FORKSERVER_MODULE",
    "PRELOADED",
    "SOCKET_NAME",
    "ForkReply",
    "ForkServer",
    "code_fingerprint",
    "default_socket_path",
    "main",
    "package_files",
    "process_context",
    "request_fork",
]

log = logging.getLogger("kernel_nanny.nanny.forkserver")

#: The module the fork server runs as (``python -m kernel_nanny.nanny.forkserver``).
FORKSERVER_MODULE = "kernel_nanny.nanny.forkserver"
#: The name of its socket in the runtime directory.
SOCKET_NAME = "kernel-nanny-forkserver.sock"
#: What the fork server imports for its nannies: their entry point and supervisor (asyncio, zmq and
#: zmq.asyncio, the journal, the request server), and what a nanny imports later on its own, once it
#: starts its kernel (the local launcher and manager, the kernel client, zmq's socket monitor). Found with
#: ``PYTHONPROFILEIMPORTTIME=1`` on a running nanny; what this misses, a forked nanny imports itself.
PRELOADED = (
    "argparse",
    "pwd",
    "zmq.utils.monitor",
    "kernel_nanny.nanny.__main__",
    "kernel_nanny.nanny.startup",
    "kernel_nanny.nanny.core",
    "kernel_nanny.launch.spawn",
    "kernel_nanny.launch.launcher",
    "kernel_nanny.launch.progress",
    "kernel_nanny.client.kernel",
)
#: Connections the server holds at once; more wait in the listening queue (a request takes milliseconds).
_MAX_CONNECTIONS = 64
#: The descriptors a request carries, in order: the nanny's stdin, stdout and stderr.
_FDS = 3
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def default_socket_path() -> Path:
    """Where the fork server listens unless told otherwise: ``kernel-nanny-forkserver.sock`` in the runtime dir."""
    return runtime_dir() / SOCKET_NAME


# -- the code fingerprint ---------------------------------------------------------------------------------

#: One file of the package as it was imported: its path, modification time (ns) and size.
FileStamp = tuple[str, int, int]


def package_files() -> list[str]:
    """The source files of the kernel_nanny modules loaded here."""
    found = set()
    for module in list(sys.modules.values()):
        spec = getattr(module, "__spec__", None)
        name = getattr(spec, "name", None) or getattr(module, "__name__", "")  # __main__ has its real name in its spec
        path = getattr(module, "__file__", None)
        if isinstance(name, str) and name.split(".")[0] == "kernel_nanny" and isinstance(path, str):
            found.add(os.path.abspath(path))
    return sorted(found)


def code_fingerprint(files: Iterable[str]) -> tuple[FileStamp, ...]:
    """The stamps of ``files`` now: a stat each, cheap enough to take before every fork.

    A file that is gone (an uninstall, a reinstall elsewhere) gets ``-1`` stamps, so it counts as changed.
    """
    stamps = []
    for path in files:
        try:
            info = os.stat(path)
        except OSError:
            stamps.append((path, -1, -1))
        else:
            stamps.append((path, info.st_mtime_ns, info.st_size))
    return tuple(stamps)


def _startup_variables(environment: Mapping[str, str]) -> dict[str, str]:
    """The variables that shape a process as it starts (``PYTHONPATH``, ``PYTHONHOME``, ``LD_LIBRARY_PATH``...).

    A nanny spawned with other values would not be the process this server is, so it cannot be forked
    from it."""
    return {name: value for name, value in environment.items() if name.startswith(START_ONLY_ENV_PREFIXES)}


#: The lines of ``/proc/<pid>/status`` that a child inherits from whoever forks it (credentials, capabilities,
#: sandboxing, CPU and memory-node affinity).
_INHERITED_STATUS = (
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
    "Cpus_allowed_list",
    "Mems_allowed_list",
)


def process_context(pid: int | str) -> dict[str, str]:
    """What process ``pid`` (or ``"self"``) passes on to a child besides its memory, environment, directory and
    umask: credentials, capabilities and seccomp, cgroup, resource limits, OOM score adjustment, niceness and
    scheduling policy, affinity, namespaces, root directory, security label. A spawned nanny inherits its
    starter's; a forked one would get its fork server's.

    What cannot be read (another user's process, one in another pid namespace) reads as ``unreadable``."""
    base = f"/proc/{pid}"

    def read(name: str) -> str:
        try:
            with open(f"{base}/{name}", "rb") as file:
                return file.read().decode(errors="replace")
        except OSError as exc:
            return f"unreadable ({exc.strerror})"

    def link(name: str) -> str:
        try:
            return os.readlink(f"{base}/{name}")
        except OSError as exc:
            return f"unreadable ({exc.strerror})"

    context = {
        "cgroup": read("cgroup"),
        "limits": read("limits"),
        "oom_score_adj": read("oom_score_adj"),
        "root": link("root"),
    }
    for line in read("status").splitlines():
        name, _, value = line.partition(":")
        if name in _INHERITED_STATUS:
            context[name] = value.strip()
    fields = stat_fields(read("stat").encode()) or []
    context["nice"] = fields[16].decode() if len(fields) > 38 else "unreadable"  # fields 19 and 41 of stat(5)
    context["scheduling policy"] = fields[38].decode() if len(fields) > 38 else "unreadable"
    with contextlib.suppress(OSError):
        for namespace in os.listdir("/proc/self/ns"):
            context[f"ns/{namespace}"] = link(f"ns/{namespace}")
    if os.path.exists("/proc/self/attr/current"):
        context["security label"] = read("attr/current")
    return context


def current_umask() -> int:
    """This process's umask, read without changing it (``/proc/self/status``) where possible: setting it to
    read it, the classic way, leaves other threads a moment with the wrong one."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # the moment's umask is the strictest: a file created meanwhile is private
    os.umask(mask)
    return mask


# -- the starter's side -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForkReply:
    """The fork server's answer: ``forked`` (with the nanny's ``pid``), or why the starter must spawn instead:
    ``stale`` (it runs older code), ``refused``, ``error``, or ``unavailable`` (none answered)."""

    status: str
    pid: int | None = None
    reason: str = ""

    @property
    def forked(self) -> bool:
        return self.status == "forked" and self.pid is not None


async def request_fork(
    socket_path: Path,
    argv: Sequence[str],
    fds: tuple[int, int, int],
    *,
    timeout: float = FORKSERVER_REPLY_TIMEOUT,
) -> ForkReply:
    """Ask the fork server at ``socket_path`` for a nanny with ``fds`` as its stdin, stdout and stderr.

    ``argv`` is the nanny's command line (:func:`~kernel_nanny.nanny.startup.nanny_argv`); the nanny gets
    this process's working directory, environment and umask, as a spawned one would. Never raises for a
    fork server that is missing, dead, slow or unwilling: the reply says so and the caller spawns. The
    caller keeps (and closes) its descriptors: the server has copies.
    """
    import asyncio

    from .._tasks import wait_for

    try:
        document = {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "umask": current_umask()}
    except OSError as exc:  # our working directory was removed: a spawned nanny inherits it, a forked one cannot
        return ForkReply("unavailable", reason=f"no working directory to send ({exc.strerror})")
    data = json.dumps(document).encode() + b"\n"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        return await wait_for(_exchange(sock, str(socket_path), data, fds), timeout)
    except asyncio.TimeoutError:
        return ForkReply("unavailable", reason=f"no answer within {timeout:g} s")
    except OSError as exc:  # no file, nobody listening, a path too long for a socket...
        return ForkReply("unavailable", reason=exc.strerror or str(exc))
    except ValueError as exc:
        return ForkReply("error", reason=f"unreadable answer ({exc})")
    finally:
        sock.close()


async def _exchange(sock: socket.socket, path: str, data: bytes, fds: tuple[int, int, int]) -> ForkReply:
    import asyncio

    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, path)
    while True:  # the descriptors travel with the first bytes; the rest follows
        try:
            sent = socket.send_fds(sock, [data], list(fds))
            break
        except (BlockingIOError, InterruptedError):
            await _writable(loop, sock)
    if sent < len(data):
        try:
            await loop.sock_sendall(sock, data[sent:])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (a refusal, an error) and closed: its answer is there to read
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            break
        answer += chunk
    if not answer:
        return ForkReply("unavailable", reason="it closed the connection without answering")
    reply = json.loads(answer)
    if not isinstance(reply, dict) or not isinstance(reply.get("status"), str):
        raise ValueError("not a fork server's reply")
    pid = reply.get("pid")
    return ForkReply(reply["status"], pid if isinstance(pid, int) else None, str(reply.get("reason", "")))


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready = loop.create_future()
    loop.add_writer(sock.fileno(), lambda: None if ready.done() else ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_writer(sock.fileno())


# -- the server ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ForkRequest:
    """One request, checked: the nanny's argv, working directory, environment, umask and standard descriptors."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    umask: int
    fds: tuple[int, int, int]

    @classmethod
    def parse(cls, line: bytes, fds: Sequence[int]) -> _ForkRequest:
        """The request in ``line``; ``ValueError`` saying what is wrong with it."""
        document = json.loads(line)
        if not isinstance(document, dict):
            raise ValueError("a request is a JSON object")
        argv, cwd, env, umask = (document.get(key) for key in ("argv", "cwd", "env", "umask"))
        if not (isinstance(argv, list) and len(argv) >= 3 and all(isinstance(arg, str) for arg in argv)):
            raise ValueError("'argv' must be the nanny's command line, a list of strings")
        if not isinstance(cwd, str) or not os.path.isabs(cwd):
            raise ValueError("'cwd' must be an absolute path")
        if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            raise ValueError("'env' must map names to strings")
        if not isinstance(umask, int) or not 0 <= umask <= 0o777:
            raise ValueError("'umask' must be a mode from 0 to 0o777")
        if len(fds) != _FDS:
            raise ValueError(f"a request carries {_FDS} descriptors (stdin, stdout, stderr), not {len(fds)}")
        return cls(argv, cwd, env, umask, (fds[0], fds[1], fds[2]))


class _Connection:
    """A client's connection while its request arrives."""

    def __init__(self, sock: socket.socket, peer_pid: int, deadline: float) -> None:
        self.sock = sock
        self.peer_pid = peer_pid
        self.deadline = deadline
        self.data = bytearray()
        self.fds: list[int] = []
        self.first_read = True

    def close(self) -> None:
        """Close the socket and whatever descriptors came with the request (the server's copies)."""
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []
        self.sock.close()

    def answer(self, reply: Mapping[str, Any]) -> None:
        """Send ``reply`` (one line; the socket's buffer holds it whole) and close."""
        with contextlib.suppress(OSError):
            self.sock.send(json.dumps(reply).encode() + b"\n")
        self.close()


class _Server:
    """The fork server's loop: one thread, no event loop, no zmq context; safe to fork from at every turn."""

    def __init__(self, listener: socket.socket, path: Path, identity: tuple[int, int], args: argparse.Namespace):
        import selectors

        self._listener = listener
        self._path = path
        self._identity = identity  # (st_dev, st_ino) of the socket file we bound: removed at exit only if still ours
        self._args = args
        #: The package's files as this server imported them: a change to any means an upgrade (re-exec).
        self.files = package_files()
        self._fingerprint = code_fingerprint(self.files)
        self._startup_variables = _startup_variables(os.environ)
        self._context = process_context("self")
        self._nanny_argv = nanny_argv(sys.executable)
        # python -m puts the directory it starts in first on sys.path: a forked nanny's is the starter's.
        self._cwd_on_path = bool(sys.path) and sys.path[0] == os.getcwd()
        self._connections: dict[int, _Connection] = {}
        self._accepting = False
        self._stop_reason: str | None = None
        self._wakeup_r, self._wakeup_w = os.pipe()
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)
        self._selector: selectors.BaseSelector = selectors.DefaultSelector()
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, self._on_wakeup)
        try:
            self._selector.register(0, selectors.EVENT_READ, self._on_lifeline)
        except (OSError, ValueError):  # a regular file or /dev/null: no lifeline (epoll refuses them)
            log.warning("stdin is not a pipe: no lifeline, stop this fork server with SIGTERM")
        self._accept_more()
        # Before anybody knows it listens: a stop signal from then on removes its socket.
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps our children: no zombies, no waiting
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)

    # -- the loop

    def run(self) -> int:
        """Serve until the lifeline ends or a stop signal comes; the exit status."""
        status = 0
        try:
            while self._stop_reason is None:
                for key, _ in self._selector.select(self._time_left()):
                    key.data()
                    if self._stop_reason is not None:
                        break
                self._drop_overdue()
        except Exception:
            log.exception("the fork server failed")
            status = 1
        log.info("stopping (%s)", self._stop_reason or "an error")
        self._shutdown()
        return status

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self._stop_reason = f"received {signal.Signals(signum).name}"  # the wakeup byte ends the select

    def _on_wakeup(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._wakeup_r, 512)

    def _on_lifeline(self) -> None:
        try:
            data = os.read(0, 512)
        except OSError as exc:
            data = b""
            log.debug("lifeline: %s", exc)
        if not data:
            self._stop_reason = "its lifeline closed: its starter is gone or done"

    def _time_left(self) -> float | None:
        if not self._connections:
            return None
        return max(0.0, min(c.deadline for c in self._connections.values()) - time.monotonic())

    def _drop_overdue(self) -> None:
        now = time.monotonic()
        for connection in [c for c in self._connections.values() if c.deadline <= now]:
            log.warning(
                "dropping process %d's request: incomplete after %g s", connection.peer_pid, FORKSERVER_REQUEST_TIMEOUT
            )
            self._forget(connection)
            connection.answer({"status": "error", "reason": "the request was incomplete when its time ran out"})

    # -- connections

    def _accept_more(self) -> None:
        import selectors

        if not self._accepting and len(self._connections) < _MAX_CONNECTIONS:
            self._selector.register(self._listener, selectors.EVENT_READ, self._on_connection)
            self._accepting = True

    def _on_connection(self) -> None:
        import selectors

        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.error("cannot accept a connection: %s", exc)
            return
        sock.setblocking(False)
        pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        if uid != os.getuid():
            log.warning(
                "refused process %d of uid %d: this fork server forks nannies for uid %d only", pid, uid, os.getuid()
            )
            _Connection(sock, pid, 0).answer(
                {"status": "refused", "reason": f"this fork server serves uid {os.getuid()}"}
            )
            return
        connection = _Connection(sock, pid, time.monotonic() + FORKSERVER_REQUEST_TIMEOUT)
        self._connections[sock.fileno()] = connection
        self._selector.register(sock, selectors.EVENT_READ, lambda: self._on_data(connection))
        if len(self._connections) >= _MAX_CONNECTIONS:
            self._selector.unregister(self._listener)
            self._accepting = False

    def _forget(self, connection: _Connection) -> None:
        """Stop watching ``connection`` (the caller answers or closes it)."""
        if self._connections.pop(connection.sock.fileno(), None) is not None:
            self._selector.unregister(connection.sock)
        self._accept_more()

    def _on_data(self, connection: _Connection) -> None:
        if connection.sock.fileno() not in self._connections:
            return  # closed by an earlier event of the same turn
        try:
            if connection.first_read:  # the descriptors come with the first bytes
                data, fds, flags, _ = socket.recv_fds(connection.sock, 1 << 16, _FDS)
                connection.fds += fds
                connection.first_read = False
                if flags & socket.MSG_CTRUNC:
                    raise ValueError(f"a request carries {_FDS} descriptors, and this one more")
            else:
                data = connection.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except (OSError, ValueError) as exc:
            self._forget(connection)
            connection.answer({"status": "error", "reason": str(exc)})
            return
        if not data:
            self._forget(connection)
            connection.close()  # the client went away before its request was complete
            return
        connection.data += data
        if b"\n" in data:
            self._forget(connection)
            self._handle(connection)
        elif len(connection.data) > MAX_REQUEST_BYTES:
            self._forget(connection)
            connection.answer({"status": "error", "reason": f"a request has at most {MAX_REQUEST_BYTES} bytes"})

    # -- requests

    def _handle(self, connection: _Connection) -> None:
        try:
            request = _ForkRequest.parse(bytes(connection.data.split(b"\n", 1)[0]), connection.fds)
        except ValueError as exc:
            log.warning("process %d sent a bad request: %s", connection.peer_pid, exc)
            connection.answer({"status": "error", "reason": str(exc)})
            return
        refusal = self._refusal(request, connection.peer_pid)
        if refusal is not None:
            log.info("process %d must spawn its nanny: %s", connection.peer_pid, refusal)
            connection.answer({"status": "refused", "reason": refusal})
            return
        if code_fingerprint(self.files) != self._fingerprint:
            log.info("kernel_nanny's code changed since this fork server imported it: re-executing")
            connection.answer({"status": "stale", "reason": "kernel_nanny's code changed: the fork server restarts"})
            self._reexec()  # returns only if it failed
            self._stop_reason = "it runs stale code and could not re-execute"
            return
        try:
            pid = self._fork(request, connection)
        except OSError as exc:
            log.error("cannot fork: %s", exc)
            connection.answer({"status": "error", "reason": f"cannot fork: {exc.strerror}"})
            return
        log.debug("forked nanny %d for process %d", pid, connection.peer_pid)
        connection.answer({"status": "forked", "pid": pid})

    def _refusal(self, request: _ForkRequest, peer: int) -> str | None:
        """Why this server cannot fork the nanny that process ``peer`` asks for with ``request`` (None: it can).

        The nanny must be the one the starter would have spawned: the same Python, started the same way, with
        what the starter's process would pass on to it. A starter in a cgroup, a sandbox or namespaces of its own,
        or with other limits, gets its nanny (and kernel) there by spawning it: never the fork server's instead."""
        if request.argv[:3] != self._nanny_argv:
            return f"it asks for {request.argv[:3]}, and this server is {self._nanny_argv}"
        if _startup_variables(request.env) != self._startup_variables:
            return "its start-up variables (PYTHON*, LD_*) differ from this server's"
        theirs = process_context(peer)
        differing = sorted(name for name, value in self._context.items() if theirs.get(name) != value)
        if differing:
            return f"its process differs from this server's in what a child inherits: {', '.join(differing)}"
        if not os.path.isdir(request.cwd):
            return f"its working directory {request.cwd} is not a directory"
        return None

    def _fork(self, request: _ForkRequest, connection: _Connection) -> int:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # nothing buffered may be written twice
        gc.collect()  # this turn's garbage, not the preloaded objects (frozen)...
        gc.freeze()  # ...and what survived joins them: no collection in the child touches it
        pid = os.fork()
        if pid == 0:
            self._become_nanny(request, connection)
        return pid

    def _become_nanny(self, request: _ForkRequest, connection: _Connection) -> NoReturn:
        """The child: turn into the nanny a spawn would have made, run it, and exit (never return to the loop)."""
        status = 1
        try:
            _default_signals()
            os.setsid()
            self._close_in_child(connection)
            for target, fd in enumerate(request.fds):
                os.dup2(fd, target)  # also closes the lifeline (0) and /dev/null (1)
            for fd in set(request.fds) - {0, 1, 2}:
                os.close(fd)
            connection.fds = []
            for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
                if getattr(sys, name) is None:  # the server started without it: a spawned nanny would have it
                    setattr(sys, name, open(fd, mode, closefd=False))
            os.chdir(request.cwd)
            os.environ.clear()
            os.environ.update(request.env)
            os.umask(request.umask)
            sys.argv = [sys.modules[f"{NANNY_MODULE}.__main__"].__file__ or "", *request.argv[3:]]
            if self._cwd_on_path:
                sys.path[0] = request.cwd
            show_command_line(request.argv)
            gc.enable()
            from .__main__ import main

            status = main([*request.argv[3:], "--no-detach"])  # in a session of its own, reaped by this server
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                _flush_zmq()
            with contextlib.suppress(BaseException):
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)

    def _close_in_child(self, keep: _Connection) -> None:
        """Close the server's descriptors in a child, without touching the server's epoll registrations
        (the epoll instance is shared across the fork)."""
        self._selector.close()
        self._listener.close()
        for fd in (self._wakeup_r, self._wakeup_w):
            os.close(fd)
        for connection in self._connections.values():
            connection.close()
        keep.sock.close()

    def _reexec(self) -> None:
        """Replace this process's code with the installed one, keeping the listening socket and the lifeline."""
        for connection in list(self._connections.values()):
            self._forget(connection)
            connection.answer({"status": "stale", "reason": "kernel_nanny's code changed: the fork server restarts"})
        signal.set_wakeup_fd(-1)
        fd = self._listener.fileno()
        os.set_inheritable(fd, True)
        argv = [
            sys.executable,
            "-m",
            FORKSERVER_MODULE,
            "--socket",
            str(self._path),
            "--log-level",
            self._args.log_level,
            "--listen-fd",
            str(fd),
            "--socket-id",
            f"{self._identity[0]}:{self._identity[1]}",
        ]
        for handler in logging.getLogger().handlers:
            handler.flush()
        try:
            os.execv(sys.executable, argv)
        except OSError as exc:
            log.error("cannot re-execute %s: %s", sys.executable, exc)
        os.set_inheritable(fd, False)

    def _shutdown(self) -> None:
        signal.set_wakeup_fd(-1)
        for connection in list(self._connections.values()):
            self._forget(connection)
            connection.close()  # its client sees no answer and spawns
        try:
            info = os.stat(self._path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self._path)  # still ours: a newer server may have taken the path over
        except OSError:
            pass
        self._selector.close()
        self._listener.close()
        for fd in (self._wakeup_r, self._wakeup_w):
            os.close(fd)


def _flush_zmq() -> None:
    """Let libzmq send what the nanny's closed sockets still hold (its last event, ``nanny_exiting``) before the
    child ends: ``os._exit`` would stop libzmq's I/O thread at once, where a spawned nanny's interpreter
    teardown leaves it the time. Bounded: a socket someone closed with an infinite linger, its peer gone, would
    hold ``term()`` for ever, so the wait ends after the nanny's linger (``SERVER_LINGER_MS``) and a second."""
    import threading

    zmq_asyncio = sys.modules.get("zmq.asyncio")
    context = getattr(getattr(zmq_asyncio, "Context", None), "_instance", None)
    if context is not None and not context.closed:
        ending = threading.Thread(target=context.destroy, kwargs={"linger": SERVER_LINGER_MS}, daemon=True)
        ending.start()
        ending.join(SERVER_LINGER_MS / 1000 + 1)


def _default_signals() -> None:
    """Give a child the signal state of a fresh interpreter: default dispositions but Python's own
    (KeyboardInterrupt on SIGINT; SIGPIPE and SIGXFSZ ignored, raised as errors instead), nothing blocked,
    no wakeup descriptor. First of all: a SIGCHLD left ignored would make the kernel's exit unobservable."""
    signal.set_wakeup_fd(-1)
    for signum in signal.valid_signals():
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


# -- the command line a forked nanny shows --------------------------------------------------------------


def _argv_area() -> tuple[int, bytes]:
    """Where this process's argv strings are in its memory (``/proc/self/stat`` fields 48 and 49) and what they hold."""
    fields = proc_stat(os.getpid()) or []
    if len(fields) < 47:
        raise OSError("this kernel does not show a process's argument area")
    start, end = int(fields[45]), int(fields[46])
    if not 0 < start < end:
        raise OSError("this kernel does not show a process's argument area")
    mem = os.open("/proc/self/mem", os.O_RDONLY)
    try:
        return start, os.pread(mem, end - start, start)
    finally:
        os.close(mem)


def _write_argv_area(start: int, data: bytes) -> None:
    mem = os.open("/proc/self/mem", os.O_WRONLY)
    try:
        os.pwrite(mem, data, start)
    finally:
        os.close(mem)


def show_command_line(argv: Sequence[str]) -> None:
    """Make ``/proc/self/cmdline`` read ``argv[1:]`` after this process's own ``argv[0]``, padded with NULs.

    A forked nanny's command line would otherwise be its fork server's, and whatever finds nannies by
    theirs (``ps``, :meth:`ProcessIdentity.is_nanny() <kernel_nanny.client.running.ProcessIdentity.is_nanny>`)
    would take it for something else. The strings are rewritten in place, as ``setproctitle`` does, so
    they fit in the fork server's (longer) command line; a nanny's options that would not fit are left
    out. Raises ``OSError`` if the kernel does not let a process do this.
    """
    start, area = _argv_area()
    program = area.split(b"\0", 1)[0]
    words = [program, *(os.fsencode(arg) for arg in argv[1:])]
    shown = b"\0".join(words) + b"\0"
    if len(shown) > len(area):
        shown = b"\0".join(words[:3]) + b"\0"
    if len(shown) > len(area):
        raise OSError(f"the command line {argv} does not fit in {len(area)} bytes")
    _write_argv_area(start, shown.ljust(len(area), b"\0"))


def _check_command_line_writable() -> None:
    """Rewrite this process's argument area with what it holds: proof that a child can show a nanny's."""
    start, area = _argv_area()
    _write_argv_area(start, area)


# -- starting up ----------------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {FORKSERVER_MODULE}", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--socket", type=Path, default=None, help=f"where to listen (default: {SOCKET_NAME} in the runtime dir)"
    )
    parser.add_argument("--log-level", default="info")
    # Given by the server to itself when it re-executes: the socket it already listens on, and its file's identity.
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--socket-id", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _standard_fds() -> None:
    """Make sure 0, 1 and 2 are open, so no descriptor received later lands on one and is taken for it."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one


def _preload() -> None:
    for name in PRELOADED:
        importlib.import_module(name)


def _trim_heap() -> None:
    """Give the pages the imports freed inside the C heap back to the system (glibc's ``malloc_trim``).

    Reading and unmarshalling hundreds of modules leaves free holes in the heap that ``free`` cannot
    return: about 1 MiB of the server's resident memory. A no-op without glibc."""
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):
        return
    trim(0)


def _listen(path: Path) -> tuple[socket.socket, tuple[int, int]]:
    """Bind a listening socket at ``path``, mode 0600; it atomically replaces a stale socket there, or an
    older server's (which keeps serving what it accepted, and leaves the path alone at exit)."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"{path} exists and is not a socket")
    temporary = path.parent / f".kn-fs-{os.getpid()}"  # short: a socket path has at most 107 bytes
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        mask = os.umask(0o177)  # created 0600: never a moment with a looser mode
        try:
            listener.bind(str(temporary))
        finally:
            os.umask(mask)
        os.chmod(temporary, 0o600)
        listener.listen(socket.SOMAXCONN)
        os.rename(temporary, path)
        info = os.stat(path)
    except BaseException:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    listener.setblocking(False)
    return listener, (info.st_dev, info.st_ino)


def _inherited(fd: int, socket_id: str) -> tuple[socket.socket, tuple[int, int]]:
    listener = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    listener.setblocking(False)
    dev, ino = (int(part) for part in socket_id.split(":"))
    return listener, (dev, ino)


def main(argv: list[str] | None = None) -> int:
    """Run a fork server until its lifeline ends or it is told to stop; its exit status."""
    gc.disable()  # no collection while importing: it would leave holes the children fill, and so copy
    args = _parse(argv)
    _standard_fds()
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        _preload()
        _check_command_line_writable()
        path = Path(args.socket) if args.socket is not None else default_socket_path()
        if args.listen_fd is not None:
            listener, identity = _inherited(args.listen_fd, args.socket_id or "0:0")
        else:
            listener, identity = _listen(path)
    except (OSError, LaunchError, ValueError) as exc:
        log.error("cannot start a fork server: %s", exc)
        return 1
    server = _Server(listener, path, identity, args)
    if args.listen_fd is None:
        line = {"status": "listening", "socket": str(path), "pid": os.getpid()}
        with contextlib.suppress(OSError):
            os.write(1, json.dumps(line).encode() + b"\n")
        devnull = os.open(os.devnull, os.O_WRONLY)  # nothing more to say: the starter need not read on
        os.dup2(devnull, 1)
        os.close(devnull)
        log.info("listening on %s (%d kernel_nanny modules preloaded)", path, len(server.files))
    else:
        log.info("re-executed: serving %s with the installed code", path)
    gc.collect()
    _trim_heap()
    gc.freeze()  # everything so far stays shared with every child
    return server.run()


# -- the starter's handle ---------------------------------------------------------------------------------


class ForkServer(Lifetime):
    """A fork server this process started and holds by its lifeline (the daemon's).

    ::

        server = await ForkServer.start()   # listening at default_socket_path() once this returns
        ...                                  # supervised starts fork their nannies from it
        server.close()                       # closes the lifeline: the server exits
        await server.wait_closed()

    One object is one server process. If it dies (:meth:`wait` returns), starts spawn their nannies
    until a new one is started with :meth:`start` (a method, so its owner decides on a back-off).
    Nannies it forked never depend on it: closing, killing or losing it costs none of them.

    Start it once this process is set up (its resource limits raised, say): it serves starters whose
    process passes on what its own does (:func:`process_context`), and refuses the others.
    """

    def __init__(self, process: asyncio.subprocess.Process, socket_path: Path) -> None:
        self._process = process
        #: Where it listens.
        self.socket_path = socket_path

    def __repr__(self) -> str:
        return f"<ForkServer pid={self.pid} socket={self.socket_path} state={self.state.value}>"

    @classmethod
    async def start(
        cls,
        socket_path: Path | None = None,
        *,
        log_level: str = "info",
        stderr: int | None = None,
        timeout: float = FORKSERVER_START_TIMEOUT,
    ) -> ForkServer:
        """Start ``python -m kernel_nanny.nanny.forkserver`` listening at ``socket_path`` (default:
        :func:`default_socket_path`), and return once it listens (it says so on its stdout).

        It runs this interpreter and forks nannies for starters running that same one (the others spawn
        theirs). Its log goes to ``stderr`` (a file descriptor; default: ours). It runs in a session of its
        own, so a terminal's Ctrl-C meant for its starter does not reach it: its lifeline does. Raises
        :exc:`~kernel_nanny.LaunchError` if it could not start (its log says why).
        """
        import asyncio

        from .._tasks import wait_for

        path = default_socket_path() if socket_path is None else Path(socket_path)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            FORKSERVER_MODULE,
            "--socket",
            str(path),
            "--log-level",
            log_level,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        assert process.stdout is not None
        try:
            line = await wait_for(process.stdout.readline(), timeout)
            document = json.loads(line) if line else None
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if isinstance(exc, asyncio.TimeoutError):
                raise LaunchError(f"the fork server did not listen within {timeout:g} s") from None
            if isinstance(exc, ValueError):
                raise LaunchError(f"the fork server said {line!r}, not that it listens") from None
            raise
        if not isinstance(document, dict) or document.get("status") != "listening":
            status = await process.wait()  # it reports nothing else: it failed, and exits
            raise LaunchError(f"the fork server did not start (exit status {status}): its log (stderr) says why")
        log.info("fork server %d listening on %s", process.pid, path)
        return cls(process, path)

    @property
    def pid(self) -> int:
        """The server's process id (the same after it re-executes itself for new code)."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status once it exited, else None; minus the signal's number if a signal ended it."""
        return self._process.returncode

    async def wait(self) -> int:
        """Wait for the server to exit, for whatever reason; its exit status."""
        return await self._process.wait()

    def abort(self) -> None:
        """Kill the server (SIGKILL) and close: its nannies live on."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        self.close()

    def _begin_closing(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()  # end of file on the server's stdin: it exits

    async def _finish_closing(self) -> None:
        import asyncio

        from .._tasks import wait_for

        try:
            await wait_for(self._process.wait(), FORKSERVER_STOP_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("fork server %d did not exit within %g s: killing it", self.pid, FORKSERVER_STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()


if __name__ == "__main__":
    sys.exit(main())
