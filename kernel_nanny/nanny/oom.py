"""Was a process killed for running out of memory? Ask its memory cgroup.

The kernel OOM killer sends SIGKILL, which looks like any other kill. The
memory cgroup counts OOM kills (``oom_kill`` in cgroup v2's ``memory.events``
or v1's ``memory.oom_control``): a SIGKILL death with a higher count than at
start is reported as ``oom``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["OomCounter"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


class OomCounter:
    """Reads the OOM-kill counter of the memory cgroup a process is in."""

    def __init__(self, pid: int) -> None:
        self._counter_file = _counter_file(pid)
        self.baseline = self.read()

    def read(self) -> int | None:
        if self._counter_file is None:
            return None
        try:
            for line in self._counter_file.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return None

    def increased(self) -> bool:
        now = self.read()
        return now is not None and self.baseline is not None and now > self.baseline


def _counter_file(pid: int) -> Path | None:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidate = CGROUP_ROOT / "memory" / path.lstrip("/") / "memory.oom_control"
            if candidate.exists():
                return candidate
        if controllers == "":
            candidate = CGROUP_ROOT / path.lstrip("/") / "memory.events"
            if candidate.exists():
                return candidate
            unified = CGROUP_ROOT / "unified" / path.lstrip("/") / "memory.events"
            if unified.exists():
                return unified
    return None
