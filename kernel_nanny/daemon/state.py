"""The daemon's state directory: one record per nanny, written atomically.

A record is a small JSON file (``kernels/<kernel_id>.json``) that lets a new
daemon find and re-adopt a nanny after a restart or a crash: where its
connection file is and which process it is. Writes go to a temporary file that
is fsynced and renamed over the record, so a crash or a full disk leaves the
old record intact. A record that cannot be read is moved aside as
``<name>.corrupt`` and reported, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..client.running import ProcessIdentity
from ..paths import secure_directory, write_private_file

__all__ = ["KernelRecord", "StateStore"]

log = logging.getLogger("kernel_nanny.daemon")


@dataclass(frozen=True)
class KernelRecord:
    kernel_id: str
    kernel_type: str
    connection_file: str
    nanny_pid: int
    name: str | None = None
    created: float = 0.0
    #: The nanny's start time (see :class:`~kernel_nanny.client.running.ProcessIdentity`); a record
    #: without one cannot prove its pid is still the nanny's, and is pruned.
    nanny_start_time: int | None = None
    #: The key of the pool the kernel waits in, unclaimed (see :mod:`kernel_nanny.daemon.pool`); None once taken.
    pool: str | None = None

    @property
    def nanny(self) -> ProcessIdentity:
        return ProcessIdentity(self.nanny_pid, self.nanny_start_time)

    @classmethod
    def from_json(cls, data: Any) -> KernelRecord:
        if not isinstance(data, dict):
            raise ValueError("a record must be a JSON object")
        missing = {"kernel_id", "kernel_type", "connection_file", "nanny_pid"} - set(data)
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        record = cls(**{k: data[k] for k in data if k in cls.__dataclass_fields__})
        if not isinstance(record.nanny_pid, int) or not isinstance(record.kernel_id, str):
            raise ValueError("nanny_pid must be a number and kernel_id a string")
        return record


class StateStore:
    """Kernel records under ``<state_dir>/kernels`` (0700 directories, 0600 files)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = secure_directory(state_dir)
        self.kernels_dir = secure_directory(state_dir / "kernels")
        #: Records found unreadable at the last :meth:`load`, moved aside (for reporting).
        self.set_aside: list[Path] = []

    def _path(self, kernel_id: str) -> Path:
        return self.kernels_dir / f"{kernel_id}.json"

    def save(self, record: KernelRecord) -> None:
        write_private_file(self._path(record.kernel_id), json.dumps(asdict(record), indent=2).encode())

    def remove(self, kernel_id: str) -> None:
        self._path(kernel_id).unlink(missing_ok=True)

    def load(self) -> Iterator[KernelRecord]:
        """Every readable record; unreadable ones are set aside as ``.corrupt`` and logged."""
        self.set_aside = []
        for path in sorted(self.kernels_dir.glob("*.json")):
            try:
                record = KernelRecord.from_json(json.loads(path.read_text()))
                if record.kernel_id != path.stem:
                    raise ValueError(f"its kernel_id {record.kernel_id!r} does not match the file name")
            except (OSError, ValueError, TypeError) as exc:
                aside = path.with_name(path.name + ".corrupt")
                os.replace(path, aside)
                self.set_aside.append(aside)
                log.warning("kernel record %s is unreadable (%s); moved to %s", path.name, exc, aside.name)
                continue
            yield record
