"""What ``[pool]`` configures: the pools of ready kernels the daemon keeps, and their limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..defaults import POOL_MAX_KERNELS

__all__ = ["PoolLimits", "PoolSettings"]


@dataclass(frozen=True, kw_only=True)
class PoolSettings:
    """One pool (``[pool."<kernel type>"]``): ``size`` ready kernels of ``kernel_type``.

    Its kernels start in ``cwd`` (None: the daemon's own directory, as a launch
    that gives none) with ``env`` added to their environment, over
    ``transport`` (None: the daemon's ``[kernels] transport``) with
    ``encryption`` (None: ``auto``), with ``switches`` added to the type's
    command line (as a launch's).
    """

    kernel_type: str
    size: int = 1
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    transport: str | None = None
    encryption: str | None = None
    switches: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PoolLimits:
    """What all pools together may hold: ``max_kernels`` kernels, ``max_memory`` bytes (0: no cap) of
    resident memory (kernels and their nannies); past either, pools are not refilled."""

    max_kernels: int = POOL_MAX_KERNELS
    max_memory: int = 0
