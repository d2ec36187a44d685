"""'kernel-nanny attach': the recorded part of a running cell, then its live output, once each; Ctrl-C detaches."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import CLI, jupyter_client_on
from tests.helpers import run_cli as run


@pytest.fixture
def started():
    name = f"a{os.getpid()}{time.monotonic_ns() % 100000}"
    result = run("start", "pyimport/kernel", "--name", name)
    assert result.returncode == 0, result.stderr
    kernel_id, connection_file = result.stdout.split()
    yield name, connection_file
    for process in Attached.running:  # those a failed test left
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
    Attached.running.clear()
    run("stop", kernel_id, "--now")


class Attached:
    """An 'attach' process whose stdout and stderr lines are read as they come (one merged stream)."""

    running: list[subprocess.Popen] = []

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*CLI, "attach", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.running.append(self.process)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, text: str) -> None:
        """Read lines until one contains ``text`` (the process ending first fails)."""
        while True:
            line = self._queue.get(timeout=60)
            assert line is not None, f"attach ended before {text!r}: {self.lines}"
            self.lines.append(line)
            if text in line:
                return

    def finish(self) -> int:
        code = self.process.wait(timeout=60)
        while (line := self._queue.get(timeout=60)) is not None:
            self.lines.append(line)
        return code


def gated_cell(gates: Path) -> str:
    """A cell that prints, waits for gate 1 (a FIFO the test opens), prints more, waits for gate 2, ends."""
    return (
        "for i in range(3): print(f'before-{i}', flush=True)\n"
        f"open({str(gates / 'one')!r}).read()\n"
        "for i in range(3): print(f'after-{i}', flush=True)\n"
        f"open({str(gates / 'two')!r}).read()\n"
        "print('done', flush=True)\n"
    )


def open_gate(path: Path) -> None:
    with open(path, "w") as gate:
        gate.write("go")


def run_gated_cell(kc, gates: Path) -> str:
    """Start the gated cell and return its msg_id once it printed its first part (before any attach)."""
    for gate in ("one", "two"):
        os.mkfifo(gates / gate)
    msg_id = kc.execute(gated_cell(gates))
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and "before-2" in msg["content"].get("text", ""):
            return msg_id


def printed(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("before-", "after-", "done"))]


def test_attach_shows_a_running_cell_once_then_follows_it_and_ctrl_c_only_detaches(started, tmp_path):
    name, connection_file = started
    with jupyter_client_on(connection_file) as kc:
        msg_id = run_gated_cell(kc, tmp_path)
        attached = Attached(name)
        attached.expect("before-2")  # recorded before attach: from the journal
        open_gate(tmp_path / "one")
        attached.expect("after-2")  # live
        attached.process.send_signal(signal.SIGINT)
        assert attached.finish() == 0
        assert any("detached" in line and "keeps running" in line for line in attached.lines)
        open_gate(tmp_path / "two")
        reply = kc.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok"  # not interrupted: the cell ran to its end
    assert attached.lines[0].startswith("In [")
    assert printed(attached.lines) == ["before-0", "before-1", "before-2", "after-0", "after-1", "after-2"]


def test_output_printed_across_the_seam_shows_once_in_order(started, tmp_path):
    # The cell prints all along: some before attach, some while attach replays the journal (the seam), the
    # rest live. (Its 1 ms pauses make it print over time; the test waits on output, not on time.)
    name, connection_file = started
    stop = tmp_path / "stop"
    cell = (
        "import itertools, os, time\n"
        "for i in itertools.count():\n"
        "    print(i, flush=True)\n"
        "    time.sleep(0.001)\n"
        f"    if i >= 2000 and os.path.exists({str(stop)!r}): break\n"
        "print('done', flush=True)\n"
    )
    with jupyter_client_on(connection_file) as kc:
        msg_id = kc.execute(cell)
        while kc.get_iopub_msg(timeout=60)["msg_type"] != "stream":
            pass
        attached = Attached(name)
        attached.expect("In [")
        attached.expect("1000")
        stop.touch()
        attached.expect("done")
        attached.process.send_signal(signal.SIGINT)
        assert attached.finish() == 0
        assert kc.get_shell_msg(timeout=60)["parent_header"]["msg_id"] == msg_id
    numbers = [int(line) for line in attached.lines if line.isdigit()]
    assert numbers == list(range(len(numbers))) and len(numbers) > 2000


def test_attach_interrupts_on_ctrl_c_only_when_asked_then_detaches(started, tmp_path):
    name, connection_file = started
    with jupyter_client_on(connection_file) as kc:
        msg_id = run_gated_cell(kc, tmp_path)
        attached = Attached(name, "--interrupt-on-ctrl-c")
        attached.expect("before-2")
        attached.process.send_signal(signal.SIGINT)
        attached.expect("KeyboardInterrupt")  # the kernel's error, followed live
        reply = kc.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        attached.process.send_signal(signal.SIGINT)
        assert attached.finish() == 0
    assert any("interrupted kernel" in line for line in attached.lines)
    assert printed(attached.lines) == ["before-0", "before-1", "before-2"]


def test_attach_shows_the_last_execution_or_the_last_entries(started):
    name, connection_file = started
    with jupyter_client_on(connection_file) as kc:
        for code in ("print('early')", "print('late')"):
            kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
    last_two = Attached(name, "--last", "2")  # the stream 'late' and the status idle after it
    last_two.expect("late")
    last_two.process.send_signal(signal.SIGINT)
    assert last_two.finish() == 0
    assert last_two.lines[0] == "late" and not any("early" in line or "In [" in line for line in last_two.lines)
    last_cell = Attached(name)
    last_cell.expect("late")
    last_cell.process.send_signal(signal.SIGINT)
    assert last_cell.finish() == 0
    assert last_cell.lines[:2] == ["In [2]: print('late')", "late"]
    assert not any("early" in line for line in last_cell.lines)


def test_attach_to_a_dead_kernel_says_so(started):
    name, connection_file = started
    assert run("exec", name, "-c", "print('last words')").returncode == 0
    assert run("kill", name).returncode == 0
    result = run("attach", name, timeout=60)
    assert result.returncode == 3
    assert "last words" in result.stdout
    assert f"kernel {name} is dead (killed)" in result.stderr and f"kernel-nanny restart {name}" in result.stderr


def test_attach_ends_when_the_nanny_exits(started):
    name, _ = started
    assert run("exec", name, "-c", "print('ready')").returncode == 0
    attached = Attached(name)
    attached.expect("ready")  # the recorded part is shown: attach follows now
    assert run("stop", name).returncode == 0
    assert attached.finish() == 0
    assert attached.lines[-1] == f"kernel-nanny: the nanny of kernel {name} exited"
