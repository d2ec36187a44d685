"""Third-party providers through real entry points (a dist-info folder on sys.path).

Each check runs in a fresh interpreter so that the plug-ins written here never
leak into this process's view of installed distributions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from kernel_nanny.discovery import ENTRY_POINT_GROUP

TOY_MODULE = """
from kernel_nanny import KernelProvider, NoSuchKernelType


class ToyProvider(KernelProvider):
    id = "toy"

    def find_kernels(self):
        yield "robot", {"display_name": "Toy Robot", "language": "toylang", "argv": ["toy-robot"]}

    async def launch(self, name, *, cwd=None, launch_params=None):
        raise NoSuchKernelType(f"toy/{name}")
"""

# A provider whose constructor needs an argument the finder cannot give.
NEEDY_INIT = 'id = "needy"\n\n    def __init__(self, required):\n        pass'

LIST_KERNELS = textwrap.dedent(
    """
    import json, logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from kernel_nanny import KernelFinder
    finder = KernelFinder.from_entrypoints()
    print(json.dumps({"providers": list(finder.providers), "kernels": dict(finder.find_kernels())}))
    """
)


def install_fake_distribution(site: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Lay out what pip would: the modules, and ``<dist>-0.1.dist-info`` with METADATA and entry_points.txt."""
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")


def list_kernels(site: Path) -> tuple[dict, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", LIST_KERNELS], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_a_third_party_provider_is_found_through_its_entry_point(tmp_path):
    install_fake_distribution(tmp_path, "toyprov", {"toyprov": TOY_MODULE}, {"toy": "toyprov:ToyProvider"})

    result, _ = list_kernels(tmp_path)

    assert "toy" in result["providers"]
    kernels = result["kernels"]
    assert kernels["toy/robot"] == {"display_name": "Toy Robot", "language": "toylang", "argv": ["toy-robot"]}
    assert "pyimport/kernel" in kernels
    assert any(type_id.startswith("spec/") for type_id in kernels)


def test_without_the_plugin_the_toy_provider_is_absent(tmp_path):
    """The control for the test above: the toy ids come from the dist-info, nowhere else."""
    result, _ = list_kernels(tmp_path)

    assert "toy" not in result["providers"]
    assert not any(type_id.startswith("toy/") for type_id in result["kernels"])
    assert "pyimport/kernel" in result["kernels"]


def test_a_plugin_that_fails_to_import_is_logged_and_skipped(tmp_path):
    install_fake_distribution(
        tmp_path,
        "brokenprov",
        {"brokenprov": 'raise ImportError("brokenprov needs libfrobnicate, which is missing")\n'},
        {"brokenplugin": "brokenprov:Provider"},
    )
    install_fake_distribution(tmp_path, "toyprov", {"toyprov": TOY_MODULE}, {"toy": "toyprov:ToyProvider"})

    result, stderr = list_kernels(tmp_path)

    assert "toy/robot" in result["kernels"]
    assert "pyimport/kernel" in result["kernels"]
    assert any(type_id.startswith("spec/") for type_id in result["kernels"])
    warnings = [line for line in stderr.splitlines() if line.startswith("WARNING")]
    assert any("brokenplugin" in line for line in warnings), stderr
    assert "libfrobnicate" in stderr  # the traceback says why


def test_a_plugin_that_is_not_a_provider_is_logged_and_skipped(tmp_path):
    install_fake_distribution(
        tmp_path,
        "oddprov",
        {"oddprov": "class NotAProvider:\n    id = 'odd'\n\n    def find_kernels(self):\n        return []\n"},
        {"oddplugin": "oddprov:NotAProvider"},
    )

    result, stderr = list_kernels(tmp_path)

    assert "odd" not in result["providers"]
    assert {"spec", "pyimport"} <= set(result["providers"])
    assert any("oddplugin" in line and "not a KernelProvider" in line for line in stderr.splitlines()), stderr


def test_a_plugin_that_fails_to_instantiate_is_logged_and_skipped(tmp_path):
    install_fake_distribution(
        tmp_path,
        "needyprov",
        {"needyprov": TOY_MODULE.replace('id = "toy"', NEEDY_INIT)},
        {"needyplugin": "needyprov:ToyProvider"},
    )

    result, stderr = list_kernels(tmp_path)

    assert "needy" not in result["providers"]
    assert "pyimport/kernel" in result["kernels"]
    assert any("needyplugin" in line for line in stderr.splitlines() if line.startswith("WARNING")), stderr
