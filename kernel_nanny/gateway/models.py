"""Kernel types and kernels as the Jupyter REST API shows them (kernelspec and kernel models).

Kernelspec names must survive URLs and JupyterLab's use of them as keys, so
a kernel type id's ``/`` becomes ``--``; the common case reads as users know
it: ``spec/python3`` is ``python3``, so a notebook saved with that kernelspec
opens with its kernel. Kernel ids are shown in the UUID form jupyter_server's
routes expect.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["kernel_model", "kernelspec_model", "kernelspec_name", "public_kernel_id", "resource_files", "type_id_of"]

_SPEC_PREFIX = "spec/"
_SEPARATOR = "--"
#: Files of a kernelspec's directory that are its resources (what jupyter_server serves too).
_RESOURCE_PREFIXES = ("logo-", "kernel.js", "kernel.css")


def kernelspec_name(type_id: str) -> str:
    """``spec/python3`` -> ``python3``; ``ssh/gpu/python3`` -> ``ssh--gpu--python3``."""
    rest = type_id[len(_SPEC_PREFIX) :] if type_id.startswith(_SPEC_PREFIX) else None
    if rest and "/" not in rest and _SEPARATOR not in rest:
        return rest
    return type_id.replace("/", _SEPARATOR)


def type_id_of(name: str, known: Mapping[str, str]) -> str:
    """The kernel type a kernelspec name stands for: from ``known`` (name -> type id), else by the rule."""
    if name in known:
        return known[name]
    return name.replace(_SEPARATOR, "/") if _SEPARATOR in name else _SPEC_PREFIX + name


def public_kernel_id(kernel_id: str) -> str:
    """The daemon's 32-hex kernel id as a UUID string (``8-4-4-4-12``), which jupyter_server's routes match."""
    try:
        return str(uuid.UUID(hex=kernel_id))
    except ValueError:
        return kernel_id


def resource_files(resource_dir: str | None) -> dict[str, Path]:
    """The kernelspec's resource files by name (``logo-64x64.png``...), from its directory if it has one."""
    if not resource_dir:
        return {}
    try:
        entries = list(Path(resource_dir).iterdir())
    except OSError:
        return {}
    return {p.name: p for p in entries if p.name.startswith(_RESOURCE_PREFIXES) and p.is_file()}


def kernelspec_model(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A kernel type (``id`` and attributes) as ``{"name", "spec", "resources"}``, its type id in the metadata."""
    type_id = attrs["id"]
    name = kernelspec_name(type_id)
    metadata = dict(attrs.get("metadata") or {})
    metadata["kernel_nanny"] = {"type_id": type_id, "provider": type_id.split("/", 1)[0]}
    files = resource_files(attrs.get("resource_dir"))
    return {
        "name": name,
        "spec": {
            "argv": list(attrs.get("argv") or []),
            "display_name": attrs.get("display_name") or type_id,
            "language": attrs.get("language") or "",
            "interrupt_mode": attrs.get("interrupt_mode") or "signal",
            "env": {},
            "metadata": metadata,
        },
        "resources": {
            file.rsplit(".", 1)[0] if file.startswith("logo-") else file: f"/kernelspecs/{name}/{file}"
            for file in sorted(files)
        },
    }


def kernel_model(entry: Mapping[str, Any], connections: int) -> dict[str, Any]:
    """A daemon kernel entry (with its nanny's info) as jupyter_server's kernel model.

    ``execution_state`` is the kernel's last status while it runs, else the
    nanny's state (``restarting``, ``dead``...); ``last_activity`` is when the
    kernel last published anything, which jupyter_server's culling reads.
    """
    info = entry.get("info") or {}
    state = info.get("state")
    if state == "running":
        execution_state = info.get("execution_state", "unknown")
    else:
        execution_state = state or "unknown"
    activity = info.get("last_activity", entry.get("created"))
    return {
        "id": public_kernel_id(entry["kernel_id"]),
        "name": kernelspec_name(entry["kernel_type"]),
        "last_activity": _iso(activity),
        "execution_state": execution_state,
        "connections": connections,
    }


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    # jupyter_server parses exactly this form (microseconds and Z), or fails the request.
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
