"""KernelLogAdapter: every line about one kernel starts with the same ``[kernel=<id8> pid=<n>]``."""

from __future__ import annotations

import logging

import pytest

from kernel_nanny._logging import KernelLogAdapter

LOGGER = "kernel_nanny.tests.logging"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_the_prefix_shortens_the_id_and_keeps_the_arguments(caplog):
    log = KernelLogAdapter(logging.getLogger(LOGGER), "3f2a9c0d11112222333344445555aaaa", pid=4711)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        log.info("died: %s", "SIGKILL")
    assert _lines(caplog) == ["[kernel=3f2a9c0d pid=4711] died: SIGKILL"]


def test_a_callable_is_read_when_the_line_is_written(caplog):
    pids = iter([100, 200])
    log = KernelLogAdapter(logging.getLogger(LOGGER), "3f2a9c0d1111", pid=lambda: next(pids))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        log.info("started")
        log.debug("not emitted, so the pid is not read")
        log.warning("restarted")
    assert _lines(caplog) == ["[kernel=3f2a9c0d pid=100] started", "[kernel=3f2a9c0d pid=200] restarted"]


def test_without_an_id_or_a_value_the_field_is_left_out(caplog):
    log = KernelLogAdapter(logging.getLogger(LOGGER), container="c0ffee", pid=lambda: None)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        log.info("ignored SIGTERM; sending SIGKILL")
    assert _lines(caplog) == ["[kernel container=c0ffee] ignored SIGTERM; sending SIGKILL"]


def test_exceptions_keep_their_traceback(caplog):
    log = KernelLogAdapter(logging.getLogger(LOGGER), "abcdef0123456789")
    with caplog.at_level(logging.INFO, logger=LOGGER):
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("shutting the kernel down failed")
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.getMessage() == "[kernel=abcdef01] shutting the kernel down failed"
    assert record.exc_info is not None and record.exc_info[0] is ValueError
