"""The ``[providers.docker]`` table: the engine to use and one image table per kernel type.

Parsed and validated here, without the docker SDK, so that a wrong setting is
reported (naming its key) when the configuration is read, and listing kernel
types never needs the engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ConfigError

__all__ = ["DEFAULT_COMMAND", "DockerConfig", "DockerImage", "parse_docker_config"]

#: ipykernel, as Debian's python3-ipykernel (and most Python images) install it.
DEFAULT_COMMAND = ("python3", "-m", "ipykernel_launcher", "-f", "{connection_file}")
#: Docker's ``mem_limit`` syntax: bytes, or a number with a unit b, k, m or g.
_MEMORY = re.compile(r"^\d+(\.\d+)?[bkmg]?$", re.IGNORECASE)
#: Docker's ``-v`` syntax: ``source:target`` or ``source:target:options``.
_MOUNT_PARTS = (2, 3)


@dataclass(frozen=True, kw_only=True)
class DockerImage:
    """One kernel type: the image, what to run in it, and how to confine it."""

    name: str
    image: str
    command: tuple[str, ...] = DEFAULT_COMMAND
    display_name: str = ""
    language: str = "python"
    interrupt_mode: str = "signal"
    mounts: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    memory: str | int | None = None
    cpus: float | None = None
    network: str = "bridge"
    workdir: str | None = None

    @property
    def title(self) -> str:
        return self.display_name or f"{self.image} (Docker)"


@dataclass(frozen=True, kw_only=True)
class DockerConfig:
    """``host``: the engine's URL (None: ``$DOCKER_HOST``, else the SDK's default socket)."""

    host: str | None = None
    images: Mapping[str, DockerImage] = field(default_factory=dict)


_IMAGE_KEYS = {
    "image",
    "command",
    "display_name",
    "language",
    "interrupt_mode",
    "mounts",
    "environment",
    "memory",
    "cpus",
    "network",
    "workdir",
}


def parse_docker_config(table: Mapping[str, Any]) -> DockerConfig:
    """Validate a ``[providers.docker]`` table; a :exc:`ConfigError` names the key that is wrong."""
    _no_unknown_keys(table, {"host", "images"}, "")
    host = table.get("host")
    if host is not None and (not isinstance(host, str) or not host):
        raise ConfigError(f"host: must be the engine's URL, e.g. 'unix:///var/run/docker.sock', got {host!r}")
    images = table.get("images", {})
    if not isinstance(images, Mapping):
        raise ConfigError("images: must be a table of images ([providers.docker.images.<name>])")
    parsed = {}
    for name, settings in images.items():
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ConfigError(f"images.{name}: a kernel type name may hold only letters, digits, '.', '_' and '-'")
        if not isinstance(settings, Mapping):
            raise ConfigError(f"images.{name}: must be a table")
        parsed[name] = _parse_image(name, settings)
    return DockerConfig(host=host, images=parsed)


def _no_unknown_keys(table: Mapping[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown setting; known: {', '.join(sorted(known))}")


def _parse_image(name: str, table: Mapping[str, Any]) -> DockerImage:
    prefix = f"images.{name}."
    _no_unknown_keys(table, _IMAGE_KEYS, prefix)

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{prefix}{key}: {problem}, got {table[key]!r}")

    def string(key: str) -> str | None:
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise fail(key, "must be a non-empty string")
        return value

    def strings(key: str) -> tuple[str, ...] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail(key, "must be a list of non-empty strings")
        return tuple(value)

    image = string("image")
    if image is None:
        raise ConfigError(f"{prefix}image: missing (the image to run, e.g. 'localhost/ipykernel:bookworm')")
    command = strings("command") or DEFAULT_COMMAND
    if not any("{connection_file}" in arg for arg in command):
        raise fail("command", "must pass the kernel its connection file: include '{connection_file}'")
    mounts = strings("mounts") or ()
    for mount in mounts:
        parts = mount.split(":")
        if len(parts) not in _MOUNT_PARTS or not all(parts) or not parts[1].startswith("/"):
            raise ConfigError(f"{prefix}mounts: {mount!r} is not 'source:/target[:ro|rw]' (docker -v syntax)")
    environment = table.get("environment", {})
    if not isinstance(environment, Mapping) or not all(isinstance(v, str) for v in environment.values()):
        raise fail("environment", 'must be a table of strings (environment = { NAME = "value" })')
    memory = table.get("memory")
    if memory is not None and not (
        (isinstance(memory, int) and not isinstance(memory, bool) and memory > 0)
        or (isinstance(memory, str) and _MEMORY.match(memory))
    ):
        raise fail("memory", "must be bytes or a size such as '512m' or '2g'")
    cpus = table.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or cpus <= 0):
        raise fail("cpus", "must be a number of CPUs > 0, such as 1.5")
    network = string("network") or "bridge"
    if network == "none":
        raise fail("network", "cannot be 'none': the kernel's ports must be reachable")
    workdir = string("workdir")
    if workdir is not None and not workdir.startswith("/"):
        raise fail("workdir", "must be an absolute path in the container")
    interrupt_mode = string("interrupt_mode") or "signal"
    if interrupt_mode not in ("signal", "message"):
        raise fail("interrupt_mode", "must be 'signal' or 'message'")
    return DockerImage(
        name=name,
        image=image,
        command=command,
        display_name=string("display_name") or "",
        language=string("language") or "python",
        interrupt_mode=interrupt_mode,
        mounts=mounts,
        environment=dict(environment),
        memory=memory,
        cpus=float(cpus) if cpus is not None else None,
        network=network,
        workdir=workdir,
    )
