"""The state store: atomic records that survive a full disk, corrupt ones set aside."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from kernel_nanny import LaunchError
from kernel_nanny.daemon.state import KernelRecord, StateStore


def record(kernel_id: str = "abc", **changes) -> KernelRecord:
    fields = {"kernel_id": kernel_id, "kernel_type": "spec/python3", "connection_file": "/x.json", "nanny_pid": 42}
    return KernelRecord(**{**fields, **changes})


def test_records_round_trip_with_private_permissions(tmp_path):
    store = StateStore(tmp_path / "state")
    store.save(record("one", name="first"))
    store.save(record("two"))
    assert sorted(r.kernel_id for r in store.load()) == ["one", "two"]
    assert oct((store.kernels_dir / "one.json").stat().st_mode & 0o777) == oct(0o600)
    assert oct(store.kernels_dir.stat().st_mode & 0o777) == oct(0o700)
    store.remove("one")
    assert [r.name for r in store.load()] == [None]


@pytest.mark.parametrize(
    "content",
    ["{ not json", "[]", json.dumps({"kernel_id": "bad"}), json.dumps({**record("other").__dict__})],
)
def test_unreadable_records_are_set_aside(tmp_path, content):
    store = StateStore(tmp_path / "state")
    (store.kernels_dir / "bad.json").write_text(content)
    store.save(record("good"))
    assert [r.kernel_id for r in store.load()] == ["good"]
    assert store.set_aside == [store.kernels_dir / "bad.json.corrupt"]
    assert (store.kernels_dir / "bad.json.corrupt").read_text() == content


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 KiB filesystem (tmpfs; needs root, as CI has)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_leaves_the_old_record_valid(tiny_disk):
    store = StateStore(tiny_disk / "state")
    store.save(record("k", name="before"))
    filler = tiny_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # use up the rest of the disk
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    with pytest.raises(LaunchError, match=f"no space left on {store.kernels_dir} "):
        store.save(record("k", name="after" * 2000))  # does not fit
    assert [r.name for r in store.load()] == ["before"]
    assert [p.name for p in store.kernels_dir.iterdir()] == ["k.json"]  # no half-written temp file
    os.unlink(filler)
    store.save(record("k", name="after"))
    assert [r.name for r in store.load()] == ["after"]


def test_store_directory_is_made_private(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    StateStore(loose)
    assert oct(Path(loose).stat().st_mode & 0o777) == oct(0o700)
