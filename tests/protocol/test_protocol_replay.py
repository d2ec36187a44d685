"""Replay protection: bounded memory, and no crash however many messages arrive."""

from __future__ import annotations

import pytest

from kernel_nanny import ReplayedMessage
from kernel_nanny.protocol import DEFAULT_REPLAY_WINDOW, ReplayGuard, Session

KEY = b"stress-key"


def test_one_receiver_accepts_200k_distinct_signed_messages():
    """jupyter_protocol 0.2.0 crashed at message 65,537 (random.sample on a set)."""
    sender, receiver = Session(KEY), Session(KEY)
    template = sender.msg("status", {"execution_state": "idle"})
    frames = []
    for i in range(200_000):
        template.header["msg_id"] = f"m{i}"  # serialize() encodes at call time, so reuse is safe
        frames.append(sender.serialize(template))

    received = [receiver.deserialize(message).msg_id for message in frames]

    assert received == [f"m{i}" for i in range(200_000)]

    with pytest.raises(ReplayedMessage):  # a whole window is remembered: full, not emptied
        receiver.deserialize(frames[-DEFAULT_REPLAY_WINDOW])
    receiver.deserialize(frames[-DEFAULT_REPLAY_WINDOW - 1])  # and no more: older ones are forgotten
    with pytest.raises(ReplayedMessage):  # the most recent are still remembered
        receiver.deserialize(frames[-1])


def test_guard_rejects_a_repeat_within_the_window():
    guard = ReplayGuard(10)
    guard.check(b"sig-1")

    with pytest.raises(ReplayedMessage):
        guard.check(b"sig-1")


def test_guard_memory_is_bounded_by_its_window():
    guard = ReplayGuard(100)
    for i in range(10_000):
        guard.check(b"sig-%d" % i)
        assert len(guard) <= 100

    assert len(guard) == 100


def test_guard_forgets_oldest_first():
    guard = ReplayGuard(3)
    for sig in (b"a", b"b", b"c", b"d"):  # "a" is evicted by "d"
        guard.check(sig)

    guard.check(b"a")  # forgotten: accepted again (and evicts "b")
    for remembered in (b"c", b"d", b"a"):
        with pytest.raises(ReplayedMessage):
            guard.check(remembered)


def test_a_rejected_repeat_does_not_grow_the_guard():
    guard = ReplayGuard(5)
    guard.check(b"x")
    for _ in range(10):
        with pytest.raises(ReplayedMessage):
            guard.check(b"x")

    assert len(guard) == 1


def test_session_replay_window_is_configurable():
    sender, receiver = Session(KEY), Session(KEY, replay_window=2)
    first, second, third = ([bytes(f) for f in sender.serialize(sender.msg("status"))] for _ in range(3))
    for frames in (first, second, third):
        receiver.deserialize(frames)

    receiver.deserialize(first)  # beyond the window: no longer known
    with pytest.raises(ReplayedMessage):
        receiver.deserialize(third)


@pytest.mark.parametrize("window", [0, -1])
def test_window_must_be_positive(window):
    with pytest.raises(ValueError, match="at least 1"):
        ReplayGuard(window)
