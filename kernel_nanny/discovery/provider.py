"""The provider plug-in interface: a source of kernel types that can launch them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from ..launch.command import KernelCommand
from ..launch.params import LaunchParams
from ..protocol.manager import LaunchResult

__all__ = ["KernelProvider"]


class KernelProvider(ABC):
    """Base class for kernel providers, registered in the entry-point group
    ``kernel_nanny.kernel_providers``.

    A provider names kernel types ``<id>/<name>`` (``spec/python3``). Subclasses
    set :attr:`id` and implement :meth:`find_kernels` and :meth:`launch`.
    """

    #: The provider's id, the part of a kernel type id before the slash.
    id: ClassVar[str]
    #: True when the provider's kernels already run behind nannies (another daemon's):
    #: launching them "behind a nanny" then needs no local one.
    supervises_kernels: ClassVar[bool] = False
    #: Seconds past the start-up timeout a launch may still take to report, which its callers wait
    #: too: a batch job that starts running just before the timeout gets this long to report back.
    report_margin: ClassVar[float] = 0.0

    @abstractmethod
    def find_kernels(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """Yield ``(name, attributes)`` for each kernel type this provider offers.

        Attributes include ``display_name`` and ``language``, and where known
        ``argv``, ``interrupt_mode`` and ``metadata``.
        """

    @abstractmethod
    async def launch(
        self, name: str, *, cwd: str | None = None, launch_params: LaunchParams | Mapping[str, Any] | None = None
    ) -> LaunchResult:
        """Start kernel ``name`` and return ``(connection_info, manager)`` once it is ready.

        ``launch_params`` is a validated :class:`~kernel_nanny.LaunchParams`
        (also a read-only mapping, for providers written against the older
        dict); read it, never re-validate it. ``cwd`` is absolute or None.
        """

    def kernel_command(self, name: str) -> KernelCommand | None:
        """The command that runs kernel ``name`` as a local process, or None (the default).

        Providers whose kernels are local commands (kernelspecs, ``pyimport``)
        return it, so that callers can run it with changes, e.g. extra
        command-line switches (:class:`~kernel_nanny.execution.KernelExecution`). Raises
        :exc:`~kernel_nanny.NoSuchKernelType` for an unknown ``name``.
        """
        return None

    def load_config(self, config: Mapping[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Take provider-specific settings (from the daemon's configuration). Default: none.

        From the files, ``config`` is a :class:`~kernel_nanny.config.ConfigTable`
        (a mapping): its readers (``config.string("image", None)``...) raise a
        :exc:`~kernel_nanny.ConfigError` naming the file, the table and the
        key. A ``ValueError`` or ``TypeError`` is reported against the whole
        ``[providers.<id>]`` table.
        """

    async def remove_strays(self) -> None:  # noqa: B027 (optional hook)
        """Remove what this provider's kernels left behind when their owner died without cleaning up.

        A kernel outside the owner's process tree (a container, a remote
        process) does not die with a SIGKILLed owner by itself; lifelines
        cover most such deaths, and this is the second line of defence. The
        daemon calls it for every provider when it starts. Default: nothing to remove.
        """
