"""The service: launches kernels behind nannies on request and keeps an index of them
(see :mod:`kernel_nanny.daemon.service`); its configuration, API keys, state records and sd_notify."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .config import DaemonConfig, load_config
    from .service import DaemonAlreadyRunning, NannyDaemon

__all__ = ["DaemonAlreadyRunning", "DaemonConfig", "NannyDaemon", "load_config"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DaemonAlreadyRunning": ".service",
        "DaemonConfig": ".config",
        "NannyDaemon": ".service",
        "load_config": ".config",
    },
)
