"""Every error kernel-nanny raises, in one tree.

    KernelNannyError
    ├── ProtocolError                 a message on the wire was not acceptable
    │   ├── InvalidSignature          HMAC missing or wrong
    │   ├── ReplayedMessage           the same signed message seen twice
    │   ├── MalformedMessage          not a Jupyter message at all
    │   │   ├── MissingDelimiter      no <IDS|MSG> frame
    │   │   ├── TooFewFrames          fewer than the 5 frames after the delimiter
    │   │   └── InvalidJSON           a header/parent/metadata/content frame is not JSON
    │   └── IncompatibleProtocol      the peer speaks another major protocol version
    ├── ConfigError                   a configuration file or setting is wrong
    ├── ConnectionInfoError           connection info (or its file) is unreadable or incomplete
    ├── NoSuchKernelType (also LookupError)   a type id no provider knows
    ├── NoSuchKernel (also LookupError)       no running kernel has this id, id prefix or name
    ├── AmbiguousKernel (also LookupError)    an id prefix that matches several running kernels
    ├── LaunchError                   the kernel could not be started
    │   ├── KernelExecutableNotFound (also FileNotFoundError)   the kernelspec's program is missing
    │   ├── KernelTypeNotAllowed      the daemon does not offer this kernel type
    │   └── MaxKernels                the daemon runs as many kernels as it may
    ├── KernelNotRunning              the kernel is not running (dead, restarting, not started)
    ├── NannyStopping                 the nanny is shutting down
    ├── InvalidRequest (also ValueError)  a request's content (or a manager's JSON state) is missing or wrong
    ├── UnknownRequest                the nanny or daemon does not know the request
    ├── KernelDied                    the kernel exited (its ExitStatus: code, signal, reason)
    ├── KernelError                   a request was answered with status "error"
    ├── ExecutionBusy                 a KernelExecution is already running commands
    ├── ClientClosed                  the client was used after close()
    ├── AuthenticationFailed          the server refused our CurveZMQ key
    ├── DaemonNotRunning              there is no daemon to ask
    ├── DaemonAlreadyRunning          another daemon serves this user already
    └── KernelTimeout (also TimeoutError)   the kernel did not answer in time
        ├── NannyUnavailable          the kernel's nanny did not answer or stopped beating
        └── DaemonUnavailable         a daemon that is there did not answer in time

Errors from zmq, the OS and subprocesses are mapped where they enter, with the
original chained (``raise ... from exc``), so callers only need to catch ours.

Errors cross sockets by name: a nanny or daemon refusing a request answers
``status: error`` with the error's ``ename``, and the client raises the class
:mod:`kernel_nanny.protocol.errors` maps that name to, as a :class:`KernelError`
too (so ``except NoSuchKernel`` and ``except KernelError`` both catch it).
"""

from __future__ import annotations

import signal as _signal
from typing import Protocol

__all__ = [
    "AmbiguousKernel",
    "AuthenticationFailed",
    "ClientClosed",
    "ConfigError",
    "ConnectionInfoError",
    "DaemonAlreadyRunning",
    "DaemonNotRunning",
    "DaemonUnavailable",
    "ExecutionBusy",
    "IncompatibleProtocol",
    "InvalidJSON",
    "InvalidRequest",
    "InvalidSignature",
    "KernelDied",
    "KernelError",
    "KernelExecutableNotFound",
    "KernelNannyError",
    "KernelNotRunning",
    "KernelTimeout",
    "KernelTypeNotAllowed",
    "LaunchError",
    "MalformedMessage",
    "MaxKernels",
    "MissingDelimiter",
    "NannyStopping",
    "NannyUnavailable",
    "NoSuchKernel",
    "NoSuchKernelType",
    "ProtocolError",
    "ReplayedMessage",
    "TooFewFrames",
    "UnknownRequest",
]


class KernelNannyError(Exception):
    """Root of every error raised by kernel-nanny."""


