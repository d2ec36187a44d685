"""Find kernel types across all providers and launch them by type id."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import entrypoints

from .._exceptions import ConfigError, NoSuchKernelType
from ..config import RestartPolicy, config_files, provider_settings
from ..launch import LaunchResult
from ..launch.nanny_process import start_nanny
from .provider import KernelProvider

__all__ = ["ENTRY_POINT_GROUP", "KernelFinder"]

log = logging.getLogger("kernel_nanny.discovery")

ENTRY_POINT_GROUP = "kernel_nanny.kernel_providers"


class KernelFinder:
    """Asks each provider which kernel types it offers; launches ``provider/name`` ids.

    ``KernelFinder.from_entrypoints()`` loads every installed provider, the
    built-in ones included.
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
        files = config_files(config)
        settings = provider_settings(files)
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
                try:
                    provider.load_config(settings[provider.id])
                except (ConfigError, ValueError, TypeError) as exc:
                    where = " or ".join(str(f) for f in files)
                    raise ConfigError(f"{where}: [providers.{provider.id}] {exc}") from None
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

    async def launch(
        self,
        type_id: str,
        *,
        cwd: str | None = None,
        launch_params: Mapping[str, Any] | None = None,
        nanny: bool = False,
        name: str | None = None,
        restart_policy: RestartPolicy | None = None,
    ) -> LaunchResult:
        """Launch a kernel of type ``type_id`` (``provider/name``); returns ``(connection_info, manager)``.

        With ``nanny=True`` the kernel runs behind its own nanny process (which
        outlives this one), the manager is a :class:`~kernel_nanny.ManagerClient`
        and the connection info carries the nanny's ports; ``name`` labels it
        and ``restart_policy`` says how it is restarted after a crash. Kernels of
        providers that supervise their own (another daemon's) are launched there.
        """
        if nanny and not self._provider_for(type_id).supervises_kernels:
            try:
                return await start_nanny(
                    type_id, name=name, cwd=cwd, launch_params=launch_params, restart_policy=restart_policy
                )
            except NoSuchKernelType:
                raise NoSuchKernelType(type_id, [tid for tid, _ in self.find_kernels()]) from None
        provider_id, _, name = type_id.partition("/")
        provider = self.providers.get(provider_id)
        try:
            if provider is None or not name:
                raise NoSuchKernelType(type_id)
            return await provider.launch(name, cwd=cwd, launch_params=launch_params)
        except NoSuchKernelType:
            raise NoSuchKernelType(type_id, [tid for tid, _ in self.find_kernels()]) from None

    def _provider_for(self, type_id: str) -> KernelProvider:
        provider_id, _, name = type_id.partition("/")
        provider = self.providers.get(provider_id)
        if provider is None or not name:
            raise NoSuchKernelType(type_id, [tid for tid, _ in self.find_kernels()])
        return provider
