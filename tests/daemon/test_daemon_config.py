"""The daemon's configuration: defaults, files, precedence, and errors that name file, key and problem."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import kernel_nanny.config
from kernel_nanny import JournalLimits, RestartPolicy
from kernel_nanny.daemon.config import ConfigError, load_config
from kernel_nanny.daemon.pool_settings import PoolLimits, PoolSettings


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_serve_out_of_the_box(isolated):
    config = load_config()
    assert config.sources == ()
    assert config.tcp_endpoint == "" and config.max_kernels == 0 and config.allowed_types == ("*",)
    assert config.kernel_transport == "auto" and config.restart_policy == RestartPolicy()
    assert config.state_dir == isolated / "state" / "kernel-nanny"


def test_every_section_is_read(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """
            [daemon]
            tcp_endpoint = "tcp://127.0.0.1:7100"
            state_dir = "~/kn-state"
            log_level = "DEBUG"
            [kernels]
            max_kernels = 8
            allowed_types = ["spec/*"]
            transport = "tcp"
            ip = "10.0.0.5"
            [culling]
            idle_timeout = 3600
            busy_timeout = 7200.5
            [restart]
            max_restarts = 2
            window = 30
            [journal]
            memory = "16MiB"
            disk = 0
            [remote_daemons]
            gpu = "~/gpu.json"
            """,
        )
    )
    assert config.tcp_endpoint == "tcp://127.0.0.1:7100" and config.log_level == "debug"
    assert config.state_dir == Path("~/kn-state").expanduser()
    assert (config.max_kernels, config.allowed_types, config.kernel_transport, config.kernel_ip) == (
        8,
        ("spec/*",),
        "tcp",
        "10.0.0.5",
    )
    assert (config.idle_timeout, config.busy_timeout) == (3600.0, 7200.5)
    assert config.restart_policy == RestartPolicy(max_restarts=2, window=30)
    assert config.journal == JournalLimits(memory=16 * 1024 * 1024, disk=0)
    assert config.remote_daemons == {"gpu": Path("~/gpu.json").expanduser()}


def test_user_file_overrides_system_file(tmp_path, monkeypatch, isolated):
    system = write(tmp_path, "[kernels]\nmax_kernels = 3\nallowed_types = ['spec/*']\n", "system.toml")
    monkeypatch.setattr(kernel_nanny.config, "SYSTEM_CONFIG", system)
    user = tmp_path / "config" / "kernel-nanny"
    user.mkdir(parents=True)
    write(user, "[kernels]\nmax_kernels = 5\n")
    config = load_config()
    assert config.max_kernels == 5 and config.allowed_types == ("spec/*",)
    assert config.sources == (system, user / "config.toml")
    assert load_config(write(tmp_path, "", "only.toml")).max_kernels == 0  # --config alone


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[kernels\nmax_kernels = 1", "not valid TOML"),
        ("[kernel]\nmax_kernels = 1", r"\[kernel\]: unknown section"),
        (
            "[kernels]\nmax_kernel = 1",
            r"\[kernels\] max_kernel: unknown setting \(known: allowed_types, ip, max_kernels, transport\)",
        ),
        ("[kernels]\nmax_kernels = -1", r"\[kernels\] max_kernels: must be a whole number >= 0, got -1"),
        ("[kernels]\nmax_kernels = true", r"\[kernels\] max_kernels: must be a whole number >= 0"),
        ("[kernels]\ntransport = 'udp'", r"\[kernels\] transport: must be one of auto, ipc, tcp, got 'udp'"),
        ("[kernels]\nallowed_types = 'spec/*'", r"\[kernels\] allowed_types: must be a list of non-empty strings"),
        ("[daemon]\ntcp_endpoint = '0.0.0.0:7100'", r"\[daemon\] tcp_endpoint: must be 'tcp://ADDRESS:PORT'"),
        ("[daemon]\ntcp_endpoint = 'tcp://0.0.0.0:port'", r"\[daemon\] tcp_endpoint: must be 'tcp://ADDRESS:PORT'"),
        ("[daemon]\ntcp_endpoint = 'tcp://0.0.0.0:70000'", r"\[daemon\] tcp_endpoint: must be 'tcp://ADDRESS:PORT'"),
        ("[kernels]\nip = 'not an address'", r"\[kernels\] ip: must be an IP address"),
        ("[restart]\nmax_restarts = true", r"\[restart\] max_restarts: must be a whole number >= 0, got True"),
        ("[daemon]\nlog_level = 'loud'", r"\[daemon\] log_level: must be one of debug, info, warning, error"),
        ("[daemon]\nallowed_client_keys = ['short']", r"'short' is not a Z85 CurveZMQ public key"),
        ("[daemon]\nallowed_client_keys = ['" + "é" * 40 + "']", r"'é+' is not a Z85 CurveZMQ public key"),
        ("[culling]\nidle_timeout = '1h'", r"\[culling\] idle_timeout: must be a number of seconds >= 0, got '1h'"),
        ("[culling]\nbusy_timeout = nan", r"\[culling\] busy_timeout: must be a number of seconds >= 0, got nan"),
        ("[culling]\nidle_timeout = inf", r"\[culling\] idle_timeout: must be a number of seconds >= 0, got inf"),
        ("[restart]\nmax_restarts = -2", r"\[restart\] max_restarts: must be"),
        ("[restart]\nwindow = -inf", r"\[restart\] window: must be a number of seconds >= 0, got -inf"),
        ("[restart]\nretries = 2", r"\[restart\] retries: unknown setting \(known: backoff, max_backoff"),
        ("[journal]\nmemory = '8 bananas'", r"\[journal\] memory: must be a size in bytes, as a whole number or"),
        (
            "[journal]\nmemory = 8",
            r"\[journal\] memory: must be 0 \(with disk 0: no journal\) or a size from 64KiB, got 8",
        ),
        ("[journal]\ndisk = '1K'", r"\[journal\] disk: must be 0 \(memory only\) or a size from 64KiB, got 1024"),
        (
            "[journal]\nmemory = 0",
            r"\[journal\] memory: must be 0 \(with disk 0: no journal\) or a size from 64KiB, got 0",
        ),
        (
            "[gateway]\naddress = '0.0.0.0:8888'",
            r"\[gateway\]: serving the gateway on 0.0.0.0 without TLS would send its token .* in clear text",
        ),
        ("[gateway]\naddress = 'x:99999'", r"\[gateway\] address: expected \[HOST:\]PORT with a port from 0 to 65535"),
        ("[gateway]\ninsecure = 'yes'", r"\[gateway\] insecure: must be true or false, got 'yes'"),
        (
            "[gateway]\nport = 8888",
            r"\[gateway\] port: unknown setting \(known: address, certfile, idle_timeout, insecure, keyfile\)",
        ),
        ("[gateway]\nidle_timeout = 0", r"\[gateway\] idle_timeout: must be a number of seconds > 0, got 0"),
        ("[journal]\nring = '1MiB'", r"\[journal\] ring: unknown setting \(known: disk, memory\)"),
        ("[remote_daemons]\n'a/b' = 'x.json'", r"\[remote_daemons\] a/b: a remote daemon's name may not contain '/'"),
        ("[remote_daemons]\ngpu = 3", r"\[remote_daemons\] gpu: must be the path of a client connection file"),
        ("kernels = 3", r"\[kernels\]: must be a table, got 3"),
        ("[pool]\nsize = 2", r"\[pool\] size: unknown setting \(known: max_kernels, max_memory; a pool is a table"),
        ("[pool]\nmax_memory = 'lots'", r"\[pool\] max_memory: must be a size in bytes"),
        ("[pool]\nmax_kernels = -1", r"\[pool\] max_kernels: must be a whole number >= 0, got -1"),
        ("[pool.'spec/python3']\nsize = 0", r"\[pool.spec/python3\] size: must be a whole number >= 1, got 0"),
        ("[pool.'spec/python3']\nwarm = 1", r"\[pool.spec/python3\] warm: unknown setting \(known: cwd, encryption"),
        ("[pool.'spec/python3']\ncwd = 'rel'", r"\[pool.spec/python3\] cwd: must be an absolute path, got 'rel'"),
        ("[pool.'spec/python3']\ntransport = 'udp'", r"\[pool.spec/python3\] transport: must be one of auto, ipc"),
        ("[pool.'spec/python3']\nenv = {A = 1}", r"\[pool.spec/python3.env\] A: must be a string, got 1"),
        ("[pool]\n'spec/python3' = 2", r"\[pool\] spec/python3: must be a table, got 2"),
    ],
)
def test_bad_settings_name_the_file_the_key_and_the_problem(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))


def test_a_wrong_setting_names_the_file_that_set_it(tmp_path, monkeypatch, isolated):
    system = write(tmp_path, "[culling]\nidle_timeout = -1\n", "system.toml")
    monkeypatch.setattr(kernel_nanny.config, "SYSTEM_CONFIG", system)
    user = tmp_path / "config" / "kernel-nanny"
    user.mkdir(parents=True)
    user_file = write(user, "[culling]\nbusy_timeout = 60\n")
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == f"{system}: [culling] idle_timeout: must be a number of seconds >= 0, got -1"
    write(user, "[culling]\nidle_timeout = 5\n[kernels]\nmax_kernels = 99.5\n")  # overridden: no longer at fault
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == f"{user_file}: [kernels] max_kernels: must be a whole number >= 0, got 99.5"


def test_pools_and_their_limits_are_read(tmp_path):
    text = """
