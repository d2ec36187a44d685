"""The error table: every error name crosses a socket and comes back as its class."""

from __future__ import annotations

import pytest

from kernel_nanny import (
    InvalidRequest,
    KernelError,
    KernelNannyError,
    KernelNotRunning,
    LaunchError,
    MaxKernels,
    NoSuchKernel,
    NoSuchKernelType,
)
from kernel_nanny.protocol.errors import ERRORS, error_from_reply, error_name, error_reply, is_known_error


def _raised_by_a_server(cls: type[KernelNannyError]) -> KernelNannyError:
    """An instance as a handler would raise it (NoSuchKernelType is built from a type id)."""
    return cls("spec/nope") if cls is NoSuchKernelType else cls("it went wrong")


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_every_entry_makes_the_round_trip(name):
    sent = _raised_by_a_server(ERRORS[name])
    content = error_reply(sent)
    assert content == {"status": "error", "ename": name, "evalue": str(sent)}
    received = error_from_reply(content)
    assert isinstance(received, ERRORS[name])
    assert isinstance(received, KernelError)  # callers that catch every refusal still do
    assert (received.ename, received.evalue) == (name, str(sent))
    assert str(received) == f"{name}: {sent}"
    # ...and a server passing it on (the daemon relaying its nanny's refusal) keeps its name.
    assert error_reply(received) == content


def test_a_subclass_crosses_under_its_nearest_listed_class():
    class SlowStart(LaunchError):
        pass

    assert error_name(SlowStart("no")) == "LaunchError"
    assert error_name(MaxKernels("full")) == "MaxKernels"  # listed itself, though also a LaunchError
    assert isinstance(error_from_reply({"ename": "MaxKernels", "evalue": "full"}), LaunchError)


def test_any_value_error_crosses_as_an_invalid_request():
    content = error_reply(ValueError("unknown signal name 'SIGFROB'"))
    assert content["ename"] == "ValueError" and is_known_error(ValueError())
    received = error_from_reply(content)
    assert isinstance(received, InvalidRequest) and isinstance(received, ValueError)


def test_an_unknown_name_falls_back_to_kernel_error():
    content = error_reply(OSError("disk full"))
    assert content["ename"] == "OSError" and not is_known_error(OSError())
    received = error_from_reply(content)
    assert type(received) is KernelError
    assert (received.ename, received.evalue) == ("OSError", "disk full")
    assert not isinstance(received, (NoSuchKernel, KernelNotRunning))
    assert type(error_from_reply({"status": "error"})) is KernelError  # nothing named at all
