"""Log lines about one kernel carry its context the same way everywhere: ``[kernel=3f2a9c0d pid=4711] died: ...``.

A :class:`KernelLogAdapter` wraps a module's logger for one kernel; the
values that change over its life (the pid after a restart) are given as
callables and read when a line is actually emitted.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

__all__ = ["KernelLogAdapter"]

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is subscriptable only from Python 3.11 on
    _Adapter = logging.LoggerAdapter


class KernelLogAdapter(_Adapter):
    """Prefixes every message with the kernel it is about.

    ``KernelLogAdapter(log, kernel_id, pid=lambda: self.pid)`` writes
    ``[kernel=3f2a9c0d pid=4711] ...``: the id shortened to 8 characters,
    then each keyword field in order (``container=...`` for a Docker
    kernel). Without an id (a kernel launched directly has none) the prefix
    is ``[kernel pid=4711]``; a field whose value is None is left out.
    """

    def __init__(self, logger: logging.Logger, kernel_id: str | None = None, **context: object) -> None:
        super().__init__(logger, {})
        self.kernel_id = kernel_id
        self._context = context

    @property
    def prefix(self) -> str:
        """The ``[kernel=... pid=...]`` of the next line."""
        fields = [f"kernel={self.kernel_id[:8]}" if self.kernel_id else "kernel"]
        for key, value in self._context.items():
            current = value() if callable(value) else value
            if current is not None:
                fields.append(f"{key}={current}")
        return f"[{' '.join(fields)}]"

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"{self.prefix} {msg}", kwargs
