"""Binding a pooled kernel to the launch that takes it: the launch's working directory and environment, set in place.

A pooled kernel was started before anyone asked for it, in its pool's
directory and environment. A launch asking for another directory or more
environment variables can still take it when the kernel can change both while
it runs. ipykernel can (:func:`ipykernel_binding`): silent code, kept out of
the history, that checks the kernel never ran code, changes directory, sets
the variables, and moves ``sys.path[0]`` and IPython's directory history
(``_dh``) along, so the first cell the user runs is ``In [1]`` and sees what a
kernel started there would.

Variables read only when an interpreter starts (``PYTHON*``, ``LD_*``) cannot
be set afterwards: a launch that sets one starts a fresh kernel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .command import KernelCommand

__all__ = ["START_ONLY_ENV_PREFIXES", "can_bind", "ipykernel_binding", "start_only_variables"]

#: Environment variables (by prefix) that act only when a process starts: the interpreter's, the loader's.
START_ONLY_ENV_PREFIXES = ("PYTHON", "LD_")
#: Modules that run ipykernel as ``python -m MODULE``.
_IPYKERNEL_MODULES = {"ipykernel_launcher", "ipykernel", "kernel_nanny.ipykernel_launcher"}


def can_bind(command: KernelCommand | None) -> bool:
    """Whether a kernel run by ``command`` can take a launch's cwd and environment while it runs (ipykernel)."""
    if command is None:
        return False
    argv = command.argv
    return any(arg == "-m" and module in _IPYKERNEL_MODULES for arg, module in zip(argv, argv[1:], strict=False))


def start_only_variables(env: Mapping[str, str]) -> list[str]:
    """The variables of ``env`` that a running kernel cannot take (see :data:`START_ONLY_ENV_PREFIXES`)."""
    return sorted(name for name in env if name.startswith(START_ONLY_ENV_PREFIXES))


def ipykernel_binding(*, cwd: str, env: Mapping[str, str], unset: Sequence[str] = (), started_in: str) -> str:
    """The code that binds a fresh ipykernel to ``cwd`` and ``env`` (and removes the variables ``unset``);
    run it silently, out of the history.

    ``started_in`` is the directory the kernel started in: a ``sys.path[0]`` naming it becomes ``cwd``.
    It raises (and changes nothing) if the kernel ran code already.
    """
    arguments = {"cwd": str(Path(cwd)), "env": dict(env), "unset": list(unset), "started_in": started_in}
    return f"""\
def __kernel_nanny_bind(a):
    import os, sys
    shell = get_ipython()
    if shell.execution_count != 1:
        raise RuntimeError("this pooled kernel ran code already")
    os.chdir(a["cwd"])
    os.environ.update(a["env"])
    for name in a["unset"]:
        os.environ.pop(name, None)
    if sys.path and sys.path[0] == a["started_in"]:
        sys.path[0] = a["cwd"]
    history = shell.user_ns.get("_dh")
    if isinstance(history, list) and history:
        history[:] = [type(history[0])(a["cwd"])]
try:
    __kernel_nanny_bind({arguments!r})
finally:
    del __kernel_nanny_bind
"""
