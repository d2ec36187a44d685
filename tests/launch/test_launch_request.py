"""LaunchRequest and LaunchParams: bad input fails where it enters, naming the field; requests round-trip."""

from __future__ import annotations

import os
import sys

import pytest

from kernel_nanny import KernelCommand, LaunchError, LaunchParams, LaunchRequest, RestartPolicy
from kernel_nanny.discovery.resolved import ResolvedKernel
from kernel_nanny.discovery.spec import KernelSpecProvider
from kernel_nanny.nanny.startup import Handover, kernel_params, read_report


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"transport": "udp"}, "transport"),
        ({"encryption": "maybe"}, "encryption"),
        ({"env": {"A": 1}}, "env"),
        ({"env": ["A=1"]}, "env"),
        ({"startup_timeout": -5}, "startup_timeout"),
        ({"startup_timeout": float("nan")}, "startup_timeout"),
        ({"shutdown_timeout": "5"}, "shutdown_timeout"),
        ({"echo_output": "yes"}, "echo_output"),
        ({"connection_file": "relative.json"}, "connection_file"),
        ({"connection_file": "/no/such/dir/kernel.json"}, "connection_file"),
        ({"ip": ""}, "ip"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_launch_params_name_the_parameter(params, field):
    with pytest.raises(LaunchError, match=field):
        LaunchParams.from_mapping(params)


def test_launch_params_read_like_the_dict_providers_used_to_get():
    params = LaunchParams.from_mapping({"transport": "tcp", "env": {"A": "1"}})
    assert params["transport"] == "tcp" and params.get("ip") == "127.0.0.1"
    assert dict(params)["env"] == {"A": "1"}
    assert LaunchParams.from_mapping(params) is params  # validated once, then passed on unchanged
    with pytest.raises(KeyError):
        params["bogus"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kernel_type": 3}, "kernel_type"),
        ({"kernel_type": "spec/python3", "switches": "--debug"}, "switches"),
        ({"kernel_type": "spec/python3", "switches": [1]}, "switches"),
        ({"kernel_type": "spec/python3", "cwd": "no-such-directory-here"}, "cwd"),
        ({"kernel_type": "spec/python3", "cwd": 7}, "cwd"),
        ({"kernel_type": "spec/python3", "name": "a/b"}, "name"),
        ({"kernel_type": "spec/python3", "name": ""}, "name"),
        ({"kernel_type": "spec/python3", "restart_policy": {"max_restarts": -1}}, "restart_policy"),
        ({"kernel_type": "spec/python3", "restart_policy": {"bogus": 1}}, "restart_policy"),
        ({"kernel_type": "spec/python3", "params": {"transport": "udp"}}, "transport"),
        ({"kernel_type": "spec/python3", "supervised": "yes"}, "supervised"),
        ({"kernel_type": "spec/python3", "heartbeat_interval": 0}, "heartbeat_interval"),
        ({"kernel_type": "spec/python3", "command": ["python"]}, "command"),
    ],
)
def test_bad_requests_fail_at_the_edge_naming_the_field(fields, field):
    with pytest.raises(LaunchError, match=field):
        LaunchRequest(**fields)


def test_a_relative_cwd_is_resolved_against_ours_and_an_absolute_one_is_kept(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path)
    assert LaunchRequest(kernel_type="spec/python3", cwd="work").cwd == str(tmp_path / "work")
    # An absolute path may name a directory on another host or in a container: not checked here.
    assert LaunchRequest(kernel_type="ssh/far/spec/python3", cwd="/srv/elsewhere").cwd == "/srv/elsewhere"


def test_a_request_round_trips_through_its_dict():
    request = LaunchRequest(
        kernel_type="python:/envs/etl",
        command=KernelCommand(argv=["/envs/etl/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]),
        switches=["--debug"],
        cwd=os.getcwd(),
        params={"transport": "tcp", "env": {"A": "1"}},
        name="etl",
        restart_policy=RestartPolicy(max_restarts=2),
        supervised=True,
        heartbeat_interval=0.5,
    )
    assert LaunchRequest.from_dict(request.to_dict()) == request
    with pytest.raises(LaunchError, match="bogus"):
        LaunchRequest.from_dict({**request.to_dict(), "bogus": 1})


def test_with_params_validates_again():
    request = LaunchRequest(kernel_type="spec/python3")
    assert request.with_params(transport="tcp").params.transport == "tcp"
    with pytest.raises(LaunchError, match="transport"):
        request.with_params(transport="udp")


def test_the_nanny_handover_carries_a_command_or_the_provider_itself(tmp_path):
    request = LaunchRequest(kernel_type="spec/python3", supervised=True, name="x")
    command = KernelCommand(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    decoded = Handover.decode(Handover("k1", request, ResolvedKernel(command=command)).encode())
    assert (decoded.kernel_id, decoded.request, decoded.resolved.command) == ("k1", request, command)

    provider = KernelSpecProvider([str(tmp_path)])  # a provider built in code, with its own state
    decoded = Handover.decode(Handover("k2", request, ResolvedKernel(provider=provider, name="python3")).encode())
    assert isinstance(decoded.resolved.provider, KernelSpecProvider)
    assert decoded.resolved.provider.search_path == [str(tmp_path)] and decoded.resolved.name == "python3"


def test_an_unpicklable_provider_is_refused_with_the_fix():
    class Local(KernelSpecProvider):  # defined in a function: pickle cannot name it
        id = "local"

    handover = Handover("k", LaunchRequest(kernel_type="local/x"), ResolvedKernel(provider=Local(), name="x"))
    with pytest.raises(LaunchError, match="cannot be handed to a nanny.*kernel_command"):
        handover.encode()


def test_garbage_on_the_nanny_stdin_is_a_clear_error():
    with pytest.raises(ValueError, match="not by hand"):
        Handover.decode(b'{"something": "else"}')


def test_the_nanny_gives_its_kernel_a_private_connection_file_and_captures_its_output():
    params = kernel_params("abc", LaunchParams(transport="tcp"))
    assert params.connection_file is not None and params.connection_file.endswith("nanny-abc/kernel.json")
    assert params.echo_output is False and params.transport == "tcp"


def test_a_nanny_that_died_without_reporting_shows_its_log(tmp_path):
    log = tmp_path / "nanny.log"
    log.write_text("Traceback ...\nOSError: [Errno 28] No space left on device\n")
    with pytest.raises(LaunchError, match="(?s)exited without reporting.*No space left"):
        read_report(b"", kernel_type="spec/python3", nanny_log=log)
    with pytest.raises(LaunchError, match="kernel exploded"):
        read_report(
            b'{"status": "error", "ename": "LaunchError", "evalue": "kernel exploded"}\n',
            kernel_type="spec/python3",
            nanny_log=log,
        )
    assert (
        str(read_report(b'{"status": "ready", "connection_file": "/x/k.json"}\n', kernel_type="t", nanny_log=log))
        == "/x/k.json"
    )
