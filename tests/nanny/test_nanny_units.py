"""The nanny's small parts: restart policy and budget, output log, rate-limited logging, signals."""

from __future__ import annotations

import logging
import signal

import pytest

from kernel_nanny import RestartPolicy
from kernel_nanny._ratelimit import RateLimitedLog
from kernel_nanny.nanny.output_log import OutputLog, read_log
from kernel_nanny.nanny.restarts import RestartBudget
from kernel_nanny.protocol import parse_signal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_restart_policy_first_restart_is_immediate_then_backs_off():
    policy = RestartPolicy(max_restarts=6, window=60, backoff=0.5, max_backoff=3)
    assert [policy.delay(n) for n in range(1, 7)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"max_restarts": -1}, "max_restarts"),
        ({"window": -5}, "window"),
        ({"backoff": "soon"}, "backoff"),
        ({"window": float("nan")}, "window must be a number of seconds >= 0, got nan"),
        ({"max_backoff": float("inf")}, "max_backoff must be a number of seconds >= 0, got inf"),
    ],
)
def test_restart_policy_rejects_bad_settings(settings, problem):
    with pytest.raises(ValueError, match=problem):
        RestartPolicy(**settings)


def test_restart_policy_round_trips_through_a_dict_and_refuses_unknown_keys():
    policy = RestartPolicy(max_restarts=2, window=5.0)
    assert RestartPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ValueError, match="unknown restart policy setting.*tries"):
        RestartPolicy.from_dict({"tries": 3})
    assert "max_restarts=2" in repr(policy)


def test_restart_budget_counts_within_the_window_only():
    clock = Clock()
    budget = RestartBudget(RestartPolicy(max_restarts=2, window=10, backoff=1), clock=clock)
    assert budget.allows_another() and budget.next_delay() == 0.0
    budget.record()
    assert budget.next_delay() == 1.0
    clock.now += 4
    budget.record()
    assert not budget.allows_another() and budget.used == 2
    clock.now += 6.5  # the first restart left the window
    assert budget.used == 1 and budget.allows_another()
    assert RestartBudget(RestartPolicy(max_restarts=0)).allows_another() is False


def test_output_log_is_bounded_and_keeps_the_latest(tmp_path):
    path = tmp_path / "output.log"
    log = OutputLog(path, max_bytes=100)
    for i in range(50):
        log.write(f"line {i:03d}\n".encode())  # 9 bytes each
    log.close()
    retained = read_log(path)
    assert path.stat().st_size <= 100
    assert (tmp_path / "output.log.1").stat().st_size <= 100
    assert retained.endswith(b"line 049\n")
    assert b"line 000" not in retained
    assert len(retained) <= 200
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_read_log_of_a_missing_file_is_empty(tmp_path):
    assert read_log(tmp_path / "nothing.log") == b""


def test_rate_limited_log_keeps_a_flood_to_a_few_lines(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("kn-test"), burst=3, interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="kn-test"):
        for i in range(1000):
            limited.warning("bad message %d", i)
        assert len(caplog.records) == 3
        clock.now += 10
        limited.warning("bad message after the flood")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:3] == ["bad message 0", "bad message 1", "bad message 2"]
    assert messages[3] == "(997 similar messages suppressed)"
    assert messages[4] == "bad message after the flood"


@pytest.mark.parametrize("value", [9, "9", "KILL", "SIGKILL", "sigkill"])
def test_parse_signal_accepts_numbers_and_names(value):
    assert parse_signal(value) == signal.SIGKILL


@pytest.mark.parametrize("value", ["SIGFROB", 999, True, None, 2.5])
def test_parse_signal_rejects_the_rest(value):
    with pytest.raises(ValueError):
        parse_signal(value)
