"""KernelSpecProvider: kernelspecs read from a search path, as jupyter_client finds them."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from kernel_nanny import KernelNannyError, LaunchError, NoSuchKernelType
from kernel_nanny.discovery import spec as spec_module
from kernel_nanny.discovery.spec import KernelSpecProvider, find_kernel_specs

IPYKERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def write_spec(directory: Path, name: str, spec: dict | None = None, *, raw: str | None = None) -> Path:
    folder = directory / name
    folder.mkdir(parents=True)
    if raw is not None:
        (folder / "kernel.json").write_text(raw)
    else:
        spec = spec if spec is not None else {"argv": IPYKERNEL_ARGV, "display_name": name, "language": "python"}
        (folder / "kernel.json").write_text(json.dumps(spec))
    return folder


def kernels(provider: KernelSpecProvider) -> dict[str, dict]:
    return dict(provider.find_kernels())


def test_lists_every_valid_spec_with_its_attributes(tmp_path):
    folder = write_spec(
        tmp_path,
        "fancy",
        {
            "argv": ["fancy-kernel", "--conn", "{connection_file}"],
            "display_name": "Fancy Kernel",
            "language": "fancylang",
            "interrupt_mode": "message",
            "metadata": {"debugger": True, "supported_encryption": ["curve"]},
            "env": {"A": "1"},
        },
    )
    write_spec(tmp_path, "plain")

    found = kernels(KernelSpecProvider([str(tmp_path)]))

    assert set(found) == {"fancy", "plain"}
    assert found["fancy"] == {
        "display_name": "Fancy Kernel",
        "language": "fancylang",
        "argv": ["fancy-kernel", "--conn", "{connection_file}"],
        "interrupt_mode": "message",
        "metadata": {"debugger": True, "supported_encryption": ["curve"]},
        "resource_dir": str(folder),
    }


def test_missing_optional_fields_get_defaults(tmp_path):
    write_spec(tmp_path, "bare", {"argv": ["k", "{connection_file}"]})

    attrs = kernels(KernelSpecProvider([str(tmp_path)]))["bare"]

    assert attrs["display_name"] == "bare"
    assert attrs["language"] == ""
    assert attrs["interrupt_mode"] == "signal"
    assert attrs["metadata"] == {}


@pytest.mark.parametrize(
    "raw, why",
    [
        ("{not json", "Expecting"),
        ("[1, 2]", "JSON object"),
        ('{"display_name": "no argv"}', "argv"),
        ('{"argv": []}', "argv"),
        ('{"argv": "python -m ipykernel"}', "argv"),
        ('{"argv": ["python", 3]}', "argv"),
        ('{"argv": ["k"], "interrupt_mode": "telepathy"}', "interrupt_mode"),
    ],
)
def test_invalid_kernel_json_is_skipped_with_a_warning(tmp_path, caplog, raw, why):
    write_spec(tmp_path, "broken", raw=raw)
    write_spec(tmp_path, "good")

    with caplog.at_level(logging.WARNING, logger="kernel_nanny.discovery"):
        found = kernels(KernelSpecProvider([str(tmp_path)]))

    assert set(found) == {"good"}
    [record] = [r for r in caplog.records if "broken" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert why in record.getMessage()


def test_names_are_case_insensitive(tmp_path):
    write_spec(tmp_path, "MyKernel", {"argv": ["k"], "display_name": "Mixed Case"})

    found = kernels(KernelSpecProvider([str(tmp_path)]))

    assert list(found) == ["mykernel"]
    assert found["mykernel"]["display_name"] == "Mixed Case"
    assert found["mykernel"]["resource_dir"] == str(tmp_path / "MyKernel")


def test_first_directory_wins_for_duplicate_names(tmp_path):
    first, second = tmp_path / "user", tmp_path / "system"
    write_spec(first, "dup", {"argv": ["k"], "display_name": "from user"})
    write_spec(second, "DUP", {"argv": ["k"], "display_name": "from system"})
    write_spec(second, "only-system", {"argv": ["k"]})

    found = kernels(KernelSpecProvider([str(first), str(second)]))

    assert set(found) == {"dup", "only-system"}
    assert found["dup"]["display_name"] == "from user"
    assert found["dup"]["resource_dir"] == str(first / "dup")

    found = kernels(KernelSpecProvider([str(second), str(first)]))
    assert found["dup"]["display_name"] == "from system"


@pytest.mark.parametrize("bad_name", ["has space", "semi;colon", "ünïcode", "quote'd", "a+b"])
def test_invalid_names_are_skipped(tmp_path, bad_name):
    write_spec(tmp_path, bad_name)
    write_spec(tmp_path, "ok_name-1.2")

    assert set(kernels(KernelSpecProvider([str(tmp_path)]))) == {"ok_name-1.2"}


def test_directories_without_kernel_json_and_stray_files_are_ignored(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("not a spec")
    write_spec(tmp_path, "real")

    assert set(kernels(KernelSpecProvider([str(tmp_path)]))) == {"real"}


def test_nonexistent_search_directories_are_ignored(tmp_path):
    write_spec(tmp_path / "exists", "k1")

    found = kernels(KernelSpecProvider([str(tmp_path / "missing"), str(tmp_path / "exists")]))

    assert set(found) == {"k1"}


def test_explicit_search_path_does_not_add_the_native_spec(tmp_path):
    assert kernels(KernelSpecProvider([str(tmp_path)])) == {}
    assert find_kernel_specs([str(tmp_path)]) == {}


def test_load_config_sets_the_search_path(tmp_path):
    write_spec(tmp_path, "configured")
    provider = KernelSpecProvider([])
    assert kernels(provider) == {}

    provider.load_config({"search_path": [str(tmp_path)]})

    assert set(kernels(provider)) == {"configured"}


def test_default_search_finds_python3():
    found = kernels(KernelSpecProvider())

    assert "python3" in found
    assert found["python3"]["language"] == "python"


def test_native_python3_spec_is_offered_when_no_directory_has_one(tmp_path, monkeypatch):
    """With nothing installed in the Jupyter path, ipykernel's own spec is used (as jupyter_client does)."""
    monkeypatch.setattr(spec_module, "jupyter_path", lambda *parts: [str(tmp_path)])

    found = kernels(KernelSpecProvider())

    assert list(found) == ["python3"]
    attrs = found["python3"]
    assert attrs["argv"] == IPYKERNEL_ARGV
    assert attrs["language"] == "python"
    assert attrs["metadata"].get("supported_encryption") == ["curve"]
    assert Path(attrs["resource_dir"]).name == "resources"
    assert Path(attrs["resource_dir"]).parent.name == "ipykernel"


