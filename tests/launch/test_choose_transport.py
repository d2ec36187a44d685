"""Which transport ``auto`` picks for a kernel: ipc only where the kernel is known to handle it."""

from __future__ import annotations

import sys

import pytest

from kernel_nanny.launch.command import ipykernel_command
from kernel_nanny.launch.connection import choose_transport

XPYTHON_ARGV = ["python3", "-m", "xpython_launcher", "-f", "{connection_file}"]


def test_ipykernel_gets_ipc():
    command = ipykernel_command()
    assert choose_transport("auto", command.metadata, command.argv) == "ipc"
    # a kernelspec for ipykernel (its own python3 spec declares nothing) is recognised by its argv
    assert (
        choose_transport("auto", {}, [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]) == "ipc"
    )


@pytest.mark.parametrize("declared", ["ipc", ["tcp", "IPC"]])
def test_a_kernelspec_declaring_ipc_gets_it(declared):
    assert choose_transport("auto", {"supported_transports": declared}, XPYTHON_ARGV) == "ipc"


@pytest.mark.parametrize("metadata", [{}, {"supported_transports": ["tcp"]}, {"debugger": True}])
def test_other_kernels_get_tcp(metadata):
    assert choose_transport("auto", metadata, XPYTHON_ARGV) == "tcp"


@pytest.mark.parametrize("requested", ["ipc", "tcp"])
def test_an_explicit_transport_is_kept(requested):
    assert choose_transport(requested, {}, XPYTHON_ARGV) == requested
    assert choose_transport(requested, ipykernel_command().metadata, ipykernel_command().argv) == requested
