"""A kernel type resolved to what runs it: a local command, or the provider that launches it its own way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..defaults import NANNY_REPORT_MARGIN
from ..launch.command import KernelCommand
from ..launch.request import LaunchRequest
from .provider import KernelProvider

if TYPE_CHECKING:
    from ..launch.spawn import StartedKernel
    from ..protocol import LaunchResult

__all__ = ["ResolvedKernel"]


@dataclass(frozen=True)
class ResolvedKernel:
    """What :meth:`KernelFinder.resolve() <kernel_nanny.KernelFinder.resolve>` found for a request.

    A ``command`` when the kernel is a local process that kernel-nanny starts
    itself (kernelspecs, ``pyimport``, Python environments, any provider whose
    :meth:`~kernel_nanny.KernelProvider.kernel_command` describes it), else the
    ``provider`` and the ``name`` it knows the kernel by (SSH, Docker, another
    daemon). A nanny is handed this, so it never looks the type up again.
    """

    command: KernelCommand | None = None
    provider: KernelProvider | None = None
    name: str = ""

    @property
    def report_margin(self) -> float:
        """Seconds past the start-up timeout to wait for a nanny's report: its own start, and the provider's
        margin (:attr:`KernelProvider.report_margin <kernel_nanny.KernelProvider.report_margin>`)."""
        return NANNY_REPORT_MARGIN + (self.provider.report_margin if self.provider is not None else 0.0)

    @property
    def supervised_elsewhere(self) -> bool:
        """The provider's kernels already run behind nannies (another daemon's): no local nanny is needed."""
        return self.provider is not None and self.provider.supervises_kernels

    async def launch(self, request: LaunchRequest, *, started: StartedKernel | None = None) -> LaunchResult:
        """Start the kernel here, without a nanny; returns once it is ready.

        ``started`` is the command's launch already begun (by a nanny, before its heavy imports).
        """
        if self.command is not None:
            from ..launch.launcher import launch_local  # here: a nanny reads this class before its heavy imports

            return await launch_local(
                self.command,
                kernel_name=request.kernel_type,
                cwd=request.cwd,
                launch_params=request.params,
                started=started,
            )
        assert self.provider is not None
        return await self.provider.launch(self.name, cwd=request.cwd, launch_params=request.params)