def test_an_installed_python3_shadows_the_native_one(tmp_path, monkeypatch):
    write_spec(tmp_path, "python3", {"argv": ["custom-python"], "display_name": "Mine"})
    monkeypatch.setattr(spec_module, "jupyter_path", lambda *parts: [str(tmp_path)])

    found = kernels(KernelSpecProvider())

    assert found["python3"]["display_name"] == "Mine"
    assert found["python3"]["resource_dir"] == str(tmp_path / "python3")


async def test_launching_an_unknown_spec_raises_no_such_kernel_type(tmp_path):
    write_spec(tmp_path, "present")

    with pytest.raises(NoSuchKernelType, match="spec/absent"):
        await KernelSpecProvider([str(tmp_path)]).launch("absent", launch_params={"echo_output": False})


async def test_launching_an_invalid_spec_says_what_is_wrong(tmp_path):
    """Listing skips a broken spec; launching it by name explains why it cannot start."""
    write_spec(tmp_path, "broken", raw="{")

    with pytest.raises(LaunchError, match="kernelspec broken in .* is invalid"):
        await KernelSpecProvider([str(tmp_path)]).launch("broken", launch_params={"echo_output": False})


async def test_a_spec_with_non_object_metadata_fails_with_our_error(tmp_path):
    """kernel.json is user input: a wrong type must give a KernelNannyError (skipped at
    listing or refused at launch, like a bad argv or env), not an AttributeError."""
    missing_program = str(tmp_path / "no-such-kernel")  # nothing can start, whatever happens
    write_spec(tmp_path, "badmeta", {"argv": [missing_program, "{connection_file}"], "metadata": "oops"})

    with pytest.raises(KernelNannyError):
        await KernelSpecProvider([str(tmp_path)]).launch("badmeta", launch_params={"echo_output": False})
