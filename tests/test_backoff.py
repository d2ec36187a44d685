"""The one back-off every retry uses (restarts, SSH reconnection, pool refills, Slurm queue checks)."""

from itertools import islice

from kernel_nanny._backoff import backoff_delay, backoff_delays


def test_delays_double_from_the_first_up_to_the_limit():
    assert list(islice(backoff_delays(0.25, 3.0), 6)) == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_retry_that_never_succeeds_waits_the_limit_for_ever_without_overflowing():
    assert backoff_delay(10**6, 1.0, 30.0) == 30.0
    assert next(islice(backoff_delays(1.0, 30.0), 5000, None)) == 30.0
