"""ExitStatus on the wire, and KernelDied carrying one."""

from __future__ import annotations

import json
import signal

import pytest

from kernel_nanny import ExitStatus, KernelDied


@pytest.mark.parametrize(
    "status",
    [
        ExitStatus(exit_code=0),
        ExitStatus(exit_code=3),
        ExitStatus.from_returncode(-signal.SIGKILL),
        ExitStatus.from_returncode(-signal.SIGTERM),
        ExitStatus(signal=signal.SIGKILL, reason="oom"),
        ExitStatus(reason="lost"),
    ],
)
def test_a_status_survives_json(status):
    assert ExitStatus.from_dict(json.loads(json.dumps(status.to_dict()))) == status


def test_a_kernel_died_event_reads_as_its_status():
    content = {"exit_code": None, "signal": 9, "reason": "oom", "restarting": False, "requested": False}
    assert ExitStatus.from_dict(content) == ExitStatus(signal=9, reason="oom")


def test_kernel_died_carries_the_status_and_says_what_the_signal_does_not():
    died = KernelDied("the kernel died", status=ExitStatus(signal=signal.SIGKILL, reason="oom"))
    assert (died.exit_code, died.signal, died.reason) == (None, signal.SIGKILL, "oom")
    assert died.status == ExitStatus(signal=signal.SIGKILL, reason="oom")
    assert str(died) == "the kernel died (SIGKILL, oom)"
    assert str(KernelDied("gone", status=ExitStatus(exit_code=3))) == "gone (exit code 3)"
    assert str(KernelDied("gone", status=ExitStatus.from_returncode(-signal.SIGKILL))) == "gone (SIGKILL)"
