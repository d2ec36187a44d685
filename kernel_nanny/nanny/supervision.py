"""What the nanny does when its kernel dies: a pure decision, kept apart from processes and sockets.

Whoever causes a death records an :data:`Intent` just before (a ``kill``
request, a client's ``shutdown_request`` to the kernel...); no intent means
nobody asked. :func:`after_death` turns that intent, and whether the restart
budget (:class:`~kernel_nanny.nanny.restarts.RestartBudget`) allows another
automatic restart, into a :class:`Decision`: what to publish and what to do
next. :class:`~kernel_nanny.nanny.core.KernelNanny` only carries decisions out,
so the table in ``docs/explanation/nanny.rst`` lives here, once, and every
combination is tested without starting a process.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

__all__ = ["DeathNotice", "Decision", "Intent", "Next", "after_death", "after_failed_restart", "restart_superseded"]

#: Why the kernel is about to die, recorded by whoever causes it: a ``kill``, ``restart`` or
#: ``shutdown`` request to the nanny, or a client's ``shutdown_request`` to the kernel itself
#: (``kernel-shutdown``, ``kernel-restart`` with ``restart: true``). ``None``: nobody asked.
Intent = Literal["kill", "restart", "shutdown", "kernel-shutdown", "kernel-restart"]


class Next(enum.Enum):
    """What the nanny does once a death is published."""

    #: Restart the kernel itself (after :attr:`Decision.delay`).
    RESTART = "restart"
    #: A ``restart`` request is replacing the kernel; wait for the new one.
    AWAIT_REQUESTED_RESTART = "await-requested-restart"
    #: State ``dead``: the kernel stays down until a request restarts it.
    STAY_DEAD = "stay-dead"
    #: State ``dead`` and ``restart_failed``: the restart budget is spent.
    GIVE_UP = "give-up"
    #: A client shut the kernel down itself: the nanny exits too.
    STOP_NANNY = "stop-nanny"
    #: The nanny is shutting down; its teardown reports the death.
    LEAVE_TO_TEARDOWN = "leave-to-teardown"


@dataclass(frozen=True)
class DeathNotice:
    """The flags of the ``kernel_died`` event to publish."""

    #: Whether a new kernel follows (automatically or by request).
    restarting: bool
    #: Whether somebody asked for the death (a crash, a signal, the OOM killer: no).
    requested: bool


@dataclass(frozen=True)
class Decision:
    """What to do about one death, or about one failed restart."""

    next: Next
    #: The ``kernel_died`` to publish; ``None``: publish nothing.
    kernel_died: DeathNotice | None = None
    #: For :attr:`Next.RESTART`: the restart counts against the budget (nobody asked for it).
    counted: bool = False
    #: For :attr:`Next.RESTART`: seconds to back off first.
    delay: float = 0.0


def after_death(intent: Intent | None, *, budget_allows: bool, backoff: float, final: bool = False) -> Decision:
    """What to do about a death, given its intent and the restart budget.

    ``budget_allows``: the budget allows another automatic restart now;
    ``backoff``: the delay it imposes on that restart. Both matter only to
    deaths nobody asked for: requested restarts are never counted nor delayed.
    ``final``: the kernel's place went with it (its batch job ended), so no
    automatic restart is tried.
    """
    if intent is None and final:
        return Decision(Next.STAY_DEAD, DeathNotice(restarting=False, requested=False))
    if intent is None:
        if not budget_allows:
            return Decision(Next.GIVE_UP, DeathNotice(restarting=False, requested=False))
        return Decision(Next.RESTART, DeathNotice(restarting=True, requested=False), counted=True, delay=backoff)
    if intent == "kernel-restart":
        return Decision(Next.RESTART, DeathNotice(restarting=True, requested=True))
    if intent == "restart":
        return Decision(Next.AWAIT_REQUESTED_RESTART, DeathNotice(restarting=True, requested=True))
    if intent == "kill":
        return Decision(Next.STAY_DEAD, DeathNotice(restarting=False, requested=True))
    if intent == "kernel-shutdown":
        return Decision(Next.STOP_NANNY, DeathNotice(restarting=False, requested=True))
    return Decision(Next.LEAVE_TO_TEARDOWN)  # "shutdown": the request handler or the teardown publishes it


def after_failed_restart(*, budget_allows: bool, backoff: float) -> Decision:
    """What to do when the new kernel of an automatic restart failed to launch.

    The next attempt counts against the budget, even if the failed one was a
    restart a client asked for: a kernel that cannot launch must not spin.
    Nothing is published: no kernel ran, so none died.
    """
    if not budget_allows:
        return Decision(Next.GIVE_UP)
    return Decision(Next.RESTART, counted=True, delay=backoff)


def restart_superseded(intent: Intent | None) -> bool:
    """Whether a request (``kill``, ``restart``, ``shutdown``) took over from a pending automatic restart.

    Checked after the back-off, just before restarting: a kill during the
    back-off means "stay dead", a restart or shutdown request does the rest.
    """
    return intent not in (None, "kernel-restart")
