"""Connection info: validation, channel URLs, connection files."""

from __future__ import annotations

import json

import pytest

from kernel_nanny import KernelNannyError
from kernel_nanny.protocol import (
    CHANNELS,
    channel_url,
    endpoint_port,
    endpoint_url,
    is_ipv6_endpoint,
    load_connection_info,
    normalize_connection_info,
)


def ports(start: int = 50000) -> dict[str, int]:
    return {f"{channel}_port": start + n for n, channel in enumerate(CHANNELS)}


def test_normalize_fills_defaults_and_copies():
    raw = {**ports(), "key": b"bytes-key"}

    info = normalize_connection_info(raw)

    assert info["transport"] == "tcp"
    assert info["ip"] == "127.0.0.1"
    assert info["signature_scheme"] == "hmac-sha256"
    assert info["key"] == "bytes-key"
    assert raw["key"] == b"bytes-key"  # the caller's mapping is untouched
    assert info is not raw


def test_normalize_keeps_given_values():
    info = normalize_connection_info(
        {**ports(), "transport": "ipc", "ip": "/run/k", "key": "s", "signature_scheme": "hmac-sha512", "extra": 1}
    )

    assert (info["transport"], info["ip"], info["key"], info["signature_scheme"]) == (
        "ipc",
        "/run/k",
        "s",
        "hmac-sha512",
    )
    assert info["extra"] == 1


@pytest.mark.parametrize("transport", ["udp", "inproc", "", "TCP"])
def test_normalize_refuses_an_unknown_transport_naming_the_field(transport):
    with pytest.raises(KernelNannyError, match="transport") as info:
        normalize_connection_info({**ports(), "transport": transport})

    assert repr(transport) in str(info.value)


@pytest.mark.parametrize("channel", CHANNELS)
def test_normalize_refuses_a_missing_port_naming_it(channel):
    info = ports()
    del info[f"{channel}_port"]

    with pytest.raises(KernelNannyError, match=f"{channel}_port"):
        normalize_connection_info(info)


@pytest.mark.parametrize("bad", [0, -5, "5555", None, 1.5])
def test_normalize_refuses_a_zero_negative_or_non_integer_port(bad):
    with pytest.raises(KernelNannyError, match="iopub_port") as info:
        normalize_connection_info({**ports(), "iopub_port": bad})

    assert repr(bad) in str(info.value)


def test_channel_url_tcp():
    info = normalize_connection_info({**ports(6000), "ip": "10.1.2.3"})

    assert channel_url(info, "shell") == "tcp://10.1.2.3:6000"
    assert channel_url(info, "hb") == "tcp://10.1.2.3:6004"


@pytest.mark.parametrize("ip", ["::1", "fe80::1%eth0", "2001:db8::7"])
def test_channel_url_brackets_ipv6(ip):
    assert channel_url({**ports(7000), "ip": ip}, "iopub") == f"tcp://[{ip}]:7001"


@pytest.mark.parametrize(
    ("transport", "ip", "port", "url"),
    [
        ("tcp", "10.0.0.1", "*", "tcp://10.0.0.1:*"),
        ("tcp", "::1", 5555, "tcp://[::1]:5555"),
        ("ipc", "/run/kn-1/kn-abc", 6, "ipc:///run/kn-1/kn-abc-6"),
    ],
)
def test_endpoint_url_and_its_port(transport, ip, port, url):
    assert endpoint_url(transport, ip, port) == url
    assert is_ipv6_endpoint(url) == (ip == "::1")
    if port != "*":
        assert endpoint_port(url) == port


def test_channel_url_ipc_uses_path_dash_number():
    info = {"transport": "ipc", "ip": "/tmp/kn-abc/kernel", **{f"{c}_port": n for n, c in enumerate(CHANNELS, 1)}}

    assert [channel_url(info, c) for c in CHANNELS] == [f"ipc:///tmp/kn-abc/kernel-{n}" for n in range(1, 6)]


def test_channel_url_defaults_to_tcp_on_loopback():
    assert channel_url(ports(8000), "control") == "tcp://127.0.0.1:8003"


def test_load_connection_info_reads_a_file(tmp_path):
    path = tmp_path / "kernel-1.json"
    path.write_text(json.dumps({**ports(), "key": "k", "transport": "tcp", "ip": "127.0.0.1"}))

    info = load_connection_info(path)

    assert info["shell_port"] == 50000 and info["key"] == "k"


def test_load_connection_info_missing_file_names_it(tmp_path):
    path = tmp_path / "kernel-gone.json"

    with pytest.raises(KernelNannyError, match="not found") as info:
        load_connection_info(path)

    assert str(path) in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage"])
def test_load_connection_info_invalid_json_names_the_file(tmp_path, content):
    path = tmp_path / "kernel-bad.json"
    path.write_bytes(content)

    with pytest.raises(KernelNannyError, match="not valid JSON") as info:
        load_connection_info(path)

    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", ["[1, 2, 3]", '"text"', "42", "null"])
def test_load_connection_info_non_object_names_the_file(tmp_path, content):
    path = tmp_path / "kernel-list.json"
    path.write_text(content)

    with pytest.raises(KernelNannyError, match="JSON object") as info:
        load_connection_info(path)

    assert str(path) in str(info.value)


def test_load_connection_info_bad_field_names_file_and_field(tmp_path):
    path = tmp_path / "kernel-noport.json"
    info = ports()
    del info["stdin_port"]
    path.write_text(json.dumps(info))

    with pytest.raises(KernelNannyError) as error:
        load_connection_info(path)

    assert str(path) in str(error.value)
    assert "stdin_port" in str(error.value)


def test_load_connection_info_on_a_directory_is_our_error(tmp_path):
    """Per the exception tree, OS errors are mapped where they enter: a caller that
    catches KernelNannyError must not get a raw IsADirectoryError."""
    with pytest.raises(KernelNannyError) as info:
        load_connection_info(tmp_path)

    assert str(tmp_path) in str(info.value)


def test_ipc_socket_paths_cover_every_port_and_nothing_for_tcp():
    from pathlib import Path

    from kernel_nanny.protocol import ipc_socket_paths

    info = {"transport": "ipc", "ip": "/run/k", "shell_port": 1, "hb_port": 5, "nanny_events_port": 7, "key": "x"}
    assert sorted(ipc_socket_paths(info)) == [Path("/run/k-1"), Path("/run/k-5"), Path("/run/k-7")]
    assert ipc_socket_paths({**info, "transport": "tcp"}) == []
