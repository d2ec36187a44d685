"""Long runs survive their caller (issue 13, item 5): a run in a group's kernel goes on when the process that
began it is SIGKILLed, and is re-joined from another process by its id or by running the same code again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from kernel_nanny import BlockingKernelExecution, KernelExecution, Message, NoSuchKernel
from tests.helpers import CLI
from tests.helpers import run_cli as run

#: Lines the slow code prints, one every 0.3 s: it runs past the moment exec says how to re-join it.
LINES = 12
SLOW = f"import time\nfor i in range({LINES}):\n    print(i, flush=True)\n    time.sleep(0.3)\n"


@pytest.fixture
def group():
    key = f"rejoin{os.getpid()}{time.monotonic_ns() % 100000}"
    yield key
    listed = run("ps").stdout
    for name in re.findall(rf"\b{key}\.\S+", listed):
        run("stop", name, "--now")


def _begin_then_kill(group: str, code: str, *where: str) -> str:
    """Start ``exec --group`` (or ``exec *where``) in a process; once it says how to re-join its run, SIGKILL it;
    the run's id."""
    with subprocess.Popen(
        [*CLI, "exec", *(where or ("pyimport/kernel", "--group", group)), "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        said = ""
        for line in process.stderr:  # a long run: exec says so while the code runs
            said += line
            if "--rejoin" in line:
                break
        process.send_signal(signal.SIGKILL)
        process.wait()
    found = re.search(r"run ([0-9a-f]{12}) in kernel", said)
    assert found, said
    return found.group(1)


async def test_a_run_whose_caller_died_is_rejoined_by_its_id_to_all_its_output_and_status(group):
    execution_id = _begin_then_kill(group, SLOW)
    printed: list[str] = []

    def hook(msg: Message) -> None:
        if msg.msg_type == "stream":
            printed.append(msg.content["text"])

    assert await KernelExecution.rejoin(execution_id, output_hook=hook) == 0
    assert "".join(printed) == "".join(f"{i}\n" for i in range(LINES))  # from the first line: the journal kept it


async def test_a_failing_run_rejoined_returns_what_its_caller_would_have(group):
    execution_id = _begin_then_kill(group, SLOW + "1 / 0\n")
    errors: list[str] = []
    code = await KernelExecution.rejoin(
        execution_id, output_hook=lambda msg: errors.append(msg.content["ename"]) if msg.msg_type == "error" else None
    )
    assert code == 1 and errors == ["ZeroDivisionError"]


def test_exec_with_the_same_code_in_the_group_rejoins_the_run_still_going(group):
    _begin_then_kill(group, SLOW + "1 / 0\n")
    again = run("exec", "pyimport/kernel", "--group", group, "-c", SLOW + "1 / 0\n")
    assert "following that run instead of starting a second one" in again.stderr
    assert again.stdout.splitlines()[:LINES] == [str(i) for i in range(LINES)]  # once each: not a second run's
    assert again.stdout.count("\n0\n") == 0 and "ZeroDivisionError" in again.stdout + again.stderr
    assert again.returncode == 1  # the run's status


def test_exec_rejoin_by_id_and_an_unknown_id(group):
    execution_id = _begin_then_kill(group, SLOW)
    joined = run("exec", "--rejoin", execution_id)
    assert joined.returncode == 0, joined.stderr
    assert joined.stdout.splitlines() == [str(i) for i in range(LINES)]
    unknown = run("exec", "--rejoin", "0123456789ab")
    assert unknown.returncode == 3 and "no run '0123456789ab'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


async def test_rejoin_of_an_unknown_run_names_it():
    with pytest.raises(NoSuchKernel, match="no run 'feedfacecafe'"):
        await KernelExecution.rejoin("feedfacecafe")


def test_the_blocking_twin_rejoins_too(group):
    execution_id = _begin_then_kill(group, SLOW)
    printed: list[str] = []
    code = BlockingKernelExecution.rejoin(
        execution_id, output_hook=lambda msg: printed.append(msg.content.get("text", ""))
    )
    assert code == 0 and "".join(printed) == "".join(f"{i}\n" for i in range(LINES))


def test_a_rejoin_says_how_much_output_the_bounded_journal_dropped(group):
    name = f"{group}.small"
    started = run("start", "pyimport/kernel", "--name", name, "--journal-memory", "64KiB", "--journal-disk", "0")
    assert started.returncode == 0, started.stderr
    # 2,000 lines of 100 bytes, far past a 64 KiB journal, while nobody reads them; then the run goes on.
    code = "import time\nfor i in range(2000):\n    print(f'{i:099d}', flush=True)\ntime.sleep(1)\n" + SLOW
    execution_id = _begin_then_kill(group, "import time; time.sleep(1)\n" + code, name)
    joined = run("exec", "--rejoin", execution_id)
    assert joined.returncode == 0, joined.stderr
    lost = re.search(rf"run {execution_id} in kernel \S+: (\d+) of its journal entries were dropped", joined.stderr)
    assert lost and int(lost.group(1)) > 0, joined.stderr
    printed = joined.stdout.splitlines()
    assert printed[-LINES:] == [str(i) for i in range(LINES)]  # what the journal kept arrives, in order
    assert len(printed) < 2000 + LINES  # the warning is true: lines are missing
