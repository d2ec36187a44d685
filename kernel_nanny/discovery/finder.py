"""Find kernel types across all providers, resolve them, and launch them by type id."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import entrypoints

from .._exceptions import LaunchError, NoSuchKernelType
from ..config import config_files, provider_settings
from ..launch import KernelCommand, LaunchParams, LaunchResult
from ..launch.request import LaunchRequest
from .provider import KernelProvider
from .resolved import ResolvedKernel

__all__ = ["ENTRY_POINT_GROUP", "KernelFinder"]

log = logging.getLogger("kernel_nanny.discovery")

ENTRY_POINT_GROUP = "kernel_nanny.kernel_providers"


class KernelFinder:
    """Asks each provider which kernel types it offers; resolves and launches ``provider/name`` ids.

    ``KernelFinder.from_entrypoints()`` loads every installed provider, the
    built-in ones included; ``KernelFinder([MyProvider()])`` uses the ones given.
    To run a kernel behind a nanny, give the finder to
    :func:`~kernel_nanny.start_kernel` with a supervised
    :class:`~kernel_nanny.LaunchRequest`.
    """

    def __init__(self, providers: Iterable[KernelProvider]) -> None:
        self.providers: dict[str, KernelProvider] = {}
        for provider in providers:
            self.add_provider(provider)

    def add_provider(self, provider: KernelProvider) -> None:
        """Offer ``provider``'s kernel types too (a provider id already taken keeps its first owner)."""
        if provider.id in self.providers:
            log.warning("two providers claim the id %r; keeping the first", provider.id)
            return
        self.providers[provider.id] = provider

    @classmethod
    def from_entrypoints(
        cls, group: str = ENTRY_POINT_GROUP, *, config: str | os.PathLike[str] | None = None
    ) -> KernelFinder:
        """Load every provider registered in ``group``, configured from the ``[providers.<id>]`` tables
        of the configuration files (``config`` alone if given; see :doc:`/reference/configuration`).

        A provider that fails to import or instantiate is logged and skipped:
        one broken plug-in must not hide every other kernel. A wrong setting in
        a provider's table raises :exc:`~kernel_nanny.ConfigError`: the user
        asked for it, so it must not go unnoticed.
        """
        settings = provider_settings(config_files(config))
        providers = []
        for entry_point in entrypoints.get_group_all(group):
            try:
                provider = entry_point.load()()
            except Exception:
                log.warning("skipping kernel provider %r: it failed to load", entry_point.name, exc_info=True)
                continue
            if not isinstance(provider, KernelProvider):
                log.warning("skipping kernel provider %r: %r is not a KernelProvider", entry_point.name, provider)
                continue
            if provider.id in settings:
                try:  # the table's readers raise ConfigErrors that name the file, the table and the key
                    provider.load_config(settings[provider.id])
                except (ValueError, TypeError) as exc:
                    raise settings[provider.id].error(None, str(exc)) from None
            providers.append(provider)
        return cls(providers)

    def __repr__(self) -> str:
        return f"<KernelFinder providers={','.join(self.providers)}>"

    def find_kernels(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(type_id, attributes)`` for every kernel type of every provider."""
        for provider_id, provider in self.providers.items():
            try:
                for name, attributes in provider.find_kernels():
                    yield f"{provider_id}/{name}", attributes
            except Exception:
                log.warning("kernel provider %r failed to list its kernels", provider_id, exc_info=True)

    def provider(self, type_id: str) -> KernelProvider:
        """The provider of ``type_id`` (``provider/name``); :exc:`~kernel_nanny.NoSuchKernelType` if none."""
        provider_id, _, name = type_id.partition("/")
        provider = self.providers.get(provider_id)
        if provider is None or not name:
            raise self._unknown(type_id)
        return provider

    def kernel_command(self, type_id: str, switches: Sequence[str] = ()) -> KernelCommand | None:
        """The command that runs ``type_id`` as a local process, with ``switches`` appended.

        None when its provider launches its kernels its own way (SSH, Docker);
        such a type takes no switches (:exc:`~kernel_nanny.LaunchError`).
        """
        provider = self.provider(type_id)
        with self.explain_unknown_type(type_id):
            command = provider.kernel_command(type_id.partition("/")[2])
        if command is None:
            if switches:
                raise LaunchError(f"kernel type {type_id} takes no extra switches: its provider launches it itself")
            return None
        return dataclasses.replace(command, argv=[*command.argv, *switches]) if switches else command

    def resolve(self, request: LaunchRequest) -> ResolvedKernel:
        """What runs ``request``'s kernel: its explicit command (plus switches), the type's command, or its provider."""
        if request.command is not None:
            argv = [*request.command.argv, *request.switches]
            return ResolvedKernel(command=dataclasses.replace(request.command, argv=argv))
        command = self.kernel_command(request.kernel_type, request.switches)
        if command is not None:
            return ResolvedKernel(command=command)
        return ResolvedKernel(provider=self.provider(request.kernel_type), name=request.kernel_type.partition("/")[2])

    async def launch(
        self, type_id: str, *, cwd: str | None = None, launch_params: Mapping[str, Any] | None = None
    ) -> LaunchResult:
        """Launch a kernel of type ``type_id`` in this process; returns ``(connection_info, manager)`` once ready.

        The kernel is this process's child (or, for remote providers, tied to
        it). For a kernel that outlives this process, behind a nanny, use
        :func:`~kernel_nanny.start_kernel` with ``supervised=True``.
        """
        request = LaunchRequest(kernel_type=type_id, cwd=cwd, params=LaunchParams.from_mapping(launch_params))
        resolved = self.resolve(request)
        with self.explain_unknown_type(type_id):
            return await resolved.launch(request)

    @contextlib.contextmanager
    def explain_unknown_type(self, type_id: str) -> Iterator[None]:
        """Turn a provider's :exc:`~kernel_nanny.NoSuchKernelType` into one that lists every known type id."""
        try:
            yield
        except NoSuchKernelType:
            raise self._unknown(type_id) from None

    def _unknown(self, type_id: str) -> NoSuchKernelType:
        return NoSuchKernelType(type_id, [tid for tid, _ in self.find_kernels()])
