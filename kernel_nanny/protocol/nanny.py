"""The nanny protocol's vocabulary: versions, requests, events, signal names.

Messages use the Jupyter wire format, signed with the kernel's key. Requests go
to ``nanny_control`` (ROUTER) as ``<name>_request`` and are answered with
``<name>_reply`` whose content has ``status: ok`` or ``status: error`` with
``ename``/``evalue``. Events are published on ``nanny_events`` (XPUB) with the
event name as the message type and as the ZeroMQ topic.
"""

from __future__ import annotations

import signal as _signal

__all__ = ["NANNY_EVENTS", "NANNY_PROTOCOL_VERSION", "NANNY_REQUESTS", "parse_signal"]

#: Version of the nanny protocol; the major part changes on incompatible changes.
NANNY_PROTOCOL_VERSION = "1.0"

NANNY_REQUESTS = ("is_alive", "interrupt", "signal", "kill", "restart", "shutdown", "info")
NANNY_EVENTS = (
    "kernel_started",
    "kernel_died",
    "kernel_restarted",
    "restart_failed",
    "stream",
    "heartbeat",
    "nanny_exiting",
)


def parse_signal(value: int | str) -> int:
    """A signal number from ``9``, ``"9"``, ``"KILL"`` or ``"SIGKILL"``; ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not a signal: {value!r}")
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        number = int(value)
        try:
            return int(_signal.Signals(number))
        except ValueError:
            raise ValueError(f"no signal number {number}") from None
    if isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            return int(_signal.Signals[name])
        except KeyError:
            raise ValueError(f"unknown signal name {value!r}") from None
    raise ValueError(f"a signal is a number or a name, got {type(value).__name__}")
