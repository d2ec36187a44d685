"""The configuration readers: one message style naming the file, the table, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_nanny import ConfigError
from kernel_nanny.config import ConfigTable, provider_settings
from kernel_nanny.providers.docker_config import parse_docker_config

FILE = Path("/etc/kernel-nanny/config.toml")


def table(**values: object) -> ConfigTable:
    return ConfigTable(values, "providers.x.hosts.gpu", FILE)


@pytest.mark.parametrize(
    ("read", "values", "message"),
    [
        (lambda t: t.string("user", None), {"user": 3}, "user: must be a non-empty string, got 3"),
        (lambda t: t.string("user", None), {"user": ""}, "user: must be a non-empty string, got ''"),
        (lambda t: t.string("mode", None, choices=("a", "b")), {"mode": "c"}, "mode: must be one of a, b, got 'c'"),
        (lambda t: t.path("key", None), {"key": ["x"]}, "key: must be a path, got ['x']"),
        (lambda t: t.string_list("keys", ()), {"keys": "k"}, "keys: must be a list of non-empty strings, got 'k'"),
        (lambda t: t.number("wait", None), {"wait": -1}, "wait: must be a number of seconds >= 0, got -1"),
        (lambda t: t.number("wait", None), {"wait": float("nan")}, "wait: must be a number of seconds >= 0, got nan"),
        (lambda t: t.number("wait", None), {"wait": float("inf")}, "wait: must be a number of seconds >= 0, got inf"),
        (lambda t: t.number("wait", None, above=True), {"wait": 0}, "wait: must be a number of seconds > 0, got 0"),
        (lambda t: t.number("wait", None), {"wait": True}, "wait: must be a number of seconds >= 0, got True"),
        (
            lambda t: t.whole_number("port", None, minimum=1, maximum=65535),
            {"port": 99999},
            "port: must be a whole number from 1 to 65535, got 99999",
        ),
        (lambda t: t.whole_number("n", None), {"n": 2.0}, "n: must be a whole number >= 0, got 2.0"),
        (lambda t: t.table("sub"), {"sub": 3}, "sub: must be a table, got 3"),
        (lambda t: t.check_keys({"host"}), {"hots": 1}, "hots: unknown setting (known: host)"),
    ],
)
def test_every_reader_names_the_file_the_table_and_the_key(read, values, message):
    with pytest.raises(ConfigError) as caught:
        read(table(**values))
    assert str(caught.value) == f"{FILE}: [providers.x.hosts.gpu] {message}"


def test_readers_return_the_value_or_the_default():
    settings = table(user="ada", key="~/id", keys=["a"], wait=2, port=22, sub={"a": 1})
    assert settings.string("user", None) == "ada" and settings.string("absent", "x") == "x"
    assert settings.path("key", None) == Path("~/id").expanduser()
    assert settings.string_list("keys", ()) == ("a",)
    assert settings.number("wait", None) == 2.0 and isinstance(settings.number("wait", None), float)
    assert settings.whole_number("port", None, minimum=1, maximum=65535) == 22
    sub = settings.table("sub")
    assert sub.name == "providers.x.hosts.gpu.sub" and dict(sub) == {"a": 1} and sub.file == FILE
    assert dict(settings.table("absent")) == {}


def test_a_file_s_top_level_names_the_section():
    top = ConfigTable({"kernels": 3}, file=FILE)
    with pytest.raises(ConfigError) as caught:
        top.table("kernels")
    assert str(caught.value) == f"{FILE}: [kernels]: must be a table, got 3"


def test_merged_tables_name_the_file_that_set_the_wrong_key(tmp_path):
    system, user = tmp_path / "system.toml", tmp_path / "user.toml"
    system.write_text('[providers.docker.images.py]\nimage = "x"\ncpus = -2\n')
    user.write_text('[providers.docker]\nhost = "unix:///run/docker.sock"\n')
    settings = provider_settings([system, user])
    assert settings["docker"]["host"] == "unix:///run/docker.sock"  # later files override key by key
    with pytest.raises(ConfigError) as caught:
        parse_docker_config(settings["docker"])
    assert str(caught.value) == f"{system}: [providers.docker.images.py] cpus: must be a number of CPUs > 0, got -2"


def test_a_table_given_in_code_is_named_without_a_file():
    with pytest.raises(ConfigError) as caught:
        parse_docker_config({"images": {"py": {"image": "x", "workdir": "rel"}}})
    assert (
        str(caught.value)
        == "[providers.docker.images.py] workdir: must be an absolute path in the container, got 'rel'"
    )
