"""The nanny's "a death happened: what now?" decisions, without any process.

tests/nanny/test_nanny_process.py checks the same behaviour end to end, with real kernels.
"""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest

from kernel_nanny import RestartPolicy
from kernel_nanny.nanny.restarts import RestartBudget
from kernel_nanny.nanny.supervision import (
    DeathNotice,
    Decision,
    Intent,
    Next,
    after_death,
    after_failed_restart,
    restart_superseded,
)

BACKOFF = 2.5
CRASHED = DeathNotice(restarting=True, requested=False)
GAVE_UP = DeathNotice(restarting=False, requested=False)
ASKED_TO_RESTART = DeathNotice(restarting=True, requested=True)
ASKED_TO_STOP = DeathNotice(restarting=False, requested=True)

#: intent -> (decision when the budget allows another restart, decision when it is spent)
TABLE = {
    None: (
        Decision(Next.RESTART, CRASHED, counted=True, delay=BACKOFF),
        Decision(Next.GIVE_UP, GAVE_UP),
    ),
    "kernel-restart": (
        Decision(Next.RESTART, ASKED_TO_RESTART),
        Decision(Next.RESTART, ASKED_TO_RESTART),
    ),
    "restart": (
        Decision(Next.AWAIT_REQUESTED_RESTART, ASKED_TO_RESTART),
        Decision(Next.AWAIT_REQUESTED_RESTART, ASKED_TO_RESTART),
    ),
    "kill": (
        Decision(Next.STAY_DEAD, ASKED_TO_STOP),
        Decision(Next.STAY_DEAD, ASKED_TO_STOP),
    ),
    "kernel-shutdown": (
        Decision(Next.STOP_NANNY, ASKED_TO_STOP),
        Decision(Next.STOP_NANNY, ASKED_TO_STOP),
    ),
    "shutdown": (
        Decision(Next.LEAVE_TO_TEARDOWN),
        Decision(Next.LEAVE_TO_TEARDOWN),
    ),
}


@pytest.mark.parametrize("budget_allows", [True, False], ids=["budget-left", "budget-spent"])
@pytest.mark.parametrize("intent", list(TABLE), ids=lambda intent: str(intent))
def test_every_intent_and_budget_has_one_decision(intent, budget_allows):
    expected = TABLE[intent][0 if budget_allows else 1]
    assert after_death(intent, budget_allows=budget_allows, backoff=BACKOFF) == expected


def test_the_table_covers_every_intent():
    assert set(TABLE) == {None, *get_args(Intent)}


def test_only_deaths_nobody_asked_for_are_counted_or_delayed():
    for intent, decisions in TABLE.items():
        for decision in decisions:
            assert decision.counted == (intent is None and decision.next is Next.RESTART)
            assert (decision.delay > 0) == decision.counted


@pytest.mark.parametrize(
    "budget_allows, expected",
    [(True, Decision(Next.RESTART, counted=True, delay=BACKOFF)), (False, Decision(Next.GIVE_UP))],
    ids=["budget-left", "budget-spent"],
)
def test_a_failed_launch_is_retried_as_a_counted_restart_and_publishes_no_death(budget_allows, expected):
    assert after_failed_restart(budget_allows=budget_allows, backoff=BACKOFF) == expected


@pytest.mark.parametrize(
    "intent, superseded",
    [
        (None, False),
        ("kernel-restart", False),
        ("kill", True),
        ("restart", True),
        ("shutdown", True),
        ("kernel-shutdown", True),
    ],
)
def test_a_request_during_the_back_off_takes_over_the_automatic_restart(intent, superseded):
    assert restart_superseded(intent) is superseded


def test_decisions_are_frozen():
    decision = after_death(None, budget_allows=True, backoff=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.next = Next.GIVE_UP  # type: ignore[misc]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_repeated_crashes_back_off_then_give_up_until_the_window_moves_on():
    """The decisions a nanny takes with a real budget, as its _recover records each counted restart."""
    clock = Clock()
    budget = RestartBudget(RestartPolicy(max_restarts=3, window=60, backoff=0.5, max_backoff=10), clock=clock)

    def crash(intent=None):
        decision = after_death(intent, budget_allows=budget.allows_another(), backoff=budget.next_delay())
        if decision.next is Next.RESTART and decision.counted:
            budget.record()
        clock.now += 1
        return decision

    assert [(d.next, d.delay) for d in (crash(), crash(), crash())] == [
        (Next.RESTART, 0.0),
        (Next.RESTART, 0.5),
        (Next.RESTART, 1.0),
    ]
    assert crash() == Decision(Next.GIVE_UP, GAVE_UP)
    # a client's restart still goes through, uncounted, and does not refill the budget
    assert crash("kernel-restart") == Decision(Next.RESTART, ASKED_TO_RESTART)
    assert crash().next is Next.GIVE_UP
    clock.now += 60  # the first restarts age out of the window
    assert crash() == Decision(Next.RESTART, CRASHED, counted=True, delay=0.0)
