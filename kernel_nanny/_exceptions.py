"""Every error kernel-nanny raises, in one tree.

    KernelNannyError
    ├── ProtocolError                 a message on the wire was not acceptable
    │   ├── InvalidSignature          HMAC missing or wrong
    │   ├── ReplayedMessage           the same signed message seen twice
    │   └── MalformedMessage          not a Jupyter message at all
    │       ├── MissingDelimiter      no <IDS|MSG> frame
    │       ├── TooFewFrames          fewer than the 5 frames after the delimiter
    │       └── InvalidJSON           a header/parent/metadata/content frame is not JSON
    ├── NoSuchKernelType              a type id no provider knows
    ├── LaunchError                   the kernel could not be started
    ├── KernelDied                    the kernel exited (exit status, signal, reason)
    ├── KernelError                   the kernel answered a request with status "error"
    ├── ClientClosed                  the client was used after close()
    ├── AuthenticationFailed          the server refused our CurveZMQ key
    └── KernelTimeout (also TimeoutError)   the kernel did not answer in time
        ├── NannyUnavailable          the kernel's nanny did not answer or stopped beating
        └── DaemonUnavailable         the daemon did not answer

Errors from zmq, the OS and subprocesses are mapped where they enter, with the
original chained (``raise ... from exc``), so callers only need to catch ours.
"""

from __future__ import annotations

import signal as _signal

__all__ = [
    "AuthenticationFailed",
    "ClientClosed",
    "ConfigError",
    "DaemonUnavailable",
    "InvalidJSON",
    "InvalidSignature",
    "KernelDied",
    "KernelError",
    "KernelNannyError",
    "KernelTimeout",
    "LaunchError",
    "MalformedMessage",
    "MissingDelimiter",
    "NannyUnavailable",
    "NoSuchKernelType",
    "ProtocolError",
    "ReplayedMessage",
    "TooFewFrames",
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


class ConfigError(KernelNannyError):
    """A configuration file is missing, unreadable or has a wrong setting (the message names the file and key)."""


class NoSuchKernelType(KernelNannyError, LookupError):
    """No provider offers the requested kernel type id."""

    def __init__(self, type_id: str, known: list[str] | None = None) -> None:
        self.type_id = type_id
        self.known = known or []
        hint = f"; known types: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"no kernel type {type_id!r}{hint}")


class LaunchError(KernelNannyError):
    """A kernel could not be started; the message says why and what to try."""


class KernelDied(KernelNannyError):
    """The kernel process exited.

    ``exit_code`` is set for a normal exit, ``signal`` when a signal ended it,
    and ``reason`` names the cause in the nanny's vocabulary (``exited``,
    ``killed``, ``oom``...).
    """

    def __init__(
        self,
        message: str = "kernel died",
        *,
        exit_code: int | None = None,
        signal: int | None = None,
        reason: str = "exited",
    ) -> None:
        self.exit_code = exit_code
        self.signal = signal
        self.reason = reason
        detail = []
        if exit_code is not None:
            detail.append(f"exit code {exit_code}")
        if signal is not None:
            try:
                detail.append(_signal.Signals(signal).name)
            except ValueError:
                detail.append(f"signal {signal}")
        super().__init__(f"{message} ({', '.join(detail)})" if detail else message)


class KernelError(KernelNannyError):
    """The kernel (or its nanny) replied with ``status: error`` to a request that had to succeed."""

    def __init__(self, ename: str, evalue: str, traceback: list[str] | None = None) -> None:
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback or []
        super().__init__(f"{ename}: {evalue}")


class ClientClosed(KernelNannyError):
    """The client was used after it was closed."""


class AuthenticationFailed(KernelNannyError):
    """The server refused this client's CurveZMQ key (it is not on the server's allow-list)."""


class KernelTimeout(KernelNannyError, TimeoutError):
    """The kernel (or nanny) did not answer within the allowed time."""


class NannyUnavailable(KernelTimeout):
    """The kernel's nanny did not answer in time, or its heartbeat stopped (it may have died)."""


class DaemonUnavailable(KernelTimeout):
    """The daemon did not answer in time (is it running, and is this client's API key right?)."""
