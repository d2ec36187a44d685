"""The ipykernel image's root file system for the Docker tests, built by mmdebstrap from Debian's packages.

No registry is reachable, so the image is imported from this tarball. Only
the standard library is used here: ``.ci/run`` builds the tarball before the
test run (``python3 -m tests.providers.images``), so that no test's time
limit has to cover a download of Debian packages; a missing tarball is built
by the first test that needs it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

#: Built once (about a minute) and kept between runs.
ROOTFS = Path("/var/cache/kernel-nanny-tests/ipykernel-bookworm.tar")


def build_rootfs() -> Path:
    """The ipykernel root file system tarball, built by mmdebstrap if it is not cached yet."""
    if ROOTFS.is_file():
        return ROOTFS
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise RuntimeError("mmdebstrap is missing: run .ci/install-test-deps.sh (as root)")
    ROOTFS.parent.mkdir(parents=True, exist_ok=True)
    partial = ROOTFS.with_suffix(".partial.tar")
    sources = "/etc/apt/sources.list.d/debian.sources"  # the host's own apt sources (no other mirror is reachable)
    subprocess.run(
        [
            mmdebstrap,
            "--quiet",
            "--variant=apt",
            "--format=tar",
            "--include=python3-ipykernel",
            '--aptopt=APT::Install-Recommends "false"',
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "bookworm",
            str(partial),
            *([sources] if Path(sources).exists() else []),
        ],
        check=True,
        timeout=600,
    )
    partial.rename(ROOTFS)
    return ROOTFS


if __name__ == "__main__":
    print(build_rootfs())
