"""Jupyter's own tools against the kernel-nanny provisioner.

Three kernelspecs in a temporary directory put first on JUPYTER_PATH, all
running this Python's ipykernel: ``kn-nanny-python`` selects the provisioner
in its metadata, ``kn-nanny-persistent`` too, configured persistent, and
``kn-local-python`` selects none (jupyter_client's local provisioner, unless
the default is changed). Both declare CurveZMQ support,
as ipykernel's own kernelspec does.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel_nanny.client.running import list_running_kernels

NANNY_SPEC = "kn-nanny-python"
LOCAL_SPEC = "kn-local-python"
#: The nanny spec with ``"config": {"persistent": true}``: its kernels outlive the process that started them.
PERSISTENT_SPEC = "kn-nanny-persistent"
#: The nanny spec's env entry, templated as kernelspecs allow; jupyter_client fills in ${KN_TEST_BASE}.
SPEC_ENV = {"KN_SPEC_VALUE": "spec:${KN_TEST_BASE}"}


def _write_spec(root: Path, name: str, provisioner: str | None, config: dict[str, object] | None = None) -> None:
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    metadata: dict[str, object] = {"supported_encryption": ["curve"]}
    if provisioner:
        metadata["kernel_provisioner"] = {"provisioner_name": provisioner, **({"config": config} if config else {})}
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "env": SPEC_ENV if provisioner else {},
        "metadata": metadata,
    }
    (folder / "kernel.json").write_text(json.dumps(spec))


@pytest.fixture(scope="package", autouse=True)
def kernelspecs() -> Iterator[Path]:
    """The two kernelspecs, on JUPYTER_PATH for the tests of this package (and the processes they start)."""
    root = Path(tempfile.mkdtemp(prefix="kn-test-specs-"))
    _write_spec(root, NANNY_SPEC, "kernel-nanny")
    _write_spec(root, PERSISTENT_SPEC, "kernel-nanny", {"persistent": True})
    _write_spec(root, LOCAL_SPEC, None)
    saved = {key: os.environ.get(key) for key in ("JUPYTER_PATH", "KN_TEST_BASE")}
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(root), saved["JUPYTER_PATH"]]))
    os.environ["KN_TEST_BASE"] = "base"
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def running_ids() -> set[str]:
    """Ids of the kernels running behind nannies now."""
    return {kernel.kernel_id for kernel in list_running_kernels()}
