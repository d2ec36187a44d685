"""sd_notify: tell systemd about the daemon's state. A few lines, a no-op outside systemd.

systemd passes ``NOTIFY_SOCKET`` (a datagram socket path, or ``@name`` for an
abstract one) to ``Type=notify`` services, and ``WATCHDOG_USEC`` (with
``WATCHDOG_PID``) when the unit sets ``WatchdogSec``. Sending never raises:
a daemon must not die because its supervisor is gone.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["SystemdNotifier"]

log = logging.getLogger("kernel_nanny.daemon")


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self._watchdog_usec = int(usec) if usec.isdigit() and (not pid or pid == str(os.getpid())) else 0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields; True if systemd got them."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), self._address)
            return True
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)
            return False

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def stopping(self, status: str = "stopping; kernels keep running") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    @property
    def watchdog_interval(self) -> float | None:
        """How often to send ``WATCHDOG=1`` (half the unit's WatchdogSec), or None without a watchdog."""
        return self._watchdog_usec / 2e6 if self._watchdog_usec else None
