"""A manager's state as JSON: the envelope every ``to_json`` / ``from_json`` pair shares.

A kernel's manager can be rebuilt in another process from what its
``to_json()`` wrote ("re-attach from JSON", the same idea for every kind of
kernel). The JSON is one object: ``kind`` (``local``, ``ssh``, ``docker``,
``slurm``, ``nanny``: which manager's ``from_json`` reads it), ``version``
(:data:`MANAGER_STATE_VERSION`), and that manager's own fields. It holds the
kernel's key: whoever writes it writes it 0600. Reading checks the envelope
and the fields a manager needs, so a wrong document is refused with a message
naming what is wrong, before anything is contacted. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson

from .._exceptions import InvalidRequest, NoSuchKernel

__all__ = ["MANAGER_STATE_VERSION", "check_same_host", "dump_manager_state", "load_manager_state", "wrong_field"]

#: The envelope's version; a reader refuses any other (a newer writer may mean something else by a field).
MANAGER_STATE_VERSION = 1


def dump_manager_state(kind: str, fields: dict[str, Any]) -> str:
    """The JSON text of a ``kind`` manager's state ``fields`` (their ``kind`` and ``version`` come first)."""
    return orjson.dumps({"kind": kind, "version": MANAGER_STATE_VERSION, **fields}).decode()


def load_manager_state(data: str | bytes, kind: str, required: Collection[str]) -> dict[str, Any]:
    """The fields of a ``kind`` manager's state, read from ``data`` (what :func:`dump_manager_state` wrote).

    Raises :exc:`~kernel_nanny.InvalidRequest` (a :exc:`ValueError`) naming
    what is wrong: not JSON, another kind of manager's state, another version,
    or a field of ``required`` missing.
    """
    what = _state_of(kind)
    try:
        state = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the {what} is not JSON ({exc}): give it what the manager's to_json() returned") from None
    if not isinstance(state, dict):
        raise InvalidRequest(f"the {what} must be a JSON object, got {type(state).__name__}")
    found = state.get("kind")
    if found != kind:
        raise InvalidRequest(
            f"a {what} was expected, but this JSON is of kind {found!r}: re-attach it with the from_json() "
            f"of the manager of that kind"
        )
    if state.get("version") != MANAGER_STATE_VERSION:
        raise InvalidRequest(
            f"the {what} has version {state.get('version')!r}; this kernel-nanny reads version "
            f"{MANAGER_STATE_VERSION}: re-attach with the kernel-nanny version that wrote it"
        )
    missing = sorted(set(required) - set(state))
    if missing:
        raise InvalidRequest(f"the {what} lacks {', '.join(repr(m) for m in missing)}: it is incomplete or edited")
    return state


def check_same_host(state: dict[str, Any], what: str, here: str) -> None:
    """Refuse the state of ``what`` (a kernel named for messages) written on another host than ``here``."""
    if state["host"] != here:
        raise NoSuchKernel(f"{what} runs on host {state['host']!r}, not on this one ({here!r}): re-attach it there")


def wrong_field(kind: str, exc: Exception) -> InvalidRequest:
    """The error for a ``kind`` manager's state whose field has a wrong value (``exc`` says which and how)."""
    return InvalidRequest(f"the {_state_of(kind)} has a wrong field: {exc}")


def _state_of(kind: str) -> str:
    return f"kernel manager state of kind {kind!r}"
