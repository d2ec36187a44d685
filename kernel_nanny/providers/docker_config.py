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

from ..config import ConfigTable
from ..launch.command import ipykernel_command

__all__ = ["DEFAULT_COMMAND", "DockerConfig", "DockerImage", "parse_docker_config"]

#: ipykernel, as Debian's python3-ipykernel (and most Python images) install it.
DEFAULT_COMMAND = tuple(ipykernel_command("python3").argv)
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
    """Validate a ``[providers.docker]`` table; a wrong setting raises :exc:`~kernel_nanny.ConfigError`
    naming the file, the table and the key."""
    settings = ConfigTable.of(table, "providers.docker")
    settings.check_keys({"host", "images"})
    host = settings.string("host", None)
    images = settings.table("images")
    parsed = {}
    for name in images:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise images.error(name, "a kernel type name may hold only letters, digits, '.', '_' and '-'")
        parsed[name] = _parse_image(name, images.table(name))
    return DockerConfig(host=host, images=parsed)


def _parse_image(name: str, table: ConfigTable) -> DockerImage:
    table.check_keys(_IMAGE_KEYS)
    image = table.string("image", None)
    if image is None:
        raise table.error("image", "missing (the image to run, e.g. 'localhost/ipykernel:bookworm')")
    command = table.string_list("command", DEFAULT_COMMAND)
    if not any("{connection_file}" in arg for arg in command):
        raise table.error("command", "must pass the kernel its connection file: include '{connection_file}'")
    mounts = table.string_list("mounts", ())
    for mount in mounts:
        parts = mount.split(":")
        if len(parts) not in _MOUNT_PARTS or not all(parts) or not parts[1].startswith("/"):
            raise table.error("mounts", f"{mount!r} is not 'source:/target[:ro|rw]' (docker -v syntax)")
    environment = table.get("environment", {})
    if not isinstance(environment, Mapping) or not all(isinstance(v, str) for v in environment.values()):
        raise table.invalid("environment", 'a table of strings (environment = { NAME = "value" })')
    memory = table.get("memory")
    if memory is not None and not (
        (isinstance(memory, int) and not isinstance(memory, bool) and memory > 0)
        or (isinstance(memory, str) and _MEMORY.match(memory))
    ):
        raise table.invalid("memory", "bytes or a size such as '512m' or '2g'")
    network = table.string("network", None)
    if network == "none":
        raise table.error("network", "cannot be 'none': the kernel's ports must be reachable")
    workdir = table.string("workdir", None)
    if workdir is not None and not workdir.startswith("/"):
        raise table.invalid("workdir", "an absolute path in the container")
    given: dict[str, Any] = {  # the dataclass's defaults stand for what is not given
        "display_name": table.string("display_name", None),
        "language": table.string("language", None),
        "interrupt_mode": table.string("interrupt_mode", None, choices=("signal", "message")),
        "network": network,
    }
    return DockerImage(
        name=name,
        image=image,
        command=command,
        mounts=mounts,
        environment=dict(environment),
        memory=memory,
        cpus=table.number("cpus", None, what="a number of CPUs", above=True),
        workdir=workdir,
        **{setting: value for setting, value in given.items() if value is not None},
    )
