"""Where kernel-nanny keeps its files: the user's XDG directories, and a 0700 runtime directory
with 0600 files written atomically for secrets.

Every directory the package uses is computed here and nowhere else. This
module is a leaf (it reads no configuration), so that the configuration
itself can find its files through it.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

from ._exceptions import LaunchError

__all__ = [
    "daemon_discovery_file",
    "nanny_state_dir",
    "public_connection_file",
    "runtime_dir",
    "secure_directory",
    "systemd_user_unit_dir",
    "user_config_dir",
    "user_state_dir",
    "write_private_file",
]

log = logging.getLogger("kernel_nanny.launch")


def _xdg_home(variable: str, default: str) -> Path:
    """An XDG base directory: ``$variable`` if set and not empty, else ``~/default``."""
    return Path(os.environ.get(variable) or Path.home() / default)


def user_config_dir() -> Path:
    """The user's configuration directory: ``$XDG_CONFIG_HOME/kernel-nanny`` (``~/.config/kernel-nanny``)."""
    return _xdg_home("XDG_CONFIG_HOME", ".config") / "kernel-nanny"


def user_state_dir() -> Path:
    """The daemon's default state directory (records, keys): ``$XDG_STATE_HOME/kernel-nanny``
    (``~/.local/state/kernel-nanny``)."""
    return _xdg_home("XDG_STATE_HOME", ".local/state") / "kernel-nanny"


def systemd_user_unit_dir() -> Path:
    """Where systemd's user manager looks for the user's own units: ``$XDG_CONFIG_HOME/systemd/user``."""
    return _xdg_home("XDG_CONFIG_HOME", ".config") / "systemd" / "user"


def runtime_dir() -> Path:
    """Jupyter's runtime directory (``JUPYTER_RUNTIME_DIR`` or the platform default), made 0700."""
    return secure_directory(Path(jupyter_runtime_dir()))


def public_connection_file(kernel_id: str) -> Path:
    """Where a kernel's connection file is published (``kernel-<id>.json`` in the runtime dir)."""
    return runtime_dir() / f"kernel-{kernel_id}.json"


def nanny_state_dir(kernel_id: str, create: bool = True) -> Path:
    """A nanny's private directory: the kernel's own connection file, output logs, nanny log."""
    path = runtime_dir() / f"nanny-{kernel_id}"
    return secure_directory(path) if create else path


def daemon_discovery_file() -> Path:
    """Where a running daemon says how to reach it (pid, endpoints, key): readable by its user only."""
    return runtime_dir() / "kernel-nanny-daemon.json"


def secure_directory(path: Path) -> Path:
    """Create ``path`` if needed and make sure only its owner can enter it.

    A directory we own but others can read is tightened to 0700, since it holds
    kernel keys; one owned by somebody else is refused.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise LaunchError(f"cannot create the private directory {path}: {exc.strerror}") from exc
    if info.st_uid != os.getuid():
        raise LaunchError(f"the private directory {path} belongs to another user (uid {info.st_uid})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        log.info("tightening permissions of %s to 0700 (it holds kernel keys)", path)
        path.chmod(0o700)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (a reader never sees half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