[pool]
max_kernels = 3
max_memory = "1GiB"
[pool."pyimport/kernel"]
size = 2
cwd = "/srv"
env = { MPLBACKEND = "agg" }
[pool."spec/python3"]
transport = "tcp"
encryption = "disabled"
"""
    config = load_config(write(tmp_path, text))
    assert config.pool_limits == PoolLimits(max_kernels=3, max_memory=1 << 30)
    assert config.pools == (
        PoolSettings(kernel_type="pyimport/kernel", size=2, cwd="/srv", env={"MPLBACKEND": "agg"}),
        PoolSettings(kernel_type="spec/python3", transport="tcp", encryption="disabled"),
    )
    assert load_config(write(tmp_path, "")).pools == ()


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "absent.toml")


def test_serve_refuses_a_bad_config_before_binding_anything(tmp_path, isolated):
    path = write(tmp_path, "[kernels]\nmax_kernels = 'many'\n")
    result = subprocess.run(
        [sys.executable, "-m", "kernel_nanny", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"{path}: [kernels] max_kernels: must be a whole number >= 0, got 'many'" in result.stderr
    assert not (isolated / "runtime" / "kernel-nanny-daemon.json").exists()


def kernel_nanny_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command; a hang fails the test at the timeout instead of passing silently."""
    return subprocess.run(
        [sys.executable, "-m", "kernel_nanny", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=None if env is None else {**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


#: Each bad value, and the end of the one line naming its file, table and key that refuses it.
BAD_VALUES = [
    ("[culling]\nidle_timeout = nan", "[culling] idle_timeout: must be a number of seconds >= 0, got nan"),
    ("[restart]\nbackoff = inf", "[restart] backoff: must be a number of seconds >= 0, got inf"),
    ("[daemon]\ntcp_endpoint = 'tcp://127.0.0.1:99999'", "[daemon] tcp_endpoint: must be 'tcp://ADDRESS:PORT'"),
    ("[providers.spec]\nsearch_path = 3", "[providers.spec] search_path: must be a list of non-empty strings, got 3"),
    ("[providers.spec]\nserch_path = ['/opt']", "[providers.spec] serch_path: unknown setting (known: search_path)"),
    (
        "[daemon]\ntcp_endpoint = 'tcp://no-such-host.invalid:7100'",
        "[daemon] tcp_endpoint: cannot listen on tcp://no-such-host.invalid:7100: no host or network interface",
    ),
]


@pytest.mark.parametrize("text, expected", BAD_VALUES)
def test_serve_refuses_each_bad_value_at_start_naming_file_table_and_key(tmp_path, isolated, text, expected):
    path = write(tmp_path, text)
    result = kernel_nanny_cli("serve", "--config", str(path))
    assert result.returncode == 3, result.stderr
    assert f"kernel-nanny: error: {path}: {expected}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (isolated / "runtime" / "kernel-nanny-daemon.json").exists()


def test_list_refuses_a_bad_provider_setting(tmp_path, isolated):
    path = write(tmp_path, "[providers.spec]\nsearch_path = 3")
    result = kernel_nanny_cli("list", env={"KERNEL_NANNY_CONFIG": str(path)})
    assert result.returncode == 3
    assert f"{path}: [providers.spec] search_path: must be a list of non-empty strings, got 3" in result.stderr


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda path: path.write_bytes(b'[daemon]\nlog_level = "\xff"\n'), "not valid TOML: not UTF-8 text (line 2)"),
        (lambda path: path.write_bytes(b"# caf\xe9\n"), "not valid TOML: not UTF-8 text (line 1)"),
        (lambda path: path.mkdir(), "is a directory, not a configuration file"),
    ],
    ids=["non-utf8-value", "latin1-comment", "directory"],
)
def test_an_unreadable_config_file_is_one_line_not_a_traceback(tmp_path, isolated, make, expected):
    path = tmp_path / "config.toml"
    make(path)
    for args, env in ((["serve", "--config", str(path)], None), (["list"], {"KERNEL_NANNY_CONFIG": str(path)})):
        result = kernel_nanny_cli(*args, env=env)
        assert result.returncode == 3, result.stderr
        assert result.stderr == f"kernel-nanny: error: {path}: {expected}\n"


def test_serve_exits_at_once_when_its_tcp_port_is_in_use(tmp_path, isolated):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        path = write(tmp_path, f"[daemon]\ntcp_endpoint = '{endpoint}'\n")
        result = kernel_nanny_cli("serve", "--config", str(path))
    assert result.returncode == 3, result.stderr
    assert f"{path}: [daemon] tcp_endpoint: cannot listen on {endpoint}: the port is in use" in result.stderr
    assert not (isolated / "runtime" / "kernel-nanny-daemon.json").exists()
    assert not (isolated / "runtime" / "kernel-nanny-daemon.sock").exists()


def test_both_journal_caps_at_zero_turn_the_journal_off(tmp_path):
    config = load_config(write(tmp_path, "[journal]\nmemory = 0\ndisk = 0\n"))
    assert config.journal.off
