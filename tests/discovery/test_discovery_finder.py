"""KernelFinder: type ids across providers, and the failure modes of providers."""

from __future__ import annotations

import logging

import pytest

from kernel_nanny import KernelFinder, KernelNannyError, KernelProvider, LaunchParams, LaunchResult, NoSuchKernelType
from kernel_nanny.discovery.pyimport import PyImportProvider


class FakeProvider(KernelProvider):
    """Offers fixed kernel types; launch() records what it was asked for."""

    def __init__(self, provider_id: str, names: list[str], label: str = "") -> None:
        self.id = provider_id
        self.names = names
        self.label = label
        self.launched: list[tuple[str, object, object]] = []

    def find_kernels(self):
        for name in self.names:
            yield name, {"display_name": f"{self.label or self.id} {name}", "language": "fake"}

    async def launch(self, name, *, cwd=None, launch_params=None):
        if name not in self.names:
            raise NoSuchKernelType(f"{self.id}/{name}")
        self.launched.append((name, cwd, launch_params))
        return LaunchResult({"kernel_name": f"{self.id}/{name}"}, None)


class ExplodingProvider(FakeProvider):
    def find_kernels(self):
        raise RuntimeError("the kernel registry is down")


def type_ids(finder: KernelFinder) -> list[str]:
    return [type_id for type_id, _ in finder.find_kernels()]


def test_type_ids_are_provider_slash_name():
    finder = KernelFinder([FakeProvider("alpha", ["one", "two"]), FakeProvider("beta", ["one"])])

    assert type_ids(finder) == ["alpha/one", "alpha/two", "beta/one"]
    assert dict(finder.find_kernels())["beta/one"]["display_name"] == "beta one"


def test_duplicate_provider_ids_keep_the_first_and_log(caplog):
    first, second = FakeProvider("same", ["a"], label="first"), FakeProvider("same", ["b"], label="second")

    with caplog.at_level(logging.WARNING, logger="kernel_nanny.discovery"):
        finder = KernelFinder([first, second])

    assert finder.providers == {"same": first}
    assert type_ids(finder) == ["same/a"]
    assert any("same" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_provider_that_fails_to_list_is_logged_and_skipped(caplog):
    finder = KernelFinder([FakeProvider("before", ["k"]), ExplodingProvider("boom", []), FakeProvider("after", ["k"])])

    with caplog.at_level(logging.WARNING, logger="kernel_nanny.discovery"):
        found = type_ids(finder)

    assert found == ["before/k", "after/k"]
    [record] = [r for r in caplog.records if "boom" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None and "registry is down" in str(record.exc_info[1])


async def test_launch_dispatches_to_the_provider_with_name_and_params():
    alpha, beta = FakeProvider("alpha", ["one"]), FakeProvider("beta", ["one"])
    finder = KernelFinder([alpha, beta])

    result = await finder.launch("beta/one", cwd="/somewhere", launch_params={"transport": "tcp"})

    assert result.connection_info == {"kernel_name": "beta/one"}
    # Providers get the parameters validated into LaunchParams (which still reads like the dict).
    assert beta.launched == [("one", "/somewhere", LaunchParams(transport="tcp"))]
    assert beta.launched[0][2]["transport"] == "tcp"
    assert alpha.launched == []


@pytest.mark.parametrize("type_id", ["nosuch/one", "alpha/missing", "alpha", "alpha/", "", "/one"])
async def test_launching_an_unknown_type_lists_the_known_ids(type_id):
    finder = KernelFinder([FakeProvider("alpha", ["one", "two"]), FakeProvider("beta", ["three"])])

    with pytest.raises(NoSuchKernelType) as info:
        await finder.launch(type_id)

    error = info.value
    assert error.type_id == type_id
    assert error.known == ["alpha/one", "alpha/two", "beta/three"]
    message = str(error)
    assert repr(type_id) in message
    for known in ("alpha/one", "alpha/two", "beta/three"):
        assert known in message


def test_no_such_kernel_type_is_a_lookup_error_and_ours():
    assert issubclass(NoSuchKernelType, LookupError)
    assert issubclass(NoSuchKernelType, KernelNannyError)


def test_pyimport_provider_lists_kernel():
    found = dict(PyImportProvider().find_kernels())

    assert list(found) == ["kernel"]
    attrs = found["kernel"]
    assert attrs["language"] == "python"
    assert attrs["argv"][0] == PyImportProvider().executable
    assert attrs["argv"][1:] == [
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]
    assert attrs["interrupt_mode"] == "signal"


def test_pyimport_provider_uses_the_given_executable():
    attrs = dict(PyImportProvider("/opt/other/python").find_kernels())["kernel"]

    assert attrs["argv"][0] == "/opt/other/python"
    assert not any("kernel_nanny" in arg for arg in attrs["argv"])  # another Python may not have kernel-nanny


async def test_pyimport_provider_refuses_other_names():
    with pytest.raises(NoSuchKernelType, match="pyimport/other"):
        await PyImportProvider().launch("other")


def test_from_entrypoints_finds_the_builtin_providers():
    finder = KernelFinder.from_entrypoints()

    assert {"spec", "pyimport"} <= set(finder.providers)
    ids = type_ids(finder)
    assert "pyimport/kernel" in ids
    assert "spec/python3" in ids
