"""The launch parameters a nanny gives its kernel (light: read before the kernel starts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..paths import nanny_state_dir

__all__ = ["kernel_launch_params"]


def kernel_launch_params(kernel_id: str, launch_params: Mapping[str, Any]) -> dict[str, Any]:
    """``launch_params`` with the kernel's connection file in the nanny's private directory, and the
    kernel process's own output captured (the nanny relays it as events and logs it) rather than echoed."""
    return {**launch_params, "connection_file": str(nanny_state_dir(kernel_id) / "kernel.json"), "echo_output": False}
