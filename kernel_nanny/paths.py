"""Where kernel-nanny keeps its files: the user's XDG directories, and a 0700 runtime directory
with 0600 files written atomically for secrets.

Every directory the package uses is computed here and nowhere else, and
every file it writes is opened here (:func:`write_private_file`,
:func:`open_private_file`): 0700 directories and 0600 files whatever the
umask, and never a write through a symbolic link. This
module is a leaf (it reads no configuration), so that the configuration
itself can find its files through it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

from ._exceptions import LaunchError

__all__ = [
    "daemon_discovery_file",
    "nanny_state_dir",
    "open_private_file",
    "public_connection_file",
    "runtime_dir",
    "secure_directory",
    "space_checked",
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
    kernel keys; one owned by somebody else is refused. Missing parents are
    created 0700 too, whatever the umask.
    """
    try:
        with space_checked(path):
            _make_private_directories(path)
        info = path.stat()
    except OSError as exc:
        raise LaunchError(f"cannot create the private directory {path}: {exc.strerror}") from exc
    if info.st_uid != os.getuid():
        raise LaunchError(f"the private directory {path} belongs to another user (uid {info.st_uid})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        log.info("tightening permissions of %s to 0700 (it holds kernel keys)", path)
        path.chmod(0o700)
    return path


def _make_private_directories(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700: ``mkdir(mode=)`` is masked by the umask and
    ``parents=True`` gives parents the umask's mode, so each one we create is chmodded."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: secure_directory checks the last one
        directory.chmod(0o700)


def _symlink_refused(path: Path) -> LaunchError:
    return LaunchError(
        f"refusing to write {path}: {path} is a symbolic link (to {os.readlink(path)}), and a file of ours "
        "is never written through one; remove the link, or choose another path"
    )


def open_private_file(path: Path, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """Open ``path`` (created if missing) with ``flags``, never through a symbolic link, and make it 0600
    whatever the umask or its old mode. Returns the file descriptor (close-on-exec)."""
    try:
        with space_checked(path):
            fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise _symlink_refused(path) from None
        raise
    os.fchmod(fd, 0o600)
    return fd


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (a reader never sees half a file).

    A symbolic link at ``path`` is refused with an error naming it: the rename
    would replace the link rather than write through it, but a link where a
    secret goes is a mistake or an attack, and either deserves to be told.
    """
    if os.path.islink(path):
        raise _symlink_refused(path)
    with space_checked(path):
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


#: What a write that found no room met, by errno.
_NO_ROOM = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded"}


@contextlib.contextmanager
def space_checked(path: Path) -> Iterator[None]:
    """Turn a full file system or an exhausted disk quota met while writing ``path`` into a
    :exc:`~kernel_nanny.LaunchError` that says so and names the place: the bare ``OSError``
    (``[Errno 28]``) names neither, and reached users as a mystery. Other errors pass through."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_ROOM:
            raise
        raise LaunchError(
            f"{_NO_ROOM[exc.errno]} on {path.parent} (writing {path.name}): free some space on that file system "
            "and try again"
        ) from exc
