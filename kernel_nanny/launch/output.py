"""Where a kernel process's own stdout/stderr goes: listeners, a backlog, a tail, and maybe our stderr.

Every manager that captures its kernel's output (a local child's pipes, a
container's attach stream) hands each chunk to one :class:`OutputRelay`, so
the rules are the same everywhere: the first listener also gets what came
before it attached, the last few KiB explain a failed start, and a failing
listener never stops the others.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

__all__ = ["OUTPUT_BACKLOG_BYTES", "OUTPUT_TAIL_BYTES", "OutputListener", "OutputRelay", "format_output_tail"]

log = logging.getLogger("kernel_nanny.launch")

#: Bytes of the kernel process's recent output kept to explain a failed start.
OUTPUT_TAIL_BYTES = 8192
#: Bytes of output kept for the first output listener, if it attaches late.
OUTPUT_BACKLOG_BYTES = 65536

#: ``listener(name, data)``: ``name`` is ``"stdout"`` or ``"stderr"``.
OutputListener = Callable[[str, bytes], None]


class OutputRelay:
    """Passes a kernel process's output chunks on (call :meth:`feed` from the event loop)."""

    def __init__(self, echo: bool = True) -> None:
        #: Also copy every chunk to our own stderr.
        self.echo = echo
        self._listeners: list[OutputListener] = []
        self._backlog: list[tuple[str, bytes]] | None = []
        self._backlog_size = 0
        self._tail = bytearray()

    @property
    def tail(self) -> str:
        """The last few KiB written (to explain a failed start)."""
        return self._tail.decode(errors="replace")

    def clear_tail(self) -> None:
        """Forget the tail (a new process starts: its failure must show its own output)."""
        self._tail.clear()

    def add_listener(self, listener: OutputListener) -> None:
        """Call ``listener(name, data)`` with every chunk; the first one also gets the backlog (64 KiB)."""
        self._listeners.append(listener)
        backlog, self._backlog = self._backlog, None
        for name, data in backlog or ():
            listener(name, data)

    def feed(self, name: str, chunk: bytes) -> None:
        """One chunk the kernel process wrote to ``name`` (``stdout`` or ``stderr``)."""
        self._tail += chunk
        del self._tail[:-OUTPUT_TAIL_BYTES]
        if self._backlog is not None and self._backlog_size < OUTPUT_BACKLOG_BYTES:
            self._backlog.append((name, chunk))
            self._backlog_size += len(chunk)
        for listener in self._listeners:
            try:
                listener(name, chunk)
            except Exception:
                log.exception("output listener %r failed", listener)
        if self.echo:
            try:
                os.write(sys.stderr.fileno(), chunk)
            except (OSError, ValueError):  # our stderr is closed or not a real file
                pass


def format_output_tail(text: str, lines: int = 15, intro: str = "its last output") -> str:
    """The last lines of some output, introduced for an error message (or nothing)."""
    tail = "\n".join(text.strip().splitlines()[-lines:])
    return f"; {intro}:\n{tail}" if tail else ""
