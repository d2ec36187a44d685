"""Every file, socket and directory kernel-nanny makes is its owner's alone, whatever the umask, and
nothing is ever written through a symbolic link planted where a file of ours goes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kernel_nanny import KernelClient, LaunchError, LaunchRequest, start_kernel
from kernel_nanny.protocol import CHANNELS


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kernel_nanny", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def victim(tmp_path):
    """A file of somebody else's (here: ours) and a symbolic link to it, planted where we will write."""
    target = tmp_path / "victim"
    target.write_text("precious\n")
    target.chmod(0o644)
    link = tmp_path / "planted.json"
    link.symlink_to(target)
    return target, link


def assert_untouched(target: Path, link: Path) -> None:
    assert target.read_text() == "precious\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert link.is_symlink() and link.readlink() == target


@pytest.mark.parametrize("force", [False, True])
def test_keys_new_refuses_to_write_through_a_symlink(isolated, victim, force):
    target, link = victim
    made = cli("keys", "new", "laptop", "--endpoint", "tcp://127.0.0.1:5555", "-o", str(link), *(["--force"] * force))
    assert made.returncode != 0
    assert f"{link} is a symbolic link" in made.stderr
    assert_untouched(target, link)


async def test_a_launch_refuses_a_connection_file_that_is_a_symlink(isolated, victim):
    target, link = victim
    request = LaunchRequest(kernel_type="pyimport/kernel", params={"connection_file": str(link), "echo_output": False})
    with pytest.raises(LaunchError, match=f"{link} is a symbolic link"):
        await start_kernel(request)
    assert_untouched(target, link)


@pytest.fixture
def fresh_tree(make_daemon, monkeypatch):
    """A fresh XDG tree (short, so ipc paths stay under the socket path limit) that holds every directory
    kernel-nanny uses, the runtime directory among them (share/jupyter/runtime: created by us).

    It depends on ``make_daemon`` so that it ends first: its environment is undone and the tree removed
    before ``make_daemon`` stops what is left (in the test's own runtime directory, not this tree).
    """
    tree = Path(tempfile.mkdtemp(prefix="kn-u-"))
    with monkeypatch.context() as env:
        for variable, folder in (
            ("XDG_DATA_HOME", "share"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CONFIG_HOME", "config"),
        ):
            env.setenv(variable, str(tree / folder))
        env.delenv("JUPYTER_RUNTIME_DIR")
        env.delenv("JUPYTER_DATA_DIR", raising=False)
        yield tree
    shutil.rmtree(tree, ignore_errors=True)


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


def modes(tree: Path) -> dict[Path, int]:
    """The permission bits of every path under ``tree`` (symbolic links not followed)."""
    found = {}
    for folder, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def loose(found: dict[Path, int], theirs: set[Path]) -> list[str]:
    """The paths group or others may use (directories must be 0700, the rest 0600); ``theirs``
    (the sockets a kernel binds itself, whose mode we cannot choose) only need a 0700 directory."""
    wrong = []
    for path, mode in found.items():
        if path in theirs:
            if found[path.parent] != 0o700:
                wrong.append(f"{path.parent} {oct(found[path.parent])} (holds the kernel's {path.name})")
        elif mode != (0o700 if stat.S_ISDIR(path.lstat().st_mode) else 0o600):
            wrong.append(f"{path} {oct(mode)}")
    return wrong


async def test_a_daemon_and_its_nannies_make_only_private_files_under_umask_000(make_daemon, fresh_tree, umask_000):
    daemon = await make_daemon(start=False)
    daemon.config_file.write_text('[daemon]\ntcp_endpoint = "tcp://127.0.0.1:*"\n')
    await daemon.start()
    client_file = fresh_tree / "laptop.json"
    made = cli(
        "keys",
        "--config",
        str(daemon.config_file),
        "new",
        "laptop",
        "--endpoint",
        "tcp://[::1]:5",
        "-o",
        str(client_file),
    )
    assert made.returncode == 0, made.stderr
    async with daemon.client() as client:
        info, manager = await client.launch("pyimport/kernel", launch_params={"echo_output": False})
        try:
            async with KernelClient(info) as kernel:
                await kernel.wait_for_ready(timeout=30)
                result = await kernel.execute_interactive("import os; os.write(1, b'to the output log')", timeout=30)
                assert result.ok, result.error
            found = modes(fresh_tree)
            kernel_sockets = {Path(f"{info['ip']}-{info[f'{channel}_port']}") for channel in CHANNELS}
            assert loose(found, kernel_sockets) == []
        finally:
            await manager.shutdown(now=True)
            await manager.cleanup()
    runtime = fresh_tree / "share" / "jupyter" / "runtime"
    nanny = runtime / f"nanny-{info['kernel_id']}"
    state = fresh_tree / "state" / "kernel-nanny"
    expected = [
        *(fresh_tree / part for part in ("share", "share/jupyter", "state", "laptop.json")),
        *(
            runtime / name
            for name in ("kernel-nanny-daemon.sock", "kernel-nanny-daemon.json", "kernel-nanny-daemon.lock")
        ),
        *(runtime / f"kernel-{info['kernel_id']}.json", *kernel_sockets),
        *(Path(f"{info['ip']}-{info[port]}") for port in ("nanny_control_port", "nanny_events_port")),
        *(nanny / name for name in ("nanny.log", "output.log", "kernel.json")),
        *(state / name for name in ("api.key", "server.key", "authorized_keys", "kernels")),
    ]
    assert [path for path in expected if path not in found] == []
    assert await daemon.stop() == 0  # nothing writes into the tree once it is removed