class ProtocolError(KernelNannyError):
    """A message received on the wire cannot be accepted."""


class InvalidSignature(ProtocolError):
    """The message's HMAC signature is missing or does not match its frames."""


class ReplayedMessage(ProtocolError):
    """A signed message was received a second time (a possible replay attack)."""


class MalformedMessage(ProtocolError):
    """The frames do not form a Jupyter wire-protocol message."""


class MissingDelimiter(MalformedMessage):
    """No ``<IDS|MSG>`` delimiter frame separates routing identities from the message."""


class TooFewFrames(MalformedMessage):
    """Fewer than five frames (signature, header, parent, metadata, content) follow the delimiter."""


class InvalidJSON(MalformedMessage):
    """A header, parent header, metadata or content frame is not a JSON object."""


class IncompatibleProtocol(ProtocolError):
    """The peer speaks another major version of the protocol; the message says which side to upgrade."""


class ConfigError(KernelNannyError):
    """A configuration file is missing, unreadable or has a wrong setting (the message names the file and key)."""


class ConnectionInfoError(KernelNannyError):
    """Connection info, or the file holding it, is missing, unreadable or incomplete.

    The message names the file or the field: a kernel's connection file, a
    nanny's (which must have the nanny ports), or a daemon client file.
    """


class NoSuchKernelType(KernelNannyError, LookupError):
    """No provider offers the requested kernel type id."""

    def __init__(self, type_id: str, known: list[str] | None = None) -> None:
        self.type_id = type_id
        self.known = known or []
        hint = f"; known types: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"no kernel type {type_id!r}{hint}")


class NoSuchKernel(KernelNannyError, LookupError):
    """No running kernel has this id, id prefix or name (locally, or in the daemon's index)."""


class AmbiguousKernel(KernelNannyError, LookupError):
    """An id prefix matches several running kernels; more of the id tells them apart."""


class LaunchError(KernelNannyError):
    """A kernel could not be started; the message says why and what to try."""


class KernelExecutableNotFound(LaunchError, FileNotFoundError):
    """The program a kernel's command starts (its ``argv[0]``) does not exist.

    Also a :exc:`FileNotFoundError`, which jupyter_client raises in this case
    and its callers (jupyter_server, nbclient) catch.
    """


class KernelTypeNotAllowed(LaunchError):
    """The daemon does not launch this kernel type (its ``allowed_types`` exclude it)."""


class MaxKernels(LaunchError):
    """The daemon runs (or is starting) as many kernels as its ``max_kernels`` allows."""


class KernelNotRunning(KernelNannyError):
    """The kernel is not running (dead, restarting, stopping, or never started), so it cannot do that."""

    #: What to do about it, by the nanny's state (``{ref}``: how the user names the kernel).
    _FIXES = {
        "dead": "'kernel-nanny restart {ref}' revives it",
        "ended": "it ended with its batch job, which a restart cannot bring back: start a new kernel "
        "('kernel-nanny ps' shows why it ended)",
        "restarting": "it is being restarted: try again once 'kernel-nanny ps' shows it running",
        "stopping": "it is shutting down: start a new one",
        "starting": "it is starting: try again in a moment",
    }

    @classmethod
    def named(cls, ref: str, state: str) -> KernelNotRunning:
        """The error for kernel ``ref`` (its name, or id) in nanny state ``state``, with the fix: one message
        style for every request and every client."""
        fix = cls._FIXES.get(state, "see 'kernel-nanny ps'").format(ref=ref)
        return cls(f"kernel {ref} is not running (state: {state}); {fix}")


class NannyStopping(KernelNannyError):
    """The nanny is shutting down, so it refuses to restart the kernel."""


class InvalidRequest(KernelNannyError, ValueError):
    """A request to a nanny or daemon lacks a field or has a wrong value (``ename`` ``ValueError`` on the wire);
    also a manager's state JSON that its ``from_json`` cannot take (another kind, version, a field missing)."""


