"""Errors across sockets: one table between error names on the wire and exception classes.

A nanny or daemon that cannot carry out a request answers ``status: error``
with an ``ename`` and an ``evalue`` (the message). The server takes the name
from :data:`ERRORS` for the class it raised; the client raises the class the
name maps back to, so callers write ``except NoSuchKernel`` instead of
comparing ``ename`` strings (asyncssh maps SSH disconnect codes to exception
classes the same way). The names are part of the nanny and daemon protocols;
their reference pages list them.

An error raised from a reply is also a :class:`~kernel_nanny.KernelError`
(``ename``, ``evalue``), whatever its class, so code that catches
``KernelError`` around requests still catches every refusal. A name not in
the table comes back as a plain ``KernelError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

from .._exceptions import (
    AmbiguousKernel,
    AuthenticationFailed,
    InvalidRequest,
    KernelError,
    KernelExecutableNotFound,
    KernelNannyError,
    KernelNotRunning,
    KernelTypeNotAllowed,
    LaunchError,
    MaxKernels,
    NannyStopping,
    NannyUnavailable,
    NoSuchKernel,
    NoSuchKernelType,
    UnknownRequest,
)

__all__ = ["ERRORS", "error_from_reply", "error_name", "error_reply", "is_known_error"]

#: Every error name a nanny or daemon sends on purpose, and its class.
ERRORS: Mapping[str, type[KernelNannyError]] = MappingProxyType(
    {
        "AmbiguousKernel": AmbiguousKernel,
        "AuthenticationFailed": AuthenticationFailed,
        "KernelExecutableNotFound": KernelExecutableNotFound,
        "KernelNotRunning": KernelNotRunning,
        "KernelTypeNotAllowed": KernelTypeNotAllowed,
        "LaunchError": LaunchError,
        "MaxKernels": MaxKernels,
        "NannyStopping": NannyStopping,
        "NannyUnavailable": NannyUnavailable,
        "NoSuchKernel": NoSuchKernel,
        "NoSuchKernelType": NoSuchKernelType,
        "UnknownRequest": UnknownRequest,
        "ValueError": InvalidRequest,  # the name predates the class; any ValueError crosses as it
    }
)

_NAMES = {cls: name for name, cls in ERRORS.items()}


def _replied(cls: type[KernelNannyError]) -> type[KernelError]:
    """``cls`` made a :class:`KernelError` too, for errors that arrive in a reply."""
    namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    return cast("type[KernelError]", type(cls.__name__, (KernelError, cls), namespace))


_REPLIED = {name: _replied(cls) for name, cls in ERRORS.items()}


def error_name(error: BaseException) -> str:
    """The ``ename`` ``error`` crosses a socket under.

    A :class:`KernelError` keeps the name it arrived with (a daemon passing
    on its nanny's refusal); otherwise the table's name for the error's class
    or its nearest listed base class; otherwise its class name.
    """
    if isinstance(error, KernelError):
        return error.ename
    for cls in type(error).__mro__:
        name = _NAMES.get(cls)
        if name is not None:
            return name
    return type(error).__name__


def is_known_error(error: BaseException) -> bool:
    """Whether ``error`` crosses under a name of the table (a refusal, not an unexpected failure)."""
    return error_name(error) in ERRORS


def error_reply(error: BaseException) -> dict[str, Any]:
    """The content of the error reply that reports ``error``."""
    evalue = error.evalue if isinstance(error, KernelError) else str(error)
    return {"status": "error", "ename": error_name(error), "evalue": evalue}


def error_from_reply(content: Mapping[str, Any]) -> KernelError:
    """The exception an error reply's content stands for (``ename`` looked up in :data:`ERRORS`)."""
    ename = str(content.get("ename", "Error"))
    evalue = str(content.get("evalue", ""))
    traceback = content.get("traceback")
    error_class = _REPLIED.get(ename, KernelError)
    return error_class(ename, evalue, list(traceback) if isinstance(traceback, list) else None)
