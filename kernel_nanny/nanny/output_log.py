"""A kernel's own output on disk, bounded in size.

When the file passes ``max_bytes`` it becomes ``<name>.1`` (replacing the
previous one) and a new file starts, so a chatty kernel costs at most twice
``max_bytes`` of disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import open_private_file, space_checked

__all__ = ["DEFAULT_LOG_MAX_BYTES", "OutputLog"]

DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024


class OutputLog:
    def __init__(self, path: Path, max_bytes: int = DEFAULT_LOG_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fd = open_private_file(path)
        self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        if self._size + len(data) > self.max_bytes and self._size > 0:
            self._rotate()
        with space_checked(self.path):
            os.write(self._fd, data)
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._fd = open_private_file(self.path)
        self._size = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_log(path: Path) -> bytes:
    """The whole retained log: the rotated part, then the current file."""
    data = b""
    for part in (path.with_name(path.name + ".1"), path):
        try:
            data += part.read_bytes()
        except FileNotFoundError:
            pass
    return data