class UnknownRequest(KernelNannyError):
    """The nanny or daemon does not know this request type (it may be an older version)."""


class _ExitStatus(Protocol):
    """What :class:`KernelDied` reads of a :class:`kernel_nanny.ExitStatus` (this leaf imports no layer)."""

    @property
    def exit_code(self) -> int | None: ...

    @property
    def signal(self) -> int | None: ...

    @property
    def final(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class KernelDied(KernelNannyError):
    """The kernel process exited.

    ``status`` is its :class:`~kernel_nanny.ExitStatus`; ``exit_code`` is set
    for a normal exit, ``signal`` when a signal ended it, and ``reason`` names
    the cause in the nanny's vocabulary (``exited``, ``killed``, ``oom``...).
    """

    def __init__(self, message: str = "kernel died", *, status: _ExitStatus) -> None:
        self.status = status
        detail = []
        if status.exit_code is not None:
            detail.append(f"exit code {status.exit_code}")
        if status.signal is not None:
            try:
                detail.append(_signal.Signals(status.signal).name)
            except ValueError:
                detail.append(f"signal {status.signal}")
        if status.reason not in ("exited", "killed", "signaled"):  # what the code or signal does not say
            detail.append(status.reason)
        if status.final:  # it went with its batch job: the job's end says it all
            super().__init__(f"{message}: it {status}")
        else:
            super().__init__(f"{message} ({', '.join(detail)})" if detail else message)

    @property
    def exit_code(self) -> int | None:
        return self.status.exit_code

    @property
    def signal(self) -> int | None:
        return self.status.signal

    @property
    def reason(self) -> str:
        return self.status.reason


class KernelError(KernelNannyError):
    """A request was answered with ``status: error``: by the kernel, its nanny or the daemon.

    An error reply whose ``ename`` names one of ours (``NoSuchKernel``,
    ``KernelNotRunning``...) is raised as that class, which is then also a
    ``KernelError``; any other ``ename`` as a plain ``KernelError``.
    """

    def __init__(self, ename: str, evalue: str, traceback: list[str] | None = None) -> None:
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback or []
        # Not super(): in a class that is also, say, NoSuchKernelType, that class's own
        # __init__ (which builds its message from a type id) must not run on ours.
        Exception.__init__(self, f"{ename}: {evalue}")


class ExecutionBusy(KernelNannyError):
    """A :class:`~kernel_nanny.KernelExecution` was asked to run commands while it runs others."""


class ClientClosed(KernelNannyError):
    """The client was used after it was closed."""


class AuthenticationFailed(KernelNannyError):
    """The server refused this client's CurveZMQ key (it is not on the server's allow-list)."""


class DaemonNotRunning(KernelNannyError):
    """There is no daemon to ask: no discovery file, or the process that wrote it is gone.

    Found before any request is sent (:meth:`DaemonClient.find
    <kernel_nanny.DaemonClient.find>`); start one with ``kernel-nanny serve``.
    Compare :class:`DaemonUnavailable`: a daemon that is there but did not answer.
    """


class DaemonAlreadyRunning(KernelNannyError):
    """Another daemon serves this user and runtime directory (``kernel-nanny serve`` runs once per user)."""


class KernelTimeout(KernelNannyError, TimeoutError):
    """The kernel (or nanny) did not answer within the allowed time."""


class NannyUnavailable(KernelTimeout):
    """The kernel's nanny did not answer in time, or its heartbeat stopped (it may have died)."""


class DaemonUnavailable(KernelTimeout):
    """A daemon we were pointed at did not answer a request in time.

    It may be overloaded, unreachable over the network, or stopped since its
    discovery file was read; or this client's API key is not the daemon's
    (wrongly signed requests get no reply). Compare :class:`DaemonNotRunning`:
    no daemon to ask at all.
    """
