"""What a launch reports before its kernel is ready: ``kernel_pending`` while a Slurm job waits in the queue.

A provider calls :func:`report_pending` from its ``launch``; whoever started the
launch hears it through :func:`listening` (a context variable, so concurrent
launches each reach their own listener). A nanny passes what its provider
reports to its starter as progress lines before its ready report
(:mod:`kernel_nanny.nanny.startup`), where it is reported again, so the
listener of ``kernel-nanny start`` hears a provider running inside a nanny.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["LaunchListener", "is_listening", "listening", "report", "report_pending"]

log = logging.getLogger("kernel_nanny.launch")

#: Called with an event's type (``kernel_pending``) and content.
LaunchListener = Callable[[str, Mapping[str, Any]], None]

_listener: ContextVar[LaunchListener | None] = ContextVar("kernel_nanny_launch_listener", default=None)


def report_pending(content: Mapping[str, Any]) -> None:
    """Tell whoever waits for this launch that the kernel is pending, and why (``state``, ``reason``...)."""
    report("kernel_pending", content)


def report(event: str, content: Mapping[str, Any]) -> None:
    """Pass ``event`` to this launch's listener, if any; a failing listener is logged, never raised."""
    listener = _listener.get()
    if listener is None:
        return
    try:
        listener(event, content)
    except Exception:
        log.exception("a launch listener failed on %s", event)


def is_listening() -> bool:
    """Whether someone listens to launches started in this context (a daemon client then follows its launch's
    progress in the daemon and reports it here)."""
    return _listener.get() is not None


@contextmanager
def listening(listener: LaunchListener) -> Iterator[None]:
    """Within the block, launches started in this context report their progress to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
